/*
 * What hoopd and its catalog loader process (catalog_loader.c) say to each other. The loader
 * runs libpq against servers the agent may have picked, so it runs in a process of its own,
 * exec'd fresh (no key, no descriptor of hoopd's in its memory) as an unprivileged user; hoopd
 * reads back only this format, and checks every byte of it.
 *
 * A frame is a 32-bit length (host order: both ends are the same binary) and that many bytes.
 * hoopd sends one request (struct catwire_req, fixed size, every string NUL-terminated) and
 * reads one answer: struct catwire_ans_head, then ops_len bytes of build operations, which
 * catwire_build replays into a struct catalog (catalog.h):
 *   'R' u32 oid, str schema, str name, u8 relkind, u32 parent_oid, lstr viewdef (len 0: none)
 *   'C' i16 attnum, str name, u32 type_oid            (a column of the last 'R')
 *   'F' str schema, str name                          (cat_add_function)
 *   'O' str name, str fn, u8 shadows                  (cat_add_operator)
 *   'T' str name, str fn                              (cat_add_code_type)
 * where str is a u16 length and bytes, lstr a u32 length and bytes, neither with a NUL.
 */
#ifndef HOOP_CATALOG_WIRE_H
#define HOOP_CATALOG_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "catalog.h"

/* The largest answer hoopd reads: the loader stops at CAT_MAX_BYTES of values (64 MiB) and
 * a million rows; their framing adds at most ~12 bytes a row. */
#define CATWIRE_MAX_FRAME ((96u << 20))
/* One load: connect and the four queries (a server may never answer). hoopd waits a little
 * longer for the answer, then kills the loader. */
#define CATWIRE_JOB_MS 20000

struct catwire_req {
	char hostaddr[48], host[256], port[8], dbname[128], user[64];
	char sslmode[16];
	/* the CA the server's certificate must chain to (PEM), read by hoopd; "" for none */
	uint32_t ca_len;
	char ca_pem[64 << 10];
	/* the catalog password, read by hoopd from catalog.password_file, sent only for a
	 * pinned target (catalog_fetch.c pinned()); password_error says why there is none */
	char password[256];
	char password_error[256];
	uint8_t password_file_set; /* the policy names catalog.password_file */
	uint8_t pinned, has_password;
	uint8_t ca_system; /* no CA given: OpenSSL's default bundle (X509_get_default_cert_file) */
};

struct catwire_ans_head {
	int64_t ms;
	char error[256]; /* "" with a catalog */
	uint32_t ops_len;
	uint8_t ok;
};

/* Build operations as the loader writes them. */
struct catwire_buf {
	uint8_t *p;
	size_t len, cap;
	int oom;
};

void catwire_rel(struct catwire_buf *b, uint32_t oid, const char *schema, const char *name,
		 char kind, uint32_t parent_oid, const char *viewdef);
void catwire_col(struct catwire_buf *b, int16_t attnum, const char *name, uint32_t type_oid);
void catwire_function(struct catwire_buf *b, const char *schema, const char *name);
void catwire_operator(struct catwire_buf *b, const char *name, const char *fn, int shadows);
void catwire_code_type(struct catwire_buf *b, const char *name, const char *fn);

/* Replay ops into a new, indexed catalog; NULL with the reason in err when the bytes are not
 * exactly a sequence of well-formed operations or the catalog refuses one. */
struct catalog *catwire_build(const uint8_t *ops, size_t n, char *err, size_t errn);

/* Is every string of the request NUL-terminated within its field, and ca_len in bounds? */
int catwire_req_ok(const struct catwire_req *r);

/* Whole frames over a blocking descriptor: 0, or -errno (-EPIPE: the peer closed). */
int catwire_send(int fd, const void *a, size_t alen, const void *b, size_t blen);
/* Read one frame's length, then the caller reads the bytes with catwire_read_all. */
int catwire_read_all(int fd, void *buf, size_t n);

#endif
