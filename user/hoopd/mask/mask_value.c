/*
 * One value masked whole by a column style into a valid value of its own type, in PostgreSQL's
 * text or binary format: the type table, and per type the redact, partial, hash and
 * format-preserving outputs. Hash and format-preserving are keyed (HMAC-SHA-256) over the
 * value's canonical text, so the text and binary forms of one value mask alike. Numbers are in
 * mask_num.c, dates and times in mask_time.c; this file has the rest and the dispatch.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hex.h"
#include "mask_int.h"

/* ---- the types hoop can mask ---- */

/* oid, kind, element type (arrays), name */
#define MASK_TYPES(X)                                                                              \
	X(16, MT_BOOL, 0, "bool")                                                                  \
	X(17, MT_BYTEA, 0, "bytea")                                                                \
	X(18, MT_CHAR, 0, "char")                                                                  \
	X(19, MT_TEXT, 0, "name")                                                                  \
	X(20, MT_INT8, 0, "int8")                                                                  \
	X(21, MT_INT2, 0, "int2")                                                                  \
	X(23, MT_INT4, 0, "int4")                                                                  \
	X(25, MT_TEXT, 0, "text")                                                                  \
	X(26, MT_INT4, 0, "oid") /* masked as an int4: 0 redacted, a hash below 2^31 */           \
	X(114, MT_JSON, 0, "json")                                                                 \
	X(142, MT_XML, 0, "xml")                                                                   \
	X(143, MT_ARRAY, 142, "_xml")                                                              \
	X(199, MT_ARRAY, 114, "_json")                                                             \
	X(650, MT_CIDR, 0, "cidr")                                                                 \
	X(651, MT_ARRAY, 650, "_cidr")                                                             \
	X(700, MT_FLOAT4, 0, "float4")                                                             \
	X(701, MT_FLOAT8, 0, "float8")                                                             \
	X(705, MT_TEXT, 0, "unknown")                                                              \
	X(869, MT_INET, 0, "inet")                                                                 \
	X(1000, MT_ARRAY, 16, "_bool")                                                             \
	X(1001, MT_ARRAY, 17, "_bytea")                                                            \
	X(1002, MT_ARRAY, 18, "_char")                                                             \
	X(1003, MT_ARRAY, 19, "_name")                                                             \
	X(1005, MT_ARRAY, 21, "_int2")                                                             \
	X(1007, MT_ARRAY, 23, "_int4")                                                             \
	X(1009, MT_ARRAY, 25, "_text")                                                             \
	X(1014, MT_ARRAY, 1042, "_bpchar")                                                         \
	X(1015, MT_ARRAY, 1043, "_varchar")                                                        \
	X(1016, MT_ARRAY, 20, "_int8")                                                             \
	X(1021, MT_ARRAY, 700, "_float4")                                                          \
	X(1022, MT_ARRAY, 701, "_float8")                                                          \
	X(1041, MT_ARRAY, 869, "_inet")                                                            \
	X(1042, MT_TEXT, 0, "bpchar")                                                              \
	X(1043, MT_TEXT, 0, "varchar")                                                             \
	X(1082, MT_DATE, 0, "date")                                                                \
	X(1083, MT_TIME, 0, "time")                                                                \
	X(1114, MT_TIMESTAMP, 0, "timestamp")                                                      \
	X(1115, MT_ARRAY, 1114, "_timestamp")                                                      \
	X(1182, MT_ARRAY, 1082, "_date")                                                           \
	X(1183, MT_ARRAY, 1083, "_time")                                                           \
	X(1184, MT_TIMESTAMPTZ, 0, "timestamptz")                                                  \
	X(1185, MT_ARRAY, 1184, "_timestamptz")                                                    \
	X(1186, MT_INTERVAL, 0, "interval")                                                        \
	X(1187, MT_ARRAY, 1186, "_interval")                                                       \
	X(1231, MT_ARRAY, 1700, "_numeric")                                                        \
	X(1700, MT_NUMERIC, 0, "numeric")                                                          \
	X(2950, MT_UUID, 0, "uuid")                                                                \
	X(2951, MT_ARRAY, 2950, "_uuid")                                                           \
	X(3802, MT_JSONB, 0, "jsonb")                                                              \
	X(3807, MT_ARRAY, 3802, "_jsonb")

#define TYPE_ENUM(oid, kind, elem, name)  T_##oid,
#define TYPE_ROW(oid, kind, elem, name)	  {oid, kind, elem, name},
#define TYPE_INDEX(oid, kind, elem, name) [oid] = T_##oid + 1,

