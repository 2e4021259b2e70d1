/* PostgreSQL wire format decoding and message builders. */
#include "pgwire.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

uint32_t pgw_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

void pgw_set_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

int pgw_frame(const uint8_t *p, size_t n, int startup, uint32_t max, struct pgw_msg *m,
	      const char **why)
{
	uint32_t len;

	if (startup) {
		if (n < 4)
			return PGW_MORE;
		len = pgw_be32(p);
		if (len < 8 || len > PG_MAX_STARTUP) {
			*why = "invalid startup packet length";
			return PGW_BAD;
		}
		if (n < len)
			return PGW_MORE;
		m->type = 0;
		m->len = len - 4;
		m->body = p + 4;
		m->total = len;
		return PGW_OK;
	}
	if (n < 5)
		return PGW_MORE;
	len = pgw_be32(p + 1);
	if (len < 4) {
		*why = "invalid message length";
		return PGW_BAD;
	}
	if (len > max) {
		*why = "message exceeds the maximum message size";
		return PGW_BAD;
	}
	if (n < (size_t)len + 1)
		return PGW_MORE;
	m->type = p[0];
	m->len = len - 4;
	m->body = p + 5;
	m->total = (size_t)len + 1;
	return PGW_OK;
}

void pgw_rd_init(struct pgw_rd *r, const struct pgw_msg *m)
{
	r->p = m->body;
	r->n = m->len;
	r->off = 0;
	r->bad = 0;
}

const uint8_t *pgw_bytes(struct pgw_rd *r, size_t n)
{
	const uint8_t *p;

	if (r->bad || n > r->n - r->off) {
		r->bad = 1;
		return NULL;
	}
	p = r->p + r->off;
	r->off += n;
	return p;
}

uint8_t pgw_u8(struct pgw_rd *r)
{
	const uint8_t *p = pgw_bytes(r, 1);

	return p ? p[0] : 0;
}

int16_t pgw_i16(struct pgw_rd *r)
{
	const uint8_t *p = pgw_bytes(r, 2);

	return p ? (int16_t)((uint16_t)p[0] << 8 | p[1]) : 0;
}

int32_t pgw_i32(struct pgw_rd *r)
{
	const uint8_t *p = pgw_bytes(r, 4);

	return p ? (int32_t)pgw_be32(p) : 0;
}

const char *pgw_str(struct pgw_rd *r, size_t *len)
{
	const uint8_t *s, *z;

	if (r->bad || r->off >= r->n) {
		r->bad = 1;
		return NULL;
	}
	s = r->p + r->off;
	z = memchr(s, 0, r->n - r->off);
	if (!z) {
		r->bad = 1;
		return NULL;
	}
	if (len)
		*len = (size_t)(z - s);
	r->off += (size_t)(z - s) + 1;
	return (const char *)s;
}

int pgw_done(const struct pgw_rd *r)
{
	return !r->bad && r->off == r->n;
}

int pgw_row_description(const struct pgw_msg *m, struct pgw_field *f, int max)
{
	struct pgw_rd r;
	int n;

	pgw_rd_init(&r, m);
	n = pgw_i16(&r);
	if (r.bad || n < 0)
		return -1;
	for (int i = 0; i < n; i++) {
		struct pgw_field x;

		x.name = pgw_str(&r, NULL);
		x.table_oid = (uint32_t)pgw_i32(&r);
		x.attnum = pgw_i16(&r);
		x.type_oid = (uint32_t)pgw_i32(&r);
		x.typlen = pgw_i16(&r);
		x.typmod = pgw_i32(&r);
		x.format = pgw_i16(&r);
		if (r.bad)
			return -1;
		if (i < max)
			f[i] = x;
	}
	return pgw_done(&r) ? n : -1;
}

enum col_class pgw_type_class(uint32_t oid)
{
	switch (oid) {
	case 18: /* "char" */
	case 19: /* name */
	case 25: /* text */
	case 705: /* unknown */
	case 1042: /* bpchar */
	case 1043: /* varchar */
		return COL_TEXT;
	case 114: /* json */
	case 3802: /* jsonb */
		return COL_JSON;
	case 142:
		return COL_XML;
	case 17:
		return COL_BYTES;
	case 16:
		return COL_BOOL;
	case 20: /* int8 */
	case 21: /* int2 */
	case 23: /* int4 */
	case 26: /* oid */
		return COL_INT;
	case 1700:
		return COL_NUMERIC;
	case 700:
	case 701:
		return COL_FLOAT;
	case 1082:
		return COL_DATE;
	case 1114:
	case 1184:
		return COL_TIMESTAMP;
	case 1083:
	case 1266:
		return COL_TIME;
	case 1186:
		return COL_INTERVAL;
	case 650: /* cidr */
	case 869: /* inet */
		return COL_INET;
	case 2950:
		return COL_UUID;
	case 143: /* _xml */
	case 199: /* _json */
	case 1000 ... 1017: /* _bool ... _point */
	case 1021 ... 1022: /* _float4, _float8 */
	case 1028: /* _oid */
	case 1040 ... 1041: /* _macaddr, _inet */
	case 1115: /* _timestamp */
	case 1182 ... 1183: /* _date, _time */
	case 1185: /* _timestamptz */
	case 1187: /* _interval */
	case 1231: /* _numeric */
	case 1270: /* _timetz */
	case 2951: /* _uuid */
	case 3807: /* _jsonb */
		return COL_ARRAY;
	default:
		return COL_OTHER;
	}
}

