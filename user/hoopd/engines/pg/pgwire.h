/*
 * PostgreSQL v3 wire format: message framing and field decoding for both directions, and
 * builders for the messages hoopd synthesizes. Pure functions over bytes: no sockets, no
 * state, no allocation while decoding (results point into the input). The engine (pg.c, pg_*.c) and
 * the fuzz targets build on this.
 */
#ifndef HOOP_PGWIRE_H
#define HOOP_PGWIRE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "coldesc.h"

#define PG_SSLREQUEST 80877103
#define PG_GSSENCREQUEST 80877104
#define PG_CANCELREQUEST 80877102
#define PG_PROTOCOL_3 196608
#define PG_MAX_STARTUP 10000 /* what PostgreSQL itself accepts */

enum pgw_status { PGW_MORE = 0, PGW_OK = 1, PGW_BAD = -1 };

struct pgw_msg {
	uint8_t type;	     /* 0 for an untyped startup-phase message */
	uint32_t len;	     /* body bytes */
	const uint8_t *body; /* points into the input */
	size_t total;	     /* header + body */
};

/*
 * Frame the next message in p[0..n). startup: the untyped int32-length form. Returns PGW_MORE
 * (need more input: nothing is allocated for a partial message), PGW_OK, or PGW_BAD with a
 * reason in *why (length below the minimum or above max).
 */
int pgw_frame(const uint8_t *p, size_t n, int startup, uint32_t max, struct pgw_msg *m,
	      const char **why);

/* Field reader over one message body. Any read past the end sets bad and returns zeroes. */
struct pgw_rd {
	const uint8_t *p;
	size_t n, off;
	int bad;
};

void pgw_rd_init(struct pgw_rd *r, const struct pgw_msg *m);
uint8_t pgw_u8(struct pgw_rd *r);
int16_t pgw_i16(struct pgw_rd *r);
int32_t pgw_i32(struct pgw_rd *r);
/* A NUL-terminated string: returns it (pointing into the body) and its length in *len. */
const char *pgw_str(struct pgw_rd *r, size_t *len);
const uint8_t *pgw_bytes(struct pgw_rd *r, size_t n);
int pgw_done(const struct pgw_rd *r); /* all read, nothing bad */

struct pgw_field {
	const char *name;
	uint32_t table_oid;
	int16_t attnum;
	uint32_t type_oid;
	int16_t typlen;
	int32_t typmod;
	int16_t format;
};

/* RowDescription: fills up to max fields; returns the count or -1 when malformed. */
int pgw_row_description(const struct pgw_msg *m, struct pgw_field *f, int max);
/* The same as the engine-neutral columns the record and masking APIs take (coldesc.h). */
int pgw_row_columns(const struct pgw_msg *m, struct col_desc *c, int max);
/* The class of a PostgreSQL type OID (COL_OTHER for one hoop does not classify). */
enum col_class pgw_type_class(uint32_t type_oid);

/* ErrorResponse / NoticeResponse: the fields hoopd reports. */
struct pgw_err_fields {
	const char *severity, *sqlstate, *message, *detail;
};
int pgw_error_fields(const struct pgw_msg *m, struct pgw_err_fields *e);

/* Builders: append one complete message to out. 0 or -ENOMEM. */
int pgw_put(struct buf *out, uint8_t type, const void *body, size_t len);
int pgw_put_error(struct buf *out, const char *severity, const char *sqlstate, const char *msg,
		  const char *detail, const char *hint);
/* ... with the position (1-based, in characters) in the statement text the error is at, as the
 * server's 'P' field: psql draws its LINE 1: ... ^ from it. 0: none. */
int pgw_put_error_at(struct buf *out, const char *severity, const char *sqlstate,
		     const char *msg, const char *detail, const char *hint, int position);
int pgw_put_notice(struct buf *out, const char *msg);
int pgw_put_ready(struct buf *out, uint8_t status);
int pgw_put_query(struct buf *out, const char *sql);
/* A Parse message for sql under statement name (no parameter types). */
int pgw_put_parse(struct buf *out, const char *name, const char *sql);

uint32_t pgw_be32(const uint8_t *p);
void pgw_set_be32(uint8_t *p, uint32_t v);

#endif
