/* The catalog loader's answers, written and checked (catalog_wire.h). */
#include "catalog_wire.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- writing (the loader) ---- */

static void put(struct catwire_buf *b, const void *p, size_t n)
{
	if (b->oom || !n)
		return;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		uint8_t *q;

		while (cap < b->len + n)
			cap *= 2;
		if (cap > CATWIRE_MAX_FRAME || !(q = realloc(b->p, cap))) {
			b->oom = 1;
			return;
		}
		b->p = q;
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void put_u8(struct catwire_buf *b, uint8_t v)
{
	put(b, &v, 1);
}

static void put_u32(struct catwire_buf *b, uint32_t v)
{
	put(b, &v, 4);
}

/* A string without its NUL; one longer than a u16 makes the buffer bad (the catalog would
 * refuse it anyway: names are under 64 bytes). */
static void put_str(struct catwire_buf *b, const char *s)
{
	size_t n = s ? strlen(s) : 0;
	uint16_t l = (uint16_t)n;

	if (n > 0xffff) {
		b->oom = 1;
		return;
	}
	put(b, &l, 2);
	put(b, s, n);
}

void catwire_rel(struct catwire_buf *b, uint32_t oid, const char *schema, const char *name,
		 char kind, uint32_t parent_oid, const char *viewdef)
{
	size_t vl = viewdef ? strlen(viewdef) : 0;

	put_u8(b, 'R');
	put_u32(b, oid);
	put_str(b, schema);
	put_str(b, name);
	put_u8(b, (uint8_t)kind);
	put_u32(b, parent_oid);
	put_u32(b, (uint32_t)vl);
	put(b, viewdef, vl);
}

void catwire_col(struct catwire_buf *b, int16_t attnum, const char *name, uint32_t type_oid)
{
	put_u8(b, 'C');
	put(b, &attnum, 2);
	put_str(b, name);
	put_u32(b, type_oid);
}

void catwire_function(struct catwire_buf *b, const char *schema, const char *name)
{
	put_u8(b, 'F');
	put_str(b, schema);
	put_str(b, name);
}

void catwire_operator(struct catwire_buf *b, const char *name, const char *fn, int shadows)
{
	put_u8(b, 'O');
	put_str(b, name);
	put_str(b, fn);
	put_u8(b, shadows != 0);
}

void catwire_code_type(struct catwire_buf *b, const char *name, const char *fn)
{
	put_u8(b, 'T');
	put_str(b, name);
	put_str(b, fn);
}

/* ---- reading (hoopd): nothing is taken on trust ---- */

struct rd {
	const uint8_t *p;
	size_t n, off;
	int bad;
};

static int get(struct rd *r, void *out, size_t n)
{
	if (r->bad || n > r->n - r->off) {
		r->bad = 1;
		return -1;
	}
	memcpy(out, r->p + r->off, n);
	r->off += n;
	return 0;
}

/* A string into a malloc'd, NUL-terminated copy (NULL when bad). A NUL inside is bad: the
 * catalog would read a shorter name than the server has. */
static char *get_bytes(struct rd *r, size_t n)
{
	char *s;

	if (r->bad || n > r->n - r->off || memchr(r->p + r->off, 0, n)) {
		r->bad = 1;
		return NULL;
	}
	if (!(s = malloc(n + 1))) {
		r->bad = 1;
		return NULL;
	}
	memcpy(s, r->p + r->off, n);
	s[n] = 0;
	r->off += n;
	return s;
}

static char *get_str(struct rd *r)
{
	uint16_t l;

	return get(r, &l, 2) ? NULL : get_bytes(r, l);
}

static char *get_lstr(struct rd *r)
{
	uint32_t l;

	return get(r, &l, 4) ? NULL : get_bytes(r, l);
}

/* One operation; 0, or -1 (bad bytes or the catalog refused it). */
static int replay_one(struct rd *r, struct catalog *c, struct cat_rel **rel, uint8_t *opc)
{
	uint8_t op = 0, kind, sh;
	uint32_t oid, parent, type;
	int16_t attnum;
	char *a = NULL, *b = NULL, *v = NULL;
	int rc = -1;

	if (get(r, &op, 1))
		return -1;
	*opc = op;
	switch (op) {
	case 'R':
		if (get(r, &oid, 4) || !(a = get_str(r)) || !(b = get_str(r)) || get(r, &kind, 1) ||
		    get(r, &parent, 4) || !(v = get_lstr(r)))
			break;
		*rel = cat_add_rel(c, oid, a, b, (char)kind, v[0] ? v : NULL);
		if (*rel) {
			(*rel)->parent_oid = parent;
			rc = 0;
		}
		break;
	case 'C':
		if (!*rel || get(r, &attnum, 2) || !(a = get_str(r)) || get(r, &type, 4))
			break;
		rc = cat_add_col(*rel, attnum, a, type) ? -1 : 0;
		break;
	case 'F':
		if ((a = get_str(r)) && (b = get_str(r)))
			rc = cat_add_function(c, a, b) ? -1 : 0;
		break;
	case 'O':
		if ((a = get_str(r)) && (b = get_str(r)) && !get(r, &sh, 1) && sh <= 1)
			rc = cat_add_operator(c, a, b, sh) ? -1 : 0;
		break;
	case 'T':
		if ((a = get_str(r)) && (b = get_str(r)))
			rc = cat_add_code_type(c, a, b) ? -1 : 0;
		break;
	default:
		break;
	}
	free(a);
	free(b);
	free(v);
	return rc;
}

struct catalog *catwire_build(const uint8_t *ops, size_t n, char *err, size_t errn)
{
	struct rd r = {.p = ops, .n = n};
	struct cat_rel *rel = NULL;
	uint8_t op = 0;
	struct catalog *c = cat_new();

	if (!c) {
		snprintf(err, errn, "out of memory reading the catalog");
		return NULL;
	}
	while (r.off < r.n)
		if (replay_one(&r, c, &rel, &op)) {
			snprintf(err, errn,
				 "the catalog loader's answer is not a catalog (operation 0x%02x, "
				 "byte %zu of %zu%s)",
				 op, r.off, r.n, r.bad ? ", malformed" : ", refused by the catalog");
			cat_free(c);
			return NULL;
		}
	if (cat_index(c)) {
		snprintf(err, errn, "out of memory reading the catalog");
		cat_free(c);
		return NULL;
	}
	return c;
}

static int terminated(const char *s, size_t n)
{
	return memchr(s, 0, n) != NULL;
}

int catwire_req_ok(const struct catwire_req *q)
{
#define T(f) terminated(q->f, sizeof(q->f))
	return T(hostaddr) && T(host) && T(port) && T(dbname) && T(user) && T(sslmode) &&
	       T(password) && T(password_error) && q->ca_len <= sizeof(q->ca_pem) &&
	       q->pinned <= 1 && q->has_password <= 1 && q->ca_system <= 1 && q->password_file_set <= 1;
#undef T
}

/* ---- frames ---- */

static int write_all(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n) {
		ssize_t w = send(fd, b, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

int catwire_send(int fd, const void *a, size_t alen, const void *b, size_t blen)
{
	uint32_t len = (uint32_t)(alen + blen);
	int r;

	if (alen + blen > CATWIRE_MAX_FRAME)
		return -EMSGSIZE;
	if ((r = write_all(fd, &len, 4)) || (r = write_all(fd, a, alen)))
		return r;
	return blen ? write_all(fd, b, blen) : 0;
}

int catwire_read_all(int fd, void *buf, size_t n)
{
	uint8_t *b = buf;

	while (n) {
		ssize_t r = read(fd, b, n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -EPIPE;
		b += r;
		n -= (size_t)r;
	}
	return 0;
}
