/*
 * Dates, times and intervals masked whole (mask_value.c dispatches here): date, time,
 * timestamp and timestamptz in PostgreSQL's ISO text and binary forms, intervals as a keyed
 * number of days.
 */
#include <stdio.h>
#include <string.h>

#include "mask_int.h"

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
	while (yw < 20 && ay >= mask_pow10_u64((int)yw))
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

int mask_datetime(const struct mask_engine *me, enum mask_style st, int kind, int format,
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
		x = kind == MT_DATE ? (int32_t)mask_get_be(v, 4) : (int64_t)mask_get_be(v, 8);
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
		mask_hash_of(me, cp, cn, h);
		days = derived_days(mask_u64(h));
		x = (int64_t)(mask_u64(h + 8) % 86400) * 1000000;
	} else {
		days = pg_days(1900, 1, 1);
		x = 0;
	}
	switch (kind) {
	case MT_DATE:
		if (format == 1)
			return MV_PUT(mask_put_be(dst, (uint32_t)(int32_t)days, 4));
		fmt_pgdate(days, o, sizeof(o));
		break;
	case MT_TIME:
		if (format == 1)
			return MV_PUT(mask_put_be(dst, (uint64_t)x, 8));
		fmt_time(x, o, sizeof(o));
		break;
	default:
		x += days * USEC_PER_DAY;
		if (format == 1)
			return MV_PUT(mask_put_be(dst, (uint64_t)x, 8));
		fmt_ts(x, tz, o, sizeof(o));
	}
	return MV_PUT(mask_put_str(dst, o));
}

/* ---- intervals ---- */

/* interval: redact (and the styles that keep nothing of it) is zero; hash and
 * format_preserving a keyed number of days under 100 years. (age(dob) is a birth date
 * in disguise.) */
int mask_interval(const struct mask_engine *me, enum mask_style st, int format, const uint8_t *v,
		  size_t n, struct buf *dst)
{
	uint32_t days = 0;
	char o[32];

	if (format == 1 && n != 16)
		return MV_UNMASKABLE;
	if (st == MASK_HASH || st == MASK_FORMAT_PRESERVING) {
		uint8_t h[32];

		mask_hash_of(me, v, n, h);
		days = (uint32_t)(mask_u64(h) % 36500);
	}
	if (format == 1)
		return MV_PUT(mask_put_be(dst, 0, 8) || mask_put_be(dst, days, 4) ||
			      mask_put_be(dst, 0, 4));
	if (days)
		snprintf(o, sizeof(o), "%u days", days);
	else
		snprintf(o, sizeof(o), "00:00:00");
	return MV_PUT(mask_put_str(dst, o));
}
