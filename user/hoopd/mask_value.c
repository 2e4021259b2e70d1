/*
 * One value masked whole by a column style into a valid value of its own type, in PostgreSQL's
 * text or binary format: the type table, and per type the redact, partial, hash and
 * format-preserving outputs. Hash and format-preserving are keyed (HMAC-SHA-256) over the
 * value's canonical text, so the text and binary forms of one value mask alike.
 */
#include <arpa/inet.h>
#include <math.h>
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

/* ---- output ---- */

static int put(struct buf *b, const void *p, size_t n)
{
	return n && buf_append(b, p, n) ? -1 : 0;
}

static int put_str(struct buf *b, const char *s)
{
	return put(b, s, strlen(s));
}

static int put_be(struct buf *b, uint64_t v, int width)
{
	uint8_t o[8];

	for (int i = 0; i < width; i++)
		o[i] = (uint8_t)(v >> (8 * (width - 1 - i)));
	return put(b, o, (size_t)width);
}

static uint64_t get_be(const uint8_t *p, int width)
{
	uint64_t v = 0;

	for (int i = 0; i < width; i++)
		v = v << 8 | p[i];
	return v;
}

/* (buf_reserve gets at least one byte: on a buffer never allocated, reserving none would
 * hand back a null pointer plus nothing.) */

/* Either text or binary for one value: ret is MV_VALUE or -1. */
#define PUT(expr) ((expr) ? -1 : MV_VALUE)

static void hash_of(const struct mask_engine *me, const void *v, size_t n, uint8_t h[32])
{
	mask_hmac(me, v, n, NULL, 0, h);
}

static void fp_seed_of(const struct mask_engine *me, const void *v, size_t n, uint64_t *seed)
{
	uint8_t h[32];

	mask_hmac(me, "fp:", 3, v, n, h);
	*seed = mask_u64(h) ^ mask_u64(h + 8);
}

/* ---- text kinds ---- */

/* "h:" and 32 hex digits (128 bits of the HMAC): letters, digits and ':' only. */
int mask_put_hash_text(const struct mask_engine *me, const uint8_t *v, size_t n, struct buf *dst)
{
	uint8_t h[32];
	char o[2 + 32 + 1] = "h:";

	hash_of(me, v, n, h);
	hex_encode(h, 16, o + 2);
	return put(dst, o, 34);
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
	fp_seed_of(me, seed_src, seed_n, &s);
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
	fp_seed_of(me, v, n, &s);
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
		if (put(dst, "\1", 1))
			return -1;
	}
	if (st == MASK_PARTIAL && kind != MT_TEXT)
		st = MASK_REDACT; /* starring raw JSON or XML would break it */
	if (st == MASK_FORMAT_PRESERVING && kind == MT_XML)
		st = MASK_REDACT; /* tags and attributes would change or leak */
	switch (st) {
	case MASK_PARTIAL:
		return PUT(put_partial(v, n, kf, kl, dst));
	case MASK_HASH:
		if (json && put(dst, "\"", 1))
			return -1;
		if (mask_put_hash_text(me, v, n, dst))
			return -1;
		return PUT(json && put(dst, "\"", 1));
	case MASK_FORMAT_PRESERVING:
		if (json)
			return PUT(put_fp_json(me, v, n, dst));
		return PUT(mask_put_fp_text(me, v, n, v, n, dst));
	default:
		return PUT(put_str(dst, json ? "\"***\"" : "***"));
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
			if (put(out, &b, 1))
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
		if (put(out, &b, 1))
			return -1;
	}
	return 0;
}