int pgw_row_columns(const struct pgw_msg *m, struct col_desc *c, int max)
{
	struct pgw_rd r;
	int n;

	pgw_rd_init(&r, m);
	n = pgw_i16(&r);
	if (r.bad || n < 0)
		return -1;
	for (int i = 0; i < n; i++) {
		struct col_desc x = {.engine = COL_ENGINE_PG};

		x.name = pgw_str(&r, NULL);
		x.table_id = (uint32_t)pgw_i32(&r);
		x.column_no = pgw_i16(&r);
		x.type = (uint32_t)pgw_i32(&r);
		x.length = pgw_i16(&r);
		x.type_mod = pgw_i32(&r);
		x.format = pgw_i16(&r);
		if (r.bad)
			return -1;
		x.cls = pgw_type_class(x.type);
		if (i < max)
			c[i] = x;
	}
	return pgw_done(&r) ? n : -1;
}

int pgw_error_fields(const struct pgw_msg *m, struct pgw_err_fields *e)
{
	struct pgw_rd r;

	memset(e, 0, sizeof(*e));
	pgw_rd_init(&r, m);
	for (;;) {
		uint8_t code = pgw_u8(&r);
		const char *v;

		if (r.bad)
			return -1;
		if (code == 0)
			break;
		v = pgw_str(&r, NULL);
		if (!v)
			return -1;
		switch (code) {
		case 'V':
			e->severity = v;
			break;
		case 'S':
			if (!e->severity)
				e->severity = v;
			break;
		case 'C':
			e->sqlstate = v;
			break;
		case 'M':
			e->message = v;
			break;
		case 'D':
			e->detail = v;
			break;
		}
	}
	return pgw_done(&r) ? 0 : -1;
}

int pgw_put(struct buf *out, uint8_t type, const void *body, size_t len)
{
	uint8_t *t = buf_reserve(out, len + 5);

	if (!t)
		return -ENOMEM;
	t[0] = type;
	pgw_set_be32(t + 1, (uint32_t)(len + 4));
	if (len)
		memcpy(t + 5, body, len);
	buf_commit(out, len + 5);
	return 0;
}

static size_t put_field(uint8_t *p, uint8_t code, const char *v)
{
	size_t l = strlen(v) + 1;

	p[0] = code;
	memcpy(p + 1, v, l);
	return l + 1;
}

static int put_fields(struct buf *out, uint8_t type, const char *severity, const char *sqlstate,
		      const char *msg, const char *detail, const char *hint, int position)
{
	char pos[16];
	size_t need, o = 5;
	uint8_t *t;

	snprintf(pos, sizeof(pos), "%d", position);
	need = 5 + 3 * (strlen(severity) + 2) + strlen(sqlstate) + 2 + strlen(msg) + 2 +
	       (detail ? strlen(detail) + 2 : 0) + (hint ? strlen(hint) + 2 : 0) +
	       (position > 0 ? strlen(pos) + 2 : 0) + 1;
	t = buf_reserve(out, need);
	if (!t)
		return -ENOMEM;
	t[0] = type;
	o += put_field(t + o, 'S', severity);
	o += put_field(t + o, 'V', severity);
	o += put_field(t + o, 'C', sqlstate);
	o += put_field(t + o, 'M', msg);
	if (detail)
		o += put_field(t + o, 'D', detail);
	if (hint)
		o += put_field(t + o, 'H', hint);
	if (position > 0)
		o += put_field(t + o, 'P', pos);
	t[o++] = 0;
	pgw_set_be32(t + 1, (uint32_t)(o - 1));
	buf_commit(out, o);
	return 0;
}

int pgw_put_error(struct buf *out, const char *severity, const char *sqlstate, const char *msg,
		  const char *detail, const char *hint)
{
	return put_fields(out, 'E', severity, sqlstate, msg, detail, hint, 0);
}

int pgw_put_error_at(struct buf *out, const char *severity, const char *sqlstate,
		     const char *msg, const char *detail, const char *hint, int position)
{
	return put_fields(out, 'E', severity, sqlstate, msg, detail, hint, position);
}

int pgw_put_notice(struct buf *out, const char *msg)
{
	return put_fields(out, 'N', "NOTICE", "00000", msg, NULL, NULL, 0);
}

int pgw_put_ready(struct buf *out, uint8_t status)
{
	return pgw_put(out, 'Z', &status, 1);
}

int pgw_put_query(struct buf *out, const char *sql)
{
	return pgw_put(out, 'Q', sql, strlen(sql) + 1);
}

int pgw_put_parse(struct buf *out, const char *name, const char *sql)
{
	size_t ln = strlen(name) + 1, ls = strlen(sql) + 1;
	uint8_t *t = buf_reserve(out, 5 + ln + ls + 2);

	if (!t)
		return -ENOMEM;
	t[0] = 'P';
	pgw_set_be32(t + 1, (uint32_t)(4 + ln + ls + 2));
	memcpy(t + 5, name, ln);
	memcpy(t + 5 + ln, sql, ls);
	t[5 + ln + ls] = 0;
	t[5 + ln + ls + 1] = 0;
	buf_commit(out, 5 + ln + ls + 2);
	return 0;
}