enum { MASK_TYPES(TYPE_ENUM) T_COUNT };
const struct mtype mask_types[T_COUNT] = {MASK_TYPES(TYPE_ROW)};
const uint8_t mask_type_index[MASK_TYPE_INDEX_MAX] = {MASK_TYPES(TYPE_INDEX)};

/* ---- text kinds ---- */

/* "h:" and 32 hex digits (128 bits of the HMAC): letters, digits and ':' only. */
int mask_put_hash_text(const struct mask_engine *me, const uint8_t *v, size_t n, struct buf *dst)
{
	uint8_t h[32];
	char o[2 + 32 + 1] = "h:";

	mask_hash_of(me, v, n, h);
	hex_encode(h, 16, o + 2);
	return mask_put(dst, o, 34);
}

static char fp_class(uint64_t r, int c)
{
	if (mask_isdigit(c))
		return (char)('0' + r % 10);
	if (c >= 'a' && c <= 'z')
		return (char)('a' + r % 26);
	return (char)('A' + r % 26);
}

int mask_put_fp_text(const struct mask_engine *me, const uint8_t *seed_src, size_t seed_n,
		     const uint8_t *v, size_t n, struct buf *dst)
{
	uint64_t s;
	uint8_t *o = buf_reserve(dst, n ? n : 1);

	if (!o)
		return -1;
	mask_fp_seed_of(me, seed_src, seed_n, &s);
	for (size_t i = 0; i < n; i++)
		o[i] = mask_isalnum(v[i]) ? (uint8_t)fp_class(mask_mix(&s), v[i]) : v[i];
	buf_commit(dst, n);
	return 0;
}

/* Keep the first kf and last kl characters (UTF-8: a character starts at any byte that is not
 * a continuation byte), one '*' for each other character. A value no longer than kf + kl
 * characters is starred whole: partial must never show everything. */
static int put_partial(const uint8_t *v, size_t n, int kf, int kl, struct buf *dst)
{
	size_t nc = 0, ci = 0;
	uint8_t *o;
	size_t on = 0;

	for (size_t i = 0; i < n; i++)
		nc += i == 0 || (v[i] & 0xc0) != 0x80;
	if ((size_t)kf + (size_t)kl >= nc)
		kf = kl = 0;
	o = buf_reserve(dst, n ? n : 1);
	if (!o)
		return -1;
	for (size_t i = 0; i < n; ci++) {
		size_t j = i + 1;

		while (j < n && (v[j] & 0xc0) == 0x80)
			j++;
		if (ci < (size_t)kf || ci >= nc - (size_t)kl) {
			memcpy(o + on, v + i, j - i);
			on += j - i;
		} else {
			o[on++] = '*';
		}
		i = j;
	}
	buf_commit(dst, on);
	return 0;
}

/*
 * JSON, format-preserving: the characters of string values and the digits of numbers change
 * class-preserving; object keys, escapes, keywords and structure stay, so the result is JSON of
 * the same shape. A multi-digit integer part keeps a non-zero first digit (no "07").
 */
static int put_fp_json(const struct mask_engine *me, const uint8_t *v, size_t n, struct buf *dst)
{
	uint64_t s;
	uint8_t *o = buf_reserve(dst, n ? n : 1);
	size_t i = 0;

	if (!o)
		return -1;
	mask_fp_seed_of(me, v, n, &s);
	memcpy(o, v, n);
	while (i < n) {
		if (v[i] == '"') {
			size_t j = i + 1, k;

			while (j < n && v[j] != '"')
				j += v[j] == '\\' ? 2 : 1;
			k = j + 1;
			while (k < n &&
			       (v[k] == ' ' || v[k] == '\t' || v[k] == '\n' || v[k] == '\r'))
				k++;
			if (k >= n || v[k] != ':') {
				for (size_t p = i + 1; p < j && p < n; p++) {
					if (v[p] == '\\') {
						p += p + 1 < n && v[p + 1] == 'u' ? 5 : 1;
						continue;
					}
					if (mask_isalnum(v[p]))
						o[p] = (uint8_t)fp_class(mask_mix(&s), v[p]);
				}
			}
			i = j + 1;
		} else if (v[i] == '-' || mask_isdigit(v[i])) {
			size_t a = i + (v[i] == '-'), b = a, p;

			while (b < n && mask_isdigit(v[b]))
				b++;
			for (p = a; p < b; p++) {
				uint64_t r = mask_mix(&s);

				if (b - a == 1 && v[a] == '0')
					continue; /* 0.5 stays below one */
				o[p] = (uint8_t)(p == a && b - a > 1 ? '1' + r % 9 : '0' + r % 10);
			}
			if (p < n && v[p] == '.')
				for (p++; p < n && mask_isdigit(v[p]); p++)
					o[p] = (uint8_t)('0' + mask_mix(&s) % 10);
			while (p < n && (mask_isdigit(v[p]) || v[p] == 'e' || v[p] == 'E' ||
					 v[p] == '+' || v[p] == '-'))
				p++; /* the exponent stays */
			i = p > i ? p : i + 1;
		} else {
			i++;
		}
	}
	buf_commit(dst, n);
	return 0;
}