static int put_bytea(const uint8_t *b, size_t n, int format, struct buf *dst)
{
	uint8_t *o;

	if (format == 1)
		return put(dst, b, n);
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
		return PUT(put_bytea(NULL, 0, format, dst));
	if (format == 0) {
		if (bytea_decode(v, n, canon))
			return MV_UNMASKABLE;
		v = canon->data;
		n = canon->len;
	}
	if (st == MASK_HASH) {
		hash_of(me, v, n, h);
		return PUT(put_bytea(h, 16, format, dst));
	}
	{
		/* format-preserving: keyed bytes of the same length */
		uint64_t s;
		uint8_t *o;

		fp_seed_of(me, v, n, &s);
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

/* ---- integers ---- */

static int parse_i64(const uint8_t *v, size_t n, int64_t *out)
{
	size_t i = 0;
	int neg = 0;
	uint64_t m = 0;

	while (i < n && v[i] == ' ')
		i++;
	while (n > i && v[n - 1] == ' ')
		n--;
	if (i < n && (v[i] == '-' || v[i] == '+'))
		neg = v[i++] == '-';
	if (i >= n)
		return -1;
	for (; i < n; i++) {
		if (!mask_isdigit(v[i]) || m > (UINT64_MAX - 9) / 10)
			return -1;
		m = m * 10 + (uint64_t)(v[i] - '0');
	}
	if (neg ? m > (uint64_t)INT64_MAX + 1 : m > (uint64_t)INT64_MAX)
		return -1;
	*out = neg ? (int64_t)(0 - m) : (int64_t)m;
	return 0;
}

static int ndigits_u64(uint64_t m)
{
	int d = 1;

	while (m >= 10) {
		m /= 10;
		d++;
	}
	return d;
}

static uint64_t pow10_u64(int d)
{
	uint64_t p = 1;

	while (d-- > 0)
		p *= 10;
	return p;
}

/* A keyed number with as many digits as |x|, within [-max-1, max], sign kept. */
static int64_t fp_int(const struct mask_engine *me, int64_t x, uint64_t max)
{
	char t[24];
	uint8_t h[32];
	uint64_t m = x < 0 ? 0 - (uint64_t)x : (uint64_t)x, lo, hi, y;
	int d = ndigits_u64(m);

	snprintf(t, sizeof(t), "%lld", (long long)x);
	mask_hmac(me, "fp:", 3, t, strlen(t), h);
	lo = d == 1 ? 0 : pow10_u64(d - 1);
	hi = d >= 20 ? UINT64_MAX : pow10_u64(d) - 1;
	if (hi > max)
		hi = max;
	y = lo + mask_u64(h) % (hi - lo + 1);
	return x < 0 ? -(int64_t)y : (int64_t)y;
}

static int mask_int(const struct mask_engine *me, enum mask_style st, int kind, int format,
		    const uint8_t *v, size_t n, struct buf *dst)
{
	int w = kind == MT_INT2 ? 2 : kind == MT_INT4 ? 4 : 8;
	uint64_t max = kind == MT_INT2 ? 32767 : kind == MT_INT4 ? INT32_MAX : INT64_MAX;
	int64_t x, y = 0;
	char t[24];

	if (format == 1) {
		uint64_t u;

		if (n != (size_t)w)
			return MV_UNMASKABLE;
		u = get_be(v, w);
		x = w == 2 ? (int16_t)u : w == 4 ? (int32_t)u : (int64_t)u;
	} else if (parse_i64(v, n, &x) || x > (int64_t)max || x < -(int64_t)max - 1) {
		return MV_UNMASKABLE;
	}
	if (st == MASK_HASH) {
		uint8_t h[32];

		snprintf(t, sizeof(t), "%lld", (long long)x);
		hash_of(me, t, strlen(t), h);
		y = (int64_t)(mask_u64(h) % (max + 1));
	} else if (st == MASK_FORMAT_PRESERVING) {
		y = fp_int(me, x, max);
	}
	if (format == 1)
		return PUT(put_be(dst, (uint64_t)y, w));
	snprintf(t, sizeof(t), "%lld", (long long)y);
	return PUT(put_str(dst, t));
}

/* ---- numeric ---- */

#define NUMERIC_POS	 0x0000
#define NUMERIC_NEG	 0x4000
#define NUMERIC_NAN	 0xC000
#define NUMERIC_PINF	 0xD000
#define NUMERIC_NINF	 0xF000
#define NUMERIC_MAX_TEXT 200000 /* bounds what a binary numeric may expand to */

/* numeric's binary form as its text ("-12.340", "NaN"); -1 if malformed. */
static int numeric_to_text(const uint8_t *v, size_t n, struct buf *out)
{
	int nd, weight, sign, dscale;
	char g[8];

	out->len = 0;
	if (n < 8)
		return -1;
	nd = (int)get_be(v, 2);
	weight = (int16_t)get_be(v + 2, 2);
	sign = (int)get_be(v + 4, 2);
	dscale = (int)get_be(v + 6, 2);
	if (n != 8 + 2 * (size_t)nd || dscale > 0x3fff)
		return -1;
	if (sign == NUMERIC_NAN || sign == NUMERIC_PINF || sign == NUMERIC_NINF)
		return put_str(out, sign == NUMERIC_NAN	   ? "NaN"
				    : sign == NUMERIC_PINF ? "Infinity"
							   : "-Infinity");
	if (sign != NUMERIC_POS && sign != NUMERIC_NEG)
		return -1;
	for (int i = 0; i < nd; i++)
		if (get_be(v + 8 + 2 * i, 2) > 9999)
			return -1;
	if (4 * ((size_t)(weight > 0 ? weight : 0) + 1) + (size_t)dscale > NUMERIC_MAX_TEXT)
		return -1;
	if (sign == NUMERIC_NEG && nd > 0 && put(out, "-", 1))
		return -1;
	if (weight < 0) {
		if (put(out, "0", 1))
			return -1;
	} else {
		for (int d = 0; d <= weight; d++) {
			int dig = d < nd ? (int)get_be(v + 8 + 2 * d, 2) : 0;

			snprintf(g, sizeof(g), d == 0 ? "%d" : "%04d", dig);
			if (put_str(out, g))
				return -1;
		}
	}
	if (dscale > 0) {
		int left = dscale;

		if (put(out, ".", 1))
			return -1;
		for (int d = weight + 1; left > 0; d++) {
			int dig = d >= 0 && d < nd ? (int)get_be(v + 8 + 2 * d, 2) : 0;

			snprintf(g, sizeof(g), "%04d", dig);
			if (put(out, g, left < 4 ? (size_t)left : 4))
				return -1;
			left -= 4;
		}
	}
	return 0;
}

struct dec {
	int special; /* 0, or NUMERIC_NAN / PINF / NINF */
	int neg;
	const uint8_t *ip, *fp; /* integer and fraction digits */
	size_t il, fl;
	size_t exp_at, exp_len; /* floats: the exponent, kept as written */
};

/* [-]digits[.digits][e[+-]digits], or NaN / Infinity / -Infinity. */
static int parse_dec(const uint8_t *v, size_t n, int allow_exp, struct dec *d)
{
	size_t i = 0;

	memset(d, 0, sizeof(*d));
	if ((n == 3 && !memcmp(v, "NaN", 3))) {
		d->special = NUMERIC_NAN;
		return 0;
	}
	if (n == 8 && !memcmp(v, "Infinity", 8)) {
		d->special = NUMERIC_PINF;
		return 0;
	}
	if (n == 9 && !memcmp(v, "-Infinity", 9)) {
		d->special = NUMERIC_NINF;
		return 0;
	}
	if (i < n && (v[i] == '-' || v[i] == '+'))
		d->neg = v[i++] == '-';
	d->ip = v + i;
	while (i < n && mask_isdigit(v[i]))
		i++;
	d->il = (size_t)(v + i - d->ip);
	if (i < n && v[i] == '.') {
		i++;
		d->fp = v + i;
		while (i < n && mask_isdigit(v[i]))
			i++;
		d->fl = (size_t)(v + i - d->fp);
	}
	if (!d->il && !d->fl)
		return -1;
	if (allow_exp && i < n && (v[i] == 'e' || v[i] == 'E')) {
		d->exp_at = i;
		i++;
		if (i < n && (v[i] == '+' || v[i] == '-'))
			i++;
		if (i >= n || !mask_isdigit(v[i]))
			return -1;
		while (i < n && mask_isdigit(v[i]))
			i++;
		d->exp_len = i - d->exp_at;
	}
	return i == n ? 0 : -1;
}

/* Text of a decimal whose digits are chosen by the keyed stream, shape kept. */
static int put_fp_dec(const struct mask_engine *me, const uint8_t *v, size_t n, const struct dec *d,
		      struct buf *dst)
{
	uint64_t s;
	uint8_t *o;
	size_t on = 0;

	if (d->special)
		return put(dst, v, n);
	fp_seed_of(me, v, n, &s);
	o = buf_reserve(dst, n + 2);
	if (!o)
		return -1;
	if (d->neg)
		o[on++] = '-';
	for (size_t i = 0; i < d->il; i++) {
		uint64_t r = mask_mix(&s);
		int lead = i == 0 && (d->il > 1 || d->ip[0] != '0');

		o[on++] = (uint8_t)(lead ? '1' + r % 9 : '0' + r % 10);
		if (i == 0 && d->il == 1 && d->ip[0] == '0')
			o[on - 1] = '0';
	}
	if (d->fp) {
		o[on++] = '.';
		for (size_t i = 0; i < d->fl; i++)
			o[on++] = (uint8_t)('0' + mask_mix(&s) % 10);
	}
	if (d->exp_len) {
		memcpy(o + on, v + d->exp_at, d->exp_len);
		on += d->exp_len;
	}
	buf_commit(dst, on);
	return 0;
}

/* numeric's binary form from decimal text; -1 if the text is not a plain decimal. */
static int numeric_from_text(const uint8_t *v, size_t n, struct buf *dst)
{
	struct dec d;
	size_t il, pad, ig, fg, nd, first = 0;
	uint16_t *g;
	int weight;

	if (parse_dec(v, n, 0, &d))
		return -1;
	if (d.special) {
		return put_be(dst, 0, 2) || put_be(dst, 0, 2) ||
		       put_be(dst, (uint64_t)d.special, 2) || put_be(dst, 0, 2);
	}
	while (d.il && d.ip[0] == '0') {
		d.ip++;
		d.il--;
	}
	if (d.fl > 0x3fff)
		return -1;
	il = d.il;
	pad = (4 - il % 4) % 4;
	ig = (il + pad) / 4;
	fg = (d.fl + 3) / 4;
	nd = ig + fg;
	g = calloc(nd ? nd : 1, sizeof(*g));
	if (!g)
		return -1;
	for (size_t i = 0; i < il; i++) {
		size_t pos = pad + i;

		g[pos / 4] = (uint16_t)(g[pos / 4] * 10 + (d.ip[i] - '0'));
	}
	for (size_t i = 0; i < fg * 4; i++) {
		size_t k = ig + i / 4;

		g[k] = (uint16_t)(g[k] * 10 + (i < d.fl ? d.fp[i] - '0' : 0));
	}
	weight = (int)ig - 1;
	while (first < nd && g[first] == 0) {
		first++;
		weight--;
	}
	while (nd > first && g[nd - 1] == 0)
		nd--;
	{
		size_t cnt = nd - first;
		int r = put_be(dst, cnt, 2) || put_be(dst, (uint16_t)(cnt ? weight : 0), 2) ||
			put_be(dst, cnt && d.neg ? NUMERIC_NEG : NUMERIC_POS, 2) ||
			put_be(dst, d.fl, 2);

		for (size_t i = first; !r && i < nd; i++)
			r = put_be(dst, g[i], 2);
		free(g);
		return r ? -1 : 0;
	}
}

static int mask_numeric(const struct mask_engine *me, enum mask_style st, int format,
			const uint8_t *v, size_t n, struct buf *dst, struct buf *canon)
{
	struct dec d;
	size_t start = dst->len;

	if (format == 1) {
		if (numeric_to_text(v, n, canon))
			return MV_UNMASKABLE;
		v = canon->data;
		n = canon->len;
	}
	if (parse_dec(v, n, 0, &d))
		return MV_UNMASKABLE;
	if (st == MASK_HASH) {
		uint8_t h[32];
		char t[24];

		hash_of(me, v, n, h);
		snprintf(t, sizeof(t), "%llu",
			 (unsigned long long)(mask_u64(h) % 1000000000000000ULL));
		if (format == 1)
			return PUT(numeric_from_text((const uint8_t *)t, strlen(t), dst));
		return PUT(put_str(dst, t));
	}
	if (st == MASK_FORMAT_PRESERVING) {
		if (format == 0)
			return PUT(put_fp_dec(me, v, n, &d, dst));
		/* binary: the masked text, then its binary form in its place */
		if (put_fp_dec(me, v, n, &d, dst))
			return -1;
		{
			size_t tl = dst->len - start;
			uint8_t tmp[64], *t = tl <= sizeof(tmp) ? tmp : malloc(tl);
			int r;

			if (!t)
				return -1;
			memcpy(t, buf_head(dst) + start, tl);
			dst->len = start;
			r = numeric_from_text(t, tl, dst);
			if (t != tmp)
				free(t);
			return PUT(r);
		}
	}
	if (format == 1)
		return PUT(numeric_from_text((const uint8_t *)"0", 1, dst));
	return PUT(put(dst, "0", 1));
}

/* ---- floats ---- */

/* The shortest text that reads back as x, spelled as PostgreSQL's float4out/float8out spell it
 * (exponent form below 1e-4 and from 1e6 / 1e15 on). */
static void float_text(double x, int is4, char *out, size_t on)
{
	char e[40], digits[24];
	int p, exp10, nd = 0;
	const char *q;

	if (isnan(x)) {
		snprintf(out, on, "NaN");
		return;
	}
	if (isinf(x)) {
		snprintf(out, on, x > 0 ? "Infinity" : "-Infinity");
		return;
	}
	if (x == 0) {
		snprintf(out, on, signbit(x) ? "-0" : "0");
		return;
	}
	for (p = 1; p <= 17; p++) {
		snprintf(e, sizeof(e), "%.*e", p - 1, x);
		if (is4 ? (float)strtod(e, NULL) == (float)x : strtod(e, NULL) == x)
			break;
	}
	q = e + (e[0] == '-');
	for (; *q && *q != 'e'; q++)
		if (mask_isdigit(*q))
			digits[nd++] = *q;
	exp10 = atoi(q + 1);
	while (nd > 1 && digits[nd - 1] == '0')
		nd--;
	digits[nd] = '\0';
	if (exp10 < -4 || exp10 >= (is4 ? 6 : 15)) {
		snprintf(out, on, "%s%c%s%s%se%c%02d", x < 0 ? "-" : "", digits[0],
			 nd > 1 ? "." : "", digits + 1, "", exp10 < 0 ? '-' : '+', abs(exp10));
	} else if (exp10 < 0) {
		snprintf(out, on, "%s0.%0*d%s", x < 0 ? "-" : "", -exp10 - 1, 0, digits);
		if (exp10 == -1) /* "%0*d" with width 0 still prints one zero */
			snprintf(out, on, "%s0.%s", x < 0 ? "-" : "", digits);
	} else {
		char ip[24], fp[24];
		int k = exp10 + 1;

		snprintf(ip, sizeof(ip), "%.*s", k < nd ? k : nd, digits);
		while ((int)strlen(ip) < k)
			strcat(ip, "0");
		snprintf(fp, sizeof(fp), "%s", k < nd ? digits + k : "");
		snprintf(out, on, "%s%s%s%s", x < 0 ? "-" : "", ip, fp[0] ? "." : "", fp);
	}
}

static int put_float(double x, int is4, int format, struct buf *dst)
{
	char t[48];

	if (format == 1) {
		if (is4) {
			float f = (float)x;
			uint32_t u;

			memcpy(&u, &f, 4);
			return put_be(dst, u, 4);
		} else {
			uint64_t u;

			memcpy(&u, &x, 8);
			return put_be(dst, u, 8);
		}
	}
	float_text(x, is4, t, sizeof(t));
	return put_str(dst, t);
}

static int mask_float(const struct mask_engine *me, enum mask_style st, int kind, int format,
		      const uint8_t *v, size_t n, struct buf *dst)
{
	int is4 = kind == MT_FLOAT4;
	char t[64], o[64];
	size_t tl;
	double x;
	struct dec d;

	if (format == 1) {
		if (n != (is4 ? 4u : 8u))
			return MV_UNMASKABLE;
		if (is4) {
			uint32_t u = (uint32_t)get_be(v, 4);
			float f;

			memcpy(&f, &u, 4);
			x = f;
		} else {
			uint64_t u = get_be(v, 8);

			memcpy(&x, &u, 8);
		}
		float_text(x, is4, t, sizeof(t));
	} else {
		if (n >= sizeof(t))
			return MV_UNMASKABLE;
		memcpy(t, v, n);
		t[n] = '\0';
	}
	tl = strlen(t);
	if (st == MASK_HASH) {
		uint8_t h[32];

		hash_of(me, t, tl, h);
		/* whole numbers below 1e6 / 1e15: exact, and written without an exponent */
		return PUT(
		    put_float((double)(mask_u64(h) % (is4 ? 1000000ULL : 1000000000000000ULL)), is4,
			      format, dst));
	}
	if (st == MASK_FORMAT_PRESERVING && !parse_dec((const uint8_t *)t, tl, 1, &d)) {
		struct buf b = {0};
		double y;
		int r;

		if (put_fp_dec(me, (const uint8_t *)t, tl, &d, &b) || b.len >= sizeof(o)) {
			buf_free(&b);
			return -1;
		}
		memcpy(o, b.data, b.len);
		o[b.len] = '\0';
		buf_free(&b);
		y = strtod(o, NULL);
		if (is4)
			y = (float)y;
		if (isfinite(y) || d.special) {
			r = format == 1 ? put_float(y, is4, 1, dst) : put_str(dst, o);
			return PUT(r);
		}
	} else if (st == MASK_FORMAT_PRESERVING && format == 0) {
		return MV_UNMASKABLE;
	}
	return PUT(put_float(0, is4, format, dst));
}

/* ---- dates and times ---- */

#define PG_EPOCH_DAYS 10957 /* 2000-01-01 in days since 1970-01-01 */
#define USEC_PER_DAY  86400000000LL

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	int64_t era;
	unsigned doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = (unsigned)(z - era * 146097);
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int64_t)yoe + era * 400 + (*m <= 2);
}

