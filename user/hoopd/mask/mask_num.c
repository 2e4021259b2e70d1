/*
 * Numbers masked whole (mask_value.c dispatches here): int2, int4, int8 and oid, numeric in its
 * text and binary forms, float4 and float8, each into a valid value of its own type.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mask_int.h"

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

uint64_t mask_pow10_u64(int d)
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
	lo = d == 1 ? 0 : mask_pow10_u64(d - 1);
	hi = d >= 20 ? UINT64_MAX : mask_pow10_u64(d) - 1;
	if (hi > max)
		hi = max;
	y = lo + mask_u64(h) % (hi - lo + 1);
	return x < 0 ? -(int64_t)y : (int64_t)y;
}

int mask_int(const struct mask_engine *me, enum mask_style st, int kind, int format,
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
		u = mask_get_be(v, w);
		x = w == 2 ? (int16_t)u : w == 4 ? (int32_t)u : (int64_t)u;
	} else if (parse_i64(v, n, &x) || x > (int64_t)max || x < -(int64_t)max - 1) {
		return MV_UNMASKABLE;
	}
	if (st == MASK_HASH) {
		uint8_t h[32];

		snprintf(t, sizeof(t), "%lld", (long long)x);
		mask_hash_of(me, t, strlen(t), h);
		y = (int64_t)(mask_u64(h) % (max + 1));
	} else if (st == MASK_FORMAT_PRESERVING) {
		y = fp_int(me, x, max);
	}
	if (format == 1)
		return MV_PUT(mask_put_be(dst, (uint64_t)y, w));
	snprintf(t, sizeof(t), "%lld", (long long)y);
	return MV_PUT(mask_put_str(dst, t));
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
	nd = (int)mask_get_be(v, 2);
	weight = (int16_t)mask_get_be(v + 2, 2);
	sign = (int)mask_get_be(v + 4, 2);
	dscale = (int)mask_get_be(v + 6, 2);
	if (n != 8 + 2 * (size_t)nd || dscale > 0x3fff)
		return -1;
	if (sign == NUMERIC_NAN || sign == NUMERIC_PINF || sign == NUMERIC_NINF)
		return mask_put_str(out, sign == NUMERIC_NAN	? "NaN"
					 : sign == NUMERIC_PINF ? "Infinity"
								: "-Infinity");
	if (sign != NUMERIC_POS && sign != NUMERIC_NEG)
		return -1;
	for (int i = 0; i < nd; i++)
		if (mask_get_be(v + 8 + 2 * i, 2) > 9999)
			return -1;
	if (4 * ((size_t)(weight > 0 ? weight : 0) + 1) + (size_t)dscale > NUMERIC_MAX_TEXT)
		return -1;
	if (sign == NUMERIC_NEG && nd > 0 && mask_put(out, "-", 1))
		return -1;
	if (weight < 0) {
		if (mask_put(out, "0", 1))
			return -1;
	} else {
		for (int d = 0; d <= weight; d++) {
			int dig = d < nd ? (int)mask_get_be(v + 8 + 2 * d, 2) : 0;

			snprintf(g, sizeof(g), d == 0 ? "%d" : "%04d", dig);
			if (mask_put_str(out, g))
				return -1;
		}
	}
	if (dscale > 0) {
		int left = dscale;

		if (mask_put(out, ".", 1))
			return -1;
		for (int d = weight + 1; left > 0; d++) {
			int dig = d >= 0 && d < nd ? (int)mask_get_be(v + 8 + 2 * d, 2) : 0;

			snprintf(g, sizeof(g), "%04d", dig);
			if (mask_put(out, g, left < 4 ? (size_t)left : 4))
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
		return mask_put(dst, v, n);
	mask_fp_seed_of(me, v, n, &s);
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
		return mask_put_be(dst, 0, 2) || mask_put_be(dst, 0, 2) ||
		       mask_put_be(dst, (uint64_t)d.special, 2) || mask_put_be(dst, 0, 2);
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
		int r = mask_put_be(dst, cnt, 2) ||
			mask_put_be(dst, (uint16_t)(cnt ? weight : 0), 2) ||
			mask_put_be(dst, cnt && d.neg ? NUMERIC_NEG : NUMERIC_POS, 2) ||
			mask_put_be(dst, d.fl, 2);

		for (size_t i = first; !r && i < nd; i++)
			r = mask_put_be(dst, g[i], 2);
		free(g);
		return r ? -1 : 0;
	}
}

int mask_numeric(const struct mask_engine *me, enum mask_style st, int format, const uint8_t *v,
		 size_t n, struct buf *dst, struct buf *canon)
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

		mask_hash_of(me, v, n, h);
		snprintf(t, sizeof(t), "%llu",
			 (unsigned long long)(mask_u64(h) % 1000000000000000ULL));
		if (format == 1)
			return MV_PUT(numeric_from_text((const uint8_t *)t, strlen(t), dst));
		return MV_PUT(mask_put_str(dst, t));
	}
	if (st == MASK_FORMAT_PRESERVING) {
		if (format == 0)
			return MV_PUT(put_fp_dec(me, v, n, &d, dst));
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
			return MV_PUT(r);
		}
	}
	if (format == 1)
		return MV_PUT(numeric_from_text((const uint8_t *)"0", 1, dst));
	return MV_PUT(mask_put(dst, "0", 1));
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
			return mask_put_be(dst, u, 4);
		} else {
			uint64_t u;

			memcpy(&u, &x, 8);
			return mask_put_be(dst, u, 8);
		}
	}
	float_text(x, is4, t, sizeof(t));
	return mask_put_str(dst, t);
}

int mask_float(const struct mask_engine *me, enum mask_style st, int kind, int format,
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
			uint32_t u = (uint32_t)mask_get_be(v, 4);
			float f;

			memcpy(&f, &u, 4);
			x = f;
		} else {
			uint64_t u = mask_get_be(v, 8);

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

		mask_hash_of(me, t, tl, h);
		/* whole numbers below 1e6 / 1e15: exact, and written without an exponent */
		return MV_PUT(
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
			r = format == 1 ? put_float(y, is4, 1, dst) : mask_put_str(dst, o);
			return MV_PUT(r);
		}
	} else if (st == MASK_FORMAT_PRESERVING && format == 0) {
		return MV_UNMASKABLE;
	}
	return MV_PUT(put_float(0, is4, format, dst));
}