static int mask_text_kind(const struct mask_engine *me, enum mask_style st, int kf, int kl,
			  int kind, int format, const uint8_t *v, size_t n, struct buf *dst)
{
	int json = kind == MT_JSON || kind == MT_JSONB;

	if (kind == MT_JSONB && format == 1) {
		if (n < 1 || v[0] != 1)
			return MV_UNMASKABLE;
		v++;
		n--;
		if (mask_put(dst, "\1", 1))
			return -1;
	}
	if (st == MASK_PARTIAL && kind != MT_TEXT)
		st = MASK_REDACT; /* starring raw JSON or XML would break it */
	if (st == MASK_FORMAT_PRESERVING && kind == MT_XML)
		st = MASK_REDACT; /* tags and attributes would change or leak */
	switch (st) {
	case MASK_PARTIAL:
		return MV_PUT(put_partial(v, n, kf, kl, dst));
	case MASK_HASH:
		if (json && mask_put(dst, "\"", 1))
			return -1;
		if (mask_put_hash_text(me, v, n, dst))
			return -1;
		return MV_PUT(json && mask_put(dst, "\"", 1));
	case MASK_FORMAT_PRESERVING:
		if (json)
			return MV_PUT(put_fp_json(me, v, n, dst));
		return MV_PUT(mask_put_fp_text(me, v, n, v, n, dst));
	default:
		return MV_PUT(mask_put_str(dst, json ? "\"***\"" : "***"));
	}
}

/* ---- bytea ---- */

/* bytea's text form (hex "\x..." or the escape format) decoded into out; -1 if malformed. */
static int bytea_decode(const uint8_t *v, size_t n, struct buf *out)
{
	out->len = 0;
	if (n >= 2 && v[0] == '\\' && v[1] == 'x') {
		for (size_t i = 2; i < n;) {
			int hi, lo;
			uint8_t b;

			if (v[i] == ' ' || v[i] == '\n' || v[i] == '\t' || v[i] == '\r') {
				i++;
				continue;
			}
			if (i + 1 >= n || (hi = hex_digit(v[i])) < 0 || (lo = hex_digit(v[i + 1])) < 0)
				return -1;
			b = (uint8_t)(hi << 4 | lo);
			if (mask_put(out, &b, 1))
				return -1;
			i += 2;
		}
		return 0;
	}
	for (size_t i = 0; i < n;) {
		uint8_t b = v[i];

		if (b == '\\') {
			if (i + 1 < n && v[i + 1] == '\\') {
				i += 2;
			} else if (i + 3 < n && v[i + 1] >= '0' && v[i + 1] <= '3' &&
				   v[i + 2] >= '0' && v[i + 2] <= '7' && v[i + 3] >= '0' &&
				   v[i + 3] <= '7') {
				b = (uint8_t)((v[i + 1] - '0') << 6 | (v[i + 2] - '0') << 3 |
					      (v[i + 3] - '0'));
				i += 4;
			} else {
				return -1;
			}
		} else {
			i++;
		}
		if (mask_put(out, &b, 1))
			return -1;
	}
	return 0;
}

static int put_bytea(const uint8_t *b, size_t n, int format, struct buf *dst)
{
	uint8_t *o;

	if (format == 1)
		return mask_put(dst, b, n);
	o = buf_reserve(dst, 2 + 2 * n + 1);
	if (!o)
		return -1;
	o[0] = '\\';
	o[1] = 'x';
	hex_encode(b, n, (char *)o + 2);
	buf_commit(dst, 2 + 2 * n);
	return 0;
}