/* PostgreSQL days (since 2000-01-01) of y-m-d. */
static int64_t pg_days(int64_t y, unsigned m, unsigned d)
{
	return days_from_civil(y, m, d) - PG_EPOCH_DAYS;
}

/* Hash-derived dates fall in 1920-01-01 .. 2005-12-31: plausible for people. */
static int64_t derived_days(uint64_t h)
{
	int64_t lo = pg_days(1920, 1, 1), hi = pg_days(2005, 12, 31);

	return lo + (int64_t)(h % (uint64_t)(hi - lo + 1));
}

static int month_days(int64_t y, unsigned m)
{
	static const int md[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return m == 2 && leap ? 29 : md[m - 1];
}

/* v in exactly w decimal digits (w <= 20), zero-padded; returns w. snprintf costs more than the
 * rest of a date's masking. */
static size_t put_dec(char *o, uint64_t v, size_t w)
{
	for (size_t i = w; i-- > 0; v /= 10)
		o[i] = (char)('0' + v % 10);
	return w;
}

/* "YYYY-MM-DD" (at least four year digits); o holds 32 bytes. */
static size_t fmt_date(int64_t days, char *o, size_t on, int *bc)
{
	int64_t y;
	unsigned m, d;
	uint64_t ay;
	size_t l = 0, yw = 4;

	(void)on;
	civil_from_days(days + PG_EPOCH_DAYS, &y, &m, &d);
	*bc = y <= 0;
	ay = (uint64_t)(y <= 0 ? 1 - y : y);
	while (yw < 20 && ay >= pow10_u64((int)yw))
		yw++;
	l += put_dec(o + l, ay, yw);
	o[l++] = '-';
	l += put_dec(o + l, m, 2);
	o[l++] = '-';
	l += put_dec(o + l, d, 2);
	o[l] = '\0';
	return l;
}

/* "HH:MM:SS[.ffffff]" (trailing zeros of the fraction dropped); o holds 32 bytes. */
static size_t fmt_time(int64_t us, char *o, size_t on)
{
	uint64_t u = us < 0 ? 0 : (uint64_t)us, s = u / 1000000, f = u % 1000000;
	size_t l = 0;

	(void)on;
	l += put_dec(o + l, s / 3600 % 100, 2);
	o[l++] = ':';
	l += put_dec(o + l, s / 60 % 60, 2);
	o[l++] = ':';
	l += put_dec(o + l, s % 60, 2);
	if (f) {
		size_t k = 6;

		o[l++] = '.';
		put_dec(o + l, f, 6);
		while (k > 0 && o[l + k - 1] == '0')
			k--;
		l += k;
	}
	o[l] = '\0';
	return l;
}

/* o holds 80 bytes */
static void fmt_ts(int64_t us, int tz, char *o, size_t on)
{
	int64_t days, rem;
	int bc;
	size_t l;

	(void)on;
	if (us == INT64_MAX || us == INT64_MIN) {
		strcpy(o, us == INT64_MAX ? "infinity" : "-infinity");
		return;
	}
	days = us / USEC_PER_DAY;
	rem = us % USEC_PER_DAY;
	if (rem < 0) {
		rem += USEC_PER_DAY;
		days--;
	}
	l = fmt_date(days, o, 32, &bc);
	o[l++] = ' ';
	l += fmt_time(rem, o + l, 32);
	if (tz) {
		memcpy(o + l, "+00", 3);
		l += 3;
	}
	if (bc) {
		memcpy(o + l, " BC", 3);
		l += 3;
	}
	o[l] = '\0';
}

/* o holds 48 bytes */
static void fmt_pgdate(int64_t days, char *o, size_t on)
{
	int bc;
	size_t l;

	(void)on;
	if (days == INT32_MAX || days == INT32_MIN) {
		strcpy(o, days == INT32_MAX ? "infinity" : "-infinity");
		return;
	}
	l = fmt_date(days, o, 32, &bc);
	if (bc)
		strcpy(o + l, " BC");
}

/* Fixed-width decimal field; advances *i. */
static int num_field(const uint8_t *v, size_t n, size_t *i, int minw, int maxw, int64_t *out)
{
	int64_t x = 0;
	int w = 0;

	while (*i < n && mask_isdigit(v[*i]) && w < maxw) {
		x = x * 10 + (v[(*i)++] - '0');
		w++;
	}
	*out = x;
	return w >= minw ? 0 : -1;
}

static int lit(const uint8_t *v, size_t n, size_t *i, char c)
{
	if (*i < n && v[*i] == c) {
		(*i)++;
		return 0;
	}
	return -1;
}

/* ISO "YYYY-MM-DD" at v+*i into PostgreSQL days (BC applied later by the caller). */
static int parse_ymd(const uint8_t *v, size_t n, size_t *i, int64_t *y, int64_t *m, int64_t *d)
{
	if (num_field(v, n, i, 4, 7, y) || lit(v, n, i, '-') || num_field(v, n, i, 2, 2, m) ||
	    lit(v, n, i, '-') || num_field(v, n, i, 2, 2, d))
		return -1;
	if (*m < 1 || *m > 12 || *d < 1 || *d > month_days(*y, (unsigned)*m))
		return -1;
	return 0;
}

static int parse_hms(const uint8_t *v, size_t n, size_t *i, int64_t *us)
{
	int64_t h, mi, s, f = 0;

	if (num_field(v, n, i, 2, 2, &h) || lit(v, n, i, ':') || num_field(v, n, i, 2, 2, &mi) ||
	    lit(v, n, i, ':') || num_field(v, n, i, 2, 2, &s))
		return -1;
	if (*i < n && v[*i] == '.') {
		size_t a = ++(*i);
		int64_t fr;

		if (num_field(v, n, i, 1, 6, &fr))
			return -1;
		f = fr;
		for (size_t k = *i - a; k < 6; k++)
			f *= 10;
	}
	if (h > 24 || mi > 59 || s > 60)
		return -1;
	*us = ((h * 60 + mi) * 60 + s) * 1000000 + f;
	return 0;
}

static int parse_bc(const uint8_t *v, size_t n, size_t *i, int64_t *y)
{
	if (*i + 3 <= n && !memcmp(v + *i, " BC", 3)) {
		*i += 3;
		*y = 1 - *y;
	}
	return *i == n ? 0 : -1;
}

static int parse_date_text(const uint8_t *v, size_t n, int64_t *days)
{
	size_t i = 0;
	int64_t y, m, d;

	if (n == 8 && !memcmp(v, "infinity", 8)) {
		*days = INT32_MAX;
		return 0;
	}
	if (n == 9 && !memcmp(v, "-infinity", 9)) {
		*days = INT32_MIN;
		return 0;
	}
	if (parse_ymd(v, n, &i, &y, &m, &d) || parse_bc(v, n, &i, &y))
		return -1;
	*days = pg_days(y, (unsigned)m, (unsigned)d);
	return 0;
}

/* "YYYY-MM-DD HH:MM:SS[.f][+-HH[:MM[:SS]]][ BC]" into microseconds since 2000-01-01 (UTC when
 * an offset is given). */
static int parse_ts_text(const uint8_t *v, size_t n, int64_t *us)
{
	size_t i = 0;
	int64_t y, m, d, t, off = 0;

	if (n == 8 && !memcmp(v, "infinity", 8)) {
		*us = INT64_MAX;
		return 0;
	}
	if (n == 9 && !memcmp(v, "-infinity", 9)) {
		*us = INT64_MIN;
		return 0;
	}
	if (parse_ymd(v, n, &i, &y, &m, &d) || lit(v, n, &i, ' ') || parse_hms(v, n, &i, &t))
		return -1;
	if (i < n && (v[i] == '+' || v[i] == '-')) {
		int neg = v[i++] == '-';
		int64_t oh, om = 0, os = 0;

		if (num_field(v, n, &i, 2, 2, &oh))
			return -1;
		if (i < n && v[i] == ':' && (i++, num_field(v, n, &i, 2, 2, &om)))
			return -1;
		if (i < n && v[i] == ':' && (i++, num_field(v, n, &i, 2, 2, &os)))
			return -1;
		off = (oh * 3600 + om * 60 + os) * 1000000;
		if (neg)
			off = -off;
	}
	if (parse_bc(v, n, &i, &y))
		return -1;
	/* past PostgreSQL's range (year 294276) the microseconds would overflow: not a
	 * timestamp, so its text is what gets hashed */
	if (__builtin_mul_overflow(pg_days(y, (unsigned)m, (unsigned)d), USEC_PER_DAY, us) ||
	    __builtin_add_overflow(*us, t - off, us))
		return -1;
	return 0;
}

static int mask_datetime(const struct mask_engine *me, enum mask_style st, int kind, int format,
			 const uint8_t *v, size_t n, struct buf *dst)
{
	char canon[80], o[80];
	int64_t x = 0, days;
	uint8_t h[32];
	int tz = kind == MT_TIMESTAMPTZ, have = 1;
	const void *cp;
	size_t cn;

	/* the canonical text: from the parsed value, or the text as sent if it is not ISO */
	if (format == 1) {
		if (n != (kind == MT_DATE ? 4u : 8u))
			return MV_UNMASKABLE;
		x = kind == MT_DATE ? (int32_t)get_be(v, 4) : (int64_t)get_be(v, 8);
	} else if (kind == MT_DATE) {
		have = !parse_date_text(v, n, &x);
	} else if (kind == MT_TIME) {
		size_t i = 0;

		have = !parse_hms(v, n, &i, &x) && i == n;
	} else {
		have = !parse_ts_text(v, n, &x);
	}
	if (have && kind == MT_DATE)
		fmt_pgdate(x, canon, sizeof(canon));
	else if (have && kind == MT_TIME)
		fmt_time(x, canon, sizeof(canon));
	else if (have)
		fmt_ts(x, tz, canon, sizeof(canon));
	cp = have ? (const void *)canon : v;
	cn = have ? strlen(canon) : n;
	if (st == MASK_HASH || st == MASK_FORMAT_PRESERVING) {
		hash_of(me, cp, cn, h);
		days = derived_days(mask_u64(h));
		x = (int64_t)(mask_u64(h + 8) % 86400) * 1000000;
	} else {
		days = pg_days(1900, 1, 1);
		x = 0;
	}
	switch (kind) {
	case MT_DATE:
		if (format == 1)
			return PUT(put_be(dst, (uint32_t)(int32_t)days, 4));
		fmt_pgdate(days, o, sizeof(o));
		break;
	case MT_TIME:
		if (format == 1)
			return PUT(put_be(dst, (uint64_t)x, 8));
		fmt_time(x, o, sizeof(o));
		break;
	default:
		x += days * USEC_PER_DAY;
		if (format == 1)
			return PUT(put_be(dst, (uint64_t)x, 8));
		fmt_ts(x, tz, o, sizeof(o));
	}
	return PUT(put_str(dst, o));
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

		hash_of(me, cp, cn, h);
		a[0] = 10;
		a[1] = h[0];
		a[2] = h[1];
		a[3] = h[2];
		bits = 32;
	}
	if (format == 1) {
		uint8_t b[8] = {PGSQL_AF_INET, bits, (uint8_t)cidr, 4, a[0], a[1], a[2], a[3]};

		return PUT(put(dst, b, 8));
	}
	if (cidr)
		snprintf(t, sizeof(t), "%u.%u.%u.%u/%u", a[0], a[1], a[2], a[3], bits);
	else
		snprintf(t, sizeof(t), "%u.%u.%u.%u", a[0], a[1], a[2], a[3]);
	return PUT(put_str(dst, t));
}