static int mask_bytea(const struct mask_engine *me, enum mask_style st, int format,
		      const uint8_t *v, size_t n, struct buf *dst, struct buf *canon)
{
	uint8_t h[32];

	if (st == MASK_REDACT || st == MASK_PARTIAL)
		return MV_PUT(put_bytea(NULL, 0, format, dst));
	if (format == 0) {
		if (bytea_decode(v, n, canon))
			return MV_UNMASKABLE;
		v = canon->data;
		n = canon->len;
	}
	if (st == MASK_HASH) {
		mask_hash_of(me, v, n, h);
		return MV_PUT(put_bytea(h, 16, format, dst));
	}
	{
		/* format-preserving: keyed bytes of the same length */
		uint64_t s;
		uint8_t *o;

		mask_fp_seed_of(me, v, n, &s);
		if (format == 1) {
			o = buf_reserve(dst, n ? n : 1);
			if (!o)
				return -1;
			for (size_t i = 0; i < n; i++)
				o[i] = (uint8_t)mask_mix(&s);
			buf_commit(dst, n);
			return MV_VALUE;
		}
		o = buf_reserve(dst, 2 + 2 * n + 1);
		if (!o)
			return -1;
		o[0] = '\\';
		o[1] = 'x';
		for (size_t i = 0; i < n; i++) {
			uint8_t b = (uint8_t)mask_mix(&s);

			hex_encode(&b, 1, (char *)o + 2 + 2 * i);
		}
		buf_commit(dst, 2 + 2 * n);
		return MV_VALUE;
	}
}

/* ---- inet, uuid, bool, "char" ---- */

#define PGSQL_AF_INET  2
#define PGSQL_AF_INET6 3

static int mask_inet(const struct mask_engine *me, enum mask_style st, int kind, int format,
		     const uint8_t *v, size_t n, struct buf *dst)
{
	int cidr = kind == MT_CIDR;
	uint8_t a[4] = {0, 0, 0, 0}, bits = cidr ? 0 : 32;
	char t[96];
	const void *cp = v;
	size_t cn = n;

	if (format == 1) {
		int fam, max;
		char ip[64];

		if (n < 4 || n != 4 + (size_t)v[3])
			return MV_UNMASKABLE;
		fam = v[0];
		max = fam == PGSQL_AF_INET ? 32 : 128;
		if (!((fam == PGSQL_AF_INET && v[3] == 4) ||
		      (fam == PGSQL_AF_INET6 && v[3] == 16)) ||
		    v[1] > max)
			return MV_UNMASKABLE;
		if (!inet_ntop(fam == PGSQL_AF_INET ? AF_INET : AF_INET6, v + 4, ip, sizeof(ip)))
			return MV_UNMASKABLE;
		if (v[2] || v[1] != max)
			snprintf(t, sizeof(t), "%s/%d", ip, v[1]);
		else
			snprintf(t, sizeof(t), "%s", ip);
		cp = t;
		cn = strlen(t);
	}
	if (st == MASK_HASH || st == MASK_FORMAT_PRESERVING) {
		uint8_t h[32];

		mask_hash_of(me, cp, cn, h);
		a[0] = 10;
		a[1] = h[0];
		a[2] = h[1];
		a[3] = h[2];
		bits = 32;
	}
	if (format == 1) {
		uint8_t b[8] = {PGSQL_AF_INET, bits, (uint8_t)cidr, 4, a[0], a[1], a[2], a[3]};

		return MV_PUT(mask_put(dst, b, 8));
	}
	if (cidr)
		snprintf(t, sizeof(t), "%u.%u.%u.%u/%u", a[0], a[1], a[2], a[3], bits);
	else
		snprintf(t, sizeof(t), "%u.%u.%u.%u", a[0], a[1], a[2], a[3]);
	return MV_PUT(mask_put_str(dst, t));
}

static int mask_uuid(const struct mask_engine *me, enum mask_style st, int format, const uint8_t *v,
		     size_t n, struct buf *dst)
{
	uint8_t u[16] = {0};
	char t[40];

	if (format == 1 && n != 16)
		return MV_UNMASKABLE;
	if (st == MASK_HASH || st == MASK_FORMAT_PRESERVING) {
		uint8_t h[32];
		char c[40];
		const void *cp = v;
		size_t cn = n;

		if (format == 1) {
			char x[33];

			hex_encode(v, 16, x);
			snprintf(c, sizeof(c), "%.8s-%.4s-%.4s-%.4s-%.12s", x, x + 8, x + 12,
				 x + 16, x + 20);
			cp = c;
			cn = 36;
		} else if (n == 36) {
			for (size_t i = 0; i < 36; i++)
				c[i] = (char)(v[i] >= 'A' && v[i] <= 'F' ? v[i] + 32 : v[i]);
			cp = c;
		}
		mask_hash_of(me, cp, cn, h);
		memcpy(u, h, 16);
		u[6] = (uint8_t)((u[6] & 0x0f) | 0x40);
		u[8] = (uint8_t)((u[8] & 0x3f) | 0x80);
	}
	if (format == 1)
		return MV_PUT(mask_put(dst, u, 16));
	{
		char x[33];

		hex_encode(u, 16, x);
		snprintf(t, sizeof(t), "%.8s-%.4s-%.4s-%.4s-%.12s", x, x + 8, x + 12, x + 16,
			 x + 20);
	}
	return MV_PUT(mask_put(dst, t, 36));
}