/* interval: redact (and the styles that keep nothing of it) is zero; hash and
 * format_preserving a keyed number of days under 100 years. (age(dob) is a birth date
 * in disguise.) */
static int mask_interval(const struct mask_engine *me, enum mask_style st, int format,
			 const uint8_t *v, size_t n, struct buf *dst)
{
	uint32_t days = 0;
	char o[32];

	if (format == 1 && n != 16)
		return MV_UNMASKABLE;
	if (st == MASK_HASH || st == MASK_FORMAT_PRESERVING) {
		uint8_t h[32];

		hash_of(me, v, n, h);
		days = (uint32_t)(mask_u64(h) % 36500);
	}
	if (format == 1)
		return PUT(put_be(dst, 0, 8) || put_be(dst, days, 4) || put_be(dst, 0, 4));
	if (days)
		snprintf(o, sizeof(o), "%u days", days);
	else
		snprintf(o, sizeof(o), "00:00:00");
	return PUT(put_str(dst, o));
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
		hash_of(me, cp, cn, h);
		memcpy(u, h, 16);
		u[6] = (uint8_t)((u[6] & 0x0f) | 0x40);
		u[8] = (uint8_t)((u[8] & 0x3f) | 0x80);
	}
	if (format == 1)
		return PUT(put(dst, u, 16));
	{
		char x[33];

		hex_encode(u, 16, x);
		snprintf(t, sizeof(t), "%.8s-%.4s-%.4s-%.4s-%.12s", x, x + 8, x + 12, x + 16,
			 x + 20);
	}
	return PUT(put(dst, t, 36));
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

		hash_of(me, v, n, h);
		hex_encode(h, 1, x);
		c = (uint8_t)x[0];
	} else if (st == MASK_FORMAT_PRESERVING && n == 1 && mask_isalnum(v[0])) {
		uint64_t s;

		fp_seed_of(me, v, n, &s);
		c = (uint8_t)fp_class(mask_mix(&s), v[0]);
	}
	return PUT(put(dst, &c, 1));
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
		r = PUT(put(dst, format == 1 ? "\0" : "f", 1));
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
			r = PUT(put(dst, v, n));
		break;
	}
	default:
		r = MV_UNMASKABLE;
	}
	if (r != MV_VALUE)
		dst->len = start;
	return r;
}