static int mask_char(const struct mask_engine *me, enum mask_style st, int format, const uint8_t *v,
		     size_t n, struct buf *dst)
{
	uint8_t c = '*';

	if (format == 1 && n > 1)
		return MV_UNMASKABLE;
	if (st == MASK_HASH) {
		uint8_t h[32];
		char x[3];

		mask_hash_of(me, v, n, h);
		hex_encode(h, 1, x);
		c = (uint8_t)x[0];
	} else if (st == MASK_FORMAT_PRESERVING && n == 1 && mask_isalnum(v[0])) {
		uint64_t s;

		mask_fp_seed_of(me, v, n, &s);
		c = (uint8_t)fp_class(mask_mix(&s), v[0]);
	}
	return MV_PUT(mask_put(dst, &c, 1));
}

/* ---- arrays ---- */

struct elem_ctx {
	const struct mask_engine *me;
	enum mask_style st;
	int kf, kl;
	const struct mtype *et;
	int format;
};

static int elem_mask(void *ctx, const uint8_t *v, size_t n, struct buf *out)
{
	struct elem_ctx *c = ctx;

	return mask_value(c->me, c->st, c->kf, c->kl, c->et, c->format, v, n, out);
}

/* ---- the dispatcher ---- */

int mask_value(const struct mask_engine *me, enum mask_style style, int keep_first, int keep_last,
	       const struct mtype *t, int format, const uint8_t *v, size_t n, struct buf *dst)
{
	struct mask_tls *w;
	size_t start = dst->len;
	int r;

	if (!t || (format != 0 && format != 1))
		return MV_UNMASKABLE;
	if (style == MASK_NULL)
		return MV_NULL;
	w = mask_tls_get(me);
	if (!w)
		return -1;
	switch (t->kind) {
	case MT_TEXT:
	case MT_JSON:
	case MT_JSONB:
	case MT_XML:
		r = mask_text_kind(me, style, keep_first, keep_last, t->kind, format, v, n, dst);
		break;
	case MT_BYTEA:
		r = mask_bytea(me, style, format, v, n, dst, &w->canon);
		break;
	case MT_CHAR:
		r = mask_char(me, style, format, v, n, dst);
		break;
	case MT_BOOL:
		/* any keyed map of two values is a permutation of them: every style gives false */
		if (format == 1 && n != 1)
			return MV_UNMASKABLE;
		r = MV_PUT(mask_put(dst, format == 1 ? "\0" : "f", 1));
		break;
	case MT_INT2:
	case MT_INT4:
	case MT_INT8:
		r = mask_int(me, style, t->kind, format, v, n, dst);
		break;
	case MT_NUMERIC:
		r = mask_numeric(me, style, format, v, n, dst, &w->canon);
		break;
	case MT_FLOAT4:
	case MT_FLOAT8:
		r = mask_float(me, style, t->kind, format, v, n, dst);
		break;
	case MT_DATE:
	case MT_TIMESTAMP:
	case MT_TIMESTAMPTZ:
	case MT_TIME:
		r = mask_datetime(me, style, t->kind, format, v, n, dst);
		break;
	case MT_INET:
	case MT_CIDR:
		r = mask_inet(me, style, t->kind, format, v, n, dst);
		break;
	case MT_UUID:
		r = mask_uuid(me, style, format, v, n, dst);
		break;
	case MT_INTERVAL:
		r = mask_interval(me, style, format, v, n, dst);
		break;
	case MT_ARRAY: {
		struct elem_ctx c = {me, style, keep_first, keep_last, mask_type(t->elem), format};

		if (!c.et || c.et->kind == MT_ARRAY)
			return MV_UNMASKABLE;
		r = mask_array_map(t, format, v, n, elem_mask, &c, w, dst);
		if (r == MV_KEEP) /* every element NULL: nothing to hide, the array as it was */
			r = MV_PUT(mask_put(dst, v, n));
		break;
	}
	default:
		r = MV_UNMASKABLE;
	}
	if (r != MV_VALUE)
		dst->len = start;
	return r;
}
