/*
 * MySQL's result rows as row codecs (see myrow.h): text and binary row payloads split into
 * cells and written again, binary values decoded to the text masking reads and encoded back
 * from what it wrote; and the column definitions that say the binary values' types. What to do
 * with each cell is masking's (mask_rows); this file only knows the formats.
 */
#include "myrow.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int put(struct buf *b, const void *p, size_t n)
{
	return n && buf_append(b, p, n) ? -1 : 0;
}

static uint64_t get_le(const uint8_t *p, int w)
{
	uint64_t v = 0;

	for (int i = w; i-- > 0;)
		v = v << 8 | p[i];
	return v;
}

static void set_le(uint8_t *p, uint64_t v, int w)
{
	for (int i = 0; i < w; i++, v >>= 8)
		p[i] = (uint8_t)v;
}

/* ---- length-encoded integers and strings ---- */

int my_lenenc_int(const uint8_t *p, size_t len, size_t *off, uint64_t *v)
{
	size_t i = *off;
	int w;

	if (i >= len)
		return -1;
	switch (p[i]) {
	case 0xfb: /* NULL */
	case 0xff: /* an error packet */
		return -1;
	case 0xfc:
		w = 2;
		break;
	case 0xfd:
		w = 3;
		break;
	case 0xfe:
		w = 8;
		break;
	default:
		*v = p[i];
		*off = i + 1;
		return 0;
	}
	if (len - i - 1 < (size_t)w)
		return -1;
	*v = get_le(p + i + 1, w);
	*off = i + 1 + (size_t)w;
	return 0;
}

/* v's length-encoded form into o (9 bytes); its length. */
static size_t lenenc_bytes(uint64_t v, uint8_t *o)
{
	int w;

	if (v < 251) {
		o[0] = (uint8_t)v;
		return 1;
	}
	if (v < 1u << 16) {
		o[0] = 0xfc;
		w = 2;
	} else if (v < 1u << 24) {
		o[0] = 0xfd;
		w = 3;
	} else {
		o[0] = 0xfe;
		w = 8;
	}
	set_le(o + 1, v, w);
	return 1 + (size_t)w;
}

int my_put_lenenc_int(struct buf *out, uint64_t v)
{
	uint8_t o[9];

	return put(out, o, lenenc_bytes(v, o));
}

int my_put_lenenc_str(struct buf *out, const void *s, size_t n)
{
	uint8_t o[9];
	size_t h = lenenc_bytes(n, o);
	uint8_t *t = buf_reserve(out, h + n);

	if (!t)
		return -1;
	memcpy(t, o, h);
	if (n)
		memcpy(t + h, s, n);
	buf_commit(out, h + n);
	return 0;
}

/* A length-encoded string at p[*off..len) into its place and the length; -1 if it overruns. */
static int lenenc_str(const uint8_t *p, size_t len, size_t *off, const uint8_t **s, size_t *n)
{
	uint64_t v;

	if (my_lenenc_int(p, len, off, &v) || v > len - *off)
		return -1;
	*s = p + *off;
	*n = (size_t)v;
	*off += (size_t)v;
	return 0;
}

/* ---- column definitions ---- */

static int get_name(const uint8_t *p, size_t len, size_t *off, char *dst, size_t cap)
{
	const uint8_t *s;
	size_t n;

	if (lenenc_str(p, len, off, &s, &n) || n >= cap || memchr(s, '\0', n))
		return -1;
	memcpy(dst, s, n);
	dst[n] = '\0';
	return 0;
}

int mycol_parse(const uint8_t *p, size_t len, struct mycol *c)
{
	size_t off = 0;
	uint64_t fixed;

	if (!p || !c)
		return -1;
	if (get_name(p, len, &off, c->catalog, sizeof(c->catalog)) ||
	    get_name(p, len, &off, c->schema, sizeof(c->schema)) ||
	    get_name(p, len, &off, c->table, sizeof(c->table)) ||
	    get_name(p, len, &off, c->org_table, sizeof(c->org_table)) ||
	    get_name(p, len, &off, c->name, sizeof(c->name)) ||
	    get_name(p, len, &off, c->org_name, sizeof(c->org_name)))
		return -1;
	/* the fixed fields' length, then exactly those: anything else (MariaDB's extended type
	 * info, COM_FIELD_LIST's defaults) is a protocol hoop did not negotiate */
	if (my_lenenc_int(p, len, &off, &fixed) || fixed != 0x0c || len - off != 0x0c)
		return -1;
	c->charset = (uint16_t)get_le(p + off, 2);
	c->length = (uint32_t)get_le(p + off + 2, 4);
	c->type = p[off + 6];
	c->flags = (uint16_t)get_le(p + off + 7, 2);
	c->decimals = p[off + 9];
	return 0;
}

/* How a column's values are read and written. */
enum vclass {
	VC_STRING = 0, /* a length-encoded string in both protocols */
	VC_DECIMAL,    /* a string, whose masked text must be a decimal */
	VC_INT,
	VC_FLOAT,
	VC_DOUBLE,
	VC_DATE,
	VC_DATETIME,
	VC_TIME,
	VC_NULL, /* type NULL: every value is NULL */
	VC_BAD,	 /* a type the binary protocol does not say how to frame */
};

static int vclass(uint8_t type)
{
	switch (type) {
	case MY_TYPE_TINY:
	case MY_TYPE_SHORT:
	case MY_TYPE_YEAR:
	case MY_TYPE_INT24:
	case MY_TYPE_LONG:
	case MY_TYPE_LONGLONG:
		return VC_INT;
	case MY_TYPE_FLOAT:
		return VC_FLOAT;
	case MY_TYPE_DOUBLE:
		return VC_DOUBLE;
	case MY_TYPE_DATE:
	case MY_TYPE_NEWDATE:
		return VC_DATE;
	case MY_TYPE_DATETIME:
	case MY_TYPE_DATETIME2:
	case MY_TYPE_TIMESTAMP:
	case MY_TYPE_TIMESTAMP2:
		return VC_DATETIME;
	case MY_TYPE_TIME:
	case MY_TYPE_TIME2:
		return VC_TIME;
	case MY_TYPE_DECIMAL:
	case MY_TYPE_NEWDECIMAL:
		return VC_DECIMAL;
	case MY_TYPE_NULL:
		return VC_NULL;
	case MY_TYPE_VARCHAR:
	case MY_TYPE_BIT:
	case MY_TYPE_JSON:
	case MY_TYPE_ENUM:
	case MY_TYPE_SET:
	case MY_TYPE_TINY_BLOB:
	case MY_TYPE_MEDIUM_BLOB:
	case MY_TYPE_LONG_BLOB:
	case MY_TYPE_BLOB:
	case MY_TYPE_VAR_STRING:
	case MY_TYPE_STRING:
	case MY_TYPE_GEOMETRY:
		return VC_STRING;
	}
	return VC_BAD;
}

uint32_t mycol_pg_type(const struct mycol *c)
{
	int u = (c->flags & MY_FLAG_UNSIGNED) != 0;

	switch (c->type) {
	case MY_TYPE_TINY:
	case MY_TYPE_YEAR:
		return 21;
	case MY_TYPE_SHORT:
		return u ? 23 : 21;
	case MY_TYPE_INT24:
		return 23;
	case MY_TYPE_LONG:
		return u ? 20 : 23;
	case MY_TYPE_LONGLONG:
		return u ? 1700 : 20;
	case MY_TYPE_FLOAT:
		return 700;
	case MY_TYPE_DOUBLE:
		return 701;
	case MY_TYPE_DECIMAL:
	case MY_TYPE_NEWDECIMAL:
		return 1700;
	case MY_TYPE_DATE:
	case MY_TYPE_NEWDATE:
		return 1082;
	case MY_TYPE_DATETIME:
	case MY_TYPE_DATETIME2:
	case MY_TYPE_TIMESTAMP:
	case MY_TYPE_TIMESTAMP2:
		return 1114;
	case MY_TYPE_TIME:
	case MY_TYPE_TIME2:
		return 1083;
	case MY_TYPE_JSON:
		return 114;
	case MY_TYPE_VARCHAR:
	case MY_TYPE_ENUM:
	case MY_TYPE_SET:
	case MY_TYPE_TINY_BLOB:
	case MY_TYPE_MEDIUM_BLOB:
	case MY_TYPE_LONG_BLOB:
	case MY_TYPE_BLOB:
	case MY_TYPE_VAR_STRING:
	case MY_TYPE_STRING:
	case MY_TYPE_NULL:
		return 25;
	}
	return 0; /* BIT, GEOMETRY, unknown */
}

static const char *type_name(uint8_t t)
{
	switch (t) {
	case MY_TYPE_TINY:
		return "TINYINT";
	case MY_TYPE_SHORT:
		return "SMALLINT";
	case MY_TYPE_YEAR:
		return "YEAR";
	case MY_TYPE_INT24:
		return "MEDIUMINT";
	case MY_TYPE_LONG:
		return "INT";
	case MY_TYPE_LONGLONG:
		return "BIGINT";
	case MY_TYPE_FLOAT:
		return "FLOAT";
	case MY_TYPE_DOUBLE:
		return "DOUBLE";
	case MY_TYPE_DECIMAL:
	case MY_TYPE_NEWDECIMAL:
		return "DECIMAL";
	case MY_TYPE_DATE:
	case MY_TYPE_NEWDATE:
		return "DATE";
	case MY_TYPE_DATETIME:
	case MY_TYPE_DATETIME2:
		return "DATETIME";
	case MY_TYPE_TIMESTAMP:
	case MY_TYPE_TIMESTAMP2:
		return "TIMESTAMP";
	case MY_TYPE_TIME:
	case MY_TYPE_TIME2:
		return "TIME";
	}
	return "string";
}

/* ---- integers ---- */

struct irange {
	int w;	       /* bytes on the wire */
	uint64_t umax; /* UNSIGNED: 0..umax */
	int64_t smin, smax;
};

static struct irange int_range(uint8_t type)
{
	switch (type) {
	case MY_TYPE_TINY:
		return (struct irange){1, UINT8_MAX, INT8_MIN, INT8_MAX};
	case MY_TYPE_SHORT:
		return (struct irange){2, UINT16_MAX, INT16_MIN, INT16_MAX};
	case MY_TYPE_YEAR: /* always unsigned; four digits */
		return (struct irange){2, 9999, 0, 9999};
	case MY_TYPE_INT24: /* four bytes on the wire, 24 bits of value */
		return (struct irange){4, 0xffffff, -0x800000, 0x7fffff};
	case MY_TYPE_LONG:
		return (struct irange){4, UINT32_MAX, INT32_MIN, INT32_MAX};
	default:
		return (struct irange){8, UINT64_MAX, INT64_MIN, INT64_MAX};
	}
}

static int is_unsigned(const struct mycol *c)
{
	return c->type == MY_TYPE_YEAR || (c->flags & MY_FLAG_UNSIGNED);
}

static int int_fits(const struct mycol *c, int neg, uint64_t mag)
{
	struct irange r = int_range(c->type);

	if (is_unsigned(c))
		return (!neg || !mag) && mag <= r.umax;
	if (neg)
		return mag <= (uint64_t)0 - (uint64_t)r.smin; /* |smin|, in unsigned arithmetic */
	return mag <= (uint64_t)r.smax;
}

static int isdig(uint8_t c)
{
	return c >= '0' && c <= '9';
}

/* [-]digits (leading zeros as ZEROFILL writes them) into the column's binary form. */
static int enc_int(const struct mycol *c, const uint8_t *v, size_t n, uint8_t *o)
{
	size_t i = 0;
	int neg = 0;
	uint64_t m = 0;
	struct irange r = int_range(c->type);

	if (i < n && v[i] == '-') {
		neg = 1;
		i++;
	}
	if (i >= n)
		return -1;
	for (; i < n; i++) {
		if (!isdig(v[i]) || m > (UINT64_MAX - (uint64_t)(v[i] - '0')) / 10)
			return -1;
		m = m * 10 + (uint64_t)(v[i] - '0');
	}
	if (!int_fits(c, neg, m))
		return -1;
	set_le(o, neg ? 0 - m : m, r.w);
	return r.w;
}

static int dec_int(const struct mycol *c, const uint8_t *p, char *t, size_t tn)
{
	struct irange r = int_range(c->type);
	uint64_t u = get_le(p, r.w);
	int neg = 0, l;
	char d[24];

	if (!is_unsigned(c) && r.w < 8 && (u >> (8 * r.w - 1)) & 1)
		u |= UINT64_MAX << (8 * r.w); /* sign-extended */
	if (!is_unsigned(c) && (int64_t)u < 0) {
		neg = 1;
		u = 0 - u;
	}
	if (!int_fits(c, neg, u))
		return -1;
	l = snprintf(d, sizeof(d), "%llu", (unsigned long long)u);
	if ((c->flags & MY_FLAG_ZEROFILL) && !neg && c->length > (uint32_t)l) {
		/* padded as the text protocol pads it (a display width is at most 255) */
		int w = c->length < 255 ? (int)c->length : 255;

		return snprintf(t, tn, "%0*llu", w, (unsigned long long)u);
	}
	return snprintf(t, tn, "%s%s", neg ? "-" : "", d);
}

/* ---- floats ---- */

/* [-]digits[.digits][e[+-]digits], or .digits: the decimal text of a finite number. */
static int float_syntax(const uint8_t *v, size_t n)
{
	size_t i = 0, d = 0;

	if (i < n && (v[i] == '-' || v[i] == '+'))
		i++;
	for (; i < n && isdig(v[i]); i++)
		d++;
	if (i < n && v[i] == '.')
		for (i++; i < n && isdig(v[i]); i++)
			d++;
	if (!d)
		return -1;
	if (i < n && (v[i] == 'e' || v[i] == 'E')) {
		size_t e = 0;

		i++;
		if (i < n && (v[i] == '-' || v[i] == '+'))
			i++;
		for (; i < n && isdig(v[i]); i++)
			e++;
		if (!e)
			return -1;
	}
	return i == n ? 0 : -1;
}

static int enc_float(int is4, const uint8_t *v, size_t n, uint8_t *o)
{
	char t[64];
	char *end;

	if (n >= sizeof(t) || float_syntax(v, n))
		return -1;
	memcpy(t, v, n);
	t[n] = '\0';
	if (is4) {
		float f = strtof(t, &end);
		uint32_t u;

		if (*end || !isfinite(f))
			return -1;
		memcpy(&u, &f, 4);
		set_le(o, u, 4);
		return 4;
	} else {
		double d = strtod(t, &end);
		uint64_t u;

		if (*end || !isfinite(d))
			return -1;
		memcpy(&u, &d, 8);
		set_le(o, u, 8);
		return 8;
	}
}

/* The shortest "%g" text that reads back as the same value. */
static int dec_float(int is4, const uint8_t *p, char *t, size_t tn)
{
	double x;
	int l = -1;

	if (is4) {
		uint32_t u = (uint32_t)get_le(p, 4);
		float f;

		memcpy(&f, &u, 4);
		x = f;
	} else {
		uint64_t u = get_le(p, 8);

		memcpy(&x, &u, 8);
	}
	if (!isfinite(x)) /* MySQL stores no NaN or infinity */
		return -1;
	for (int prec = 1; prec <= 17; prec++) {
		l = snprintf(t, tn, "%.*g", prec, x);
		if (is4 ? strtof(t, NULL) == (float)x : strtod(t, NULL) == x)
			break;
	}
	return l;
}

/* ---- decimals ---- */

static int decimal_syntax(const uint8_t *v, size_t n)
{
	size_t i = v && n && v[0] == '-', d = 0;

	for (; i < n && isdig(v[i]); i++)
		d++;
	if (i < n && v[i] == '.')
		for (i++; i < n && isdig(v[i]); i++)
			d++;
	return d && i == n ? 0 : -1;
}

/* ---- dates and times ---- */

struct mytime {
	int neg;
	uint32_t year, month, day, hour, minute, second, micro;
	uint64_t hours; /* TIME: days folded in */
};

/* How many fractional digits a value's text has: the column's precision, or all six when it
 * says none but the value has some. */
static int frac_digits(const struct mycol *c, uint32_t micro)
{
	if (c->decimals >= 1 && c->decimals <= 6)
		return c->decimals;
	return micro ? 6 : 0;
}

static int put_frac(char *t, size_t tn, int fsp, uint32_t micro)
{
	static const uint32_t div[7] = {1000000, 100000, 10000, 1000, 100, 10, 1};

	if (!fsp)
		return 0;
	return snprintf(t, tn, ".%0*u", fsp, micro / div[fsp]);
}

/* DATE, DATETIME, TIMESTAMP: p[0] the length (0, 4, 7, 11), then the fields. */
static int dec_datetime(const struct mycol *c, int date_only, const uint8_t *p, char *t, size_t tn)
{
	struct mytime m = {0};
	uint8_t n = p[0];
	int l;

	if (n >= 4) {
		m.year = (uint32_t)get_le(p + 1, 2);
		m.month = p[3];
		m.day = p[4];
	}
	if (n >= 7) {
		m.hour = p[5];
		m.minute = p[6];
		m.second = p[7];
	}
	if (n >= 11)
		m.micro = (uint32_t)get_le(p + 8, 4);
	if (m.year > 9999 || m.month > 12 || m.day > 31 || m.hour > 23 || m.minute > 59 ||
	    m.second > 59 || m.micro > 999999)
		return -1;
	l = snprintf(t, tn, "%04u-%02u-%02u", m.year, m.month, m.day);
	if (date_only)
		return l;
	l += snprintf(t + l, tn - (size_t)l, " %02u:%02u:%02u", m.hour, m.minute, m.second);
	return l + put_frac(t + l, tn - (size_t)l, frac_digits(c, m.micro), m.micro);
}

/* TIME: p[0] the length (0, 8, 12), then sign, days, hours, minutes, seconds[, micro]. */
static int dec_time(const struct mycol *c, const uint8_t *p, char *t, size_t tn)
{
	struct mytime m = {0};
	uint8_t n = p[0];
	int l;

	if (n >= 8) {
		m.neg = p[1];
		m.hours = get_le(p + 2, 4) * 24 + p[6];
		m.hour = p[6];
		m.minute = p[7];
		m.second = p[8];
	}
	if (n >= 12)
		m.micro = (uint32_t)get_le(p + 9, 4);
	/* MySQL's TIME is -838:59:59.999999 .. 838:59:59.999999 */
	if (m.neg > 1 || m.hour > 23 || m.hours > 838 || m.minute > 59 || m.second > 59 ||
	    m.micro > 999999)
		return -1;
	l = snprintf(t, tn, "%s%02llu:%02u:%02u", m.neg ? "-" : "", (unsigned long long)m.hours,
		     m.minute, m.second);
	return l + put_frac(t + l, tn - (size_t)l, frac_digits(c, m.micro), m.micro);
}

/* Exactly w digits at v[*i], at most max. */
static int digits(const uint8_t *v, size_t n, size_t *i, int w, uint32_t max, uint32_t *out)
{
	uint32_t x = 0;

	for (int k = 0; k < w; k++, (*i)++) {
		if (*i >= n || !isdig(v[*i]))
			return -1;
		x = x * 10 + (uint32_t)(v[*i] - '0');
	}
	*out = x;
	return x <= max ? 0 : -1;
}

static int lit(const uint8_t *v, size_t n, size_t *i, char ch)
{
	if (*i >= n || v[*i] != (uint8_t)ch)
		return -1;
	(*i)++;
	return 0;
}

/* ":MM:SS[.f{1,6}]" after the hours. */
static int parse_ms(const uint8_t *v, size_t n, size_t *i, struct mytime *m)
{
	if (lit(v, n, i, ':') || digits(v, n, i, 2, 59, &m->minute) || lit(v, n, i, ':') ||
	    digits(v, n, i, 2, 59, &m->second))
		return -1;
	if (*i < n && v[*i] == '.') {
		int k = 0;

		(*i)++;
		for (; *i < n && isdig(v[*i]) && k < 6; (*i)++, k++)
			m->micro = m->micro * 10 + (uint32_t)(v[*i] - '0');
		if (!k)
			return -1;
		for (; k < 6; k++)
			m->micro *= 10;
	}
	return *i == n ? 0 : -1;
}

/* "YYYY-MM-DD" (DATE) or "YYYY-MM-DD HH:MM:SS[.f]" into the binary form, the length first as
 * the server chooses it: 0 for a zero value, 4 without a time, 7 without microseconds. */
static int enc_datetime(int date_only, const uint8_t *v, size_t n, uint8_t *o)
{
	struct mytime m = {0};
	size_t i = 0;
	uint8_t l;

	if (digits(v, n, &i, 4, 9999, &m.year) || lit(v, n, &i, '-') ||
	    digits(v, n, &i, 2, 12, &m.month) || lit(v, n, &i, '-') ||
	    digits(v, n, &i, 2, 31, &m.day))
		return -1;
	if (date_only) {
		if (i != n)
			return -1;
	} else if (lit(v, n, &i, ' ') || digits(v, n, &i, 2, 23, &m.hour) ||
		   parse_ms(v, n, &i, &m)) {
		return -1;
	}
	l = m.micro ? 11 : m.hour || m.minute || m.second ? 7 : m.year || m.month || m.day ? 4 : 0;
	o[0] = l;
	set_le(o + 1, m.year, 2);
	o[3] = (uint8_t)m.month;
	o[4] = (uint8_t)m.day;
	o[5] = (uint8_t)m.hour;
	o[6] = (uint8_t)m.minute;
	o[7] = (uint8_t)m.second;
	set_le(o + 8, m.micro, 4);
	return 1 + l;
}

/* "[-]H+:MM:SS[.f]", at most 838 hours, into TIME's binary form. */
static int enc_time(const uint8_t *v, size_t n, uint8_t *o)
{
	struct mytime m = {0};
	size_t i = 0;
	int k = 0;
	uint8_t l;

	if (i < n && v[i] == '-') {
		m.neg = 1;
		i++;
	}
	for (; i < n && isdig(v[i]) && k < 4; i++, k++)
		m.hours = m.hours * 10 + (uint64_t)(v[i] - '0');
	if (!k || m.hours > 838 || parse_ms(v, n, &i, &m))
		return -1;
	l = m.micro ? 12 : m.neg || m.hours || m.minute || m.second ? 8 : 0;
	o[0] = l;
	o[1] = (uint8_t)m.neg;
	set_le(o + 2, m.hours / 24, 4);
	o[6] = (uint8_t)(m.hours % 24);
	o[7] = (uint8_t)m.minute;
	o[8] = (uint8_t)m.second;
	set_le(o + 9, m.micro, 4);
	return 1 + l;
}

/* ---- one value ---- */

#define ENC_MAX 13 /* TIME's length byte and 12 bytes */

/* The text of a masked value v[0..n) in column c's binary form into o[ENC_MAX]: its length,
 * or -1 when the type cannot hold it. Strings are not encoded here (-1). */
static int enc_value(const struct mycol *c, int cls, const uint8_t *v, size_t n, uint8_t *o)
{
	switch (cls) {
	case VC_INT:
		return enc_int(c, v, n, o);
	case VC_FLOAT:
	case VC_DOUBLE:
		return enc_float(cls == VC_FLOAT, v, n, o);
	case VC_DATE:
	case VC_DATETIME:
		return enc_datetime(cls == VC_DATE, v, n, o);
	case VC_TIME:
		return enc_time(v, n, o);
	}
	return -1;
}

/* Can column c hold the masked text v? (strings: any; a decimal: its syntax) */
static int value_fits(const struct mycol *c, int cls, const uint8_t *v, size_t n)
{
	uint8_t o[ENC_MAX];

	if (cls == VC_STRING || cls == VC_BAD || cls == VC_NULL)
		return 1;
	if (cls == VC_DECIMAL)
		return !decimal_syntax(v, n);
	return enc_value(c, cls, v, n, o) > 0;
}

static int unfit(const struct row *r, int k, const struct mycol *c)
{
	snprintf(r->why, r->whyn, "column %d: its masked value is not a valid MySQL %s%s", k + 1,
		 type_name(c->type),
		 vclass(c->type) == VC_INT && is_unsigned(c) && c->type != MY_TYPE_YEAR
		     ? " UNSIGNED"
		     : "");
	return 1;
}

/* ---- text rows ---- */

static int text_begin(struct row_codec *c, const uint8_t *msg, size_t len, size_t *off,
		      struct buf *out)
{
	*off = 0;
	/* room for the row as it came: an untouched row (most) is then one copy */
	return len && !buf_reserve(out, len) ? -1 : 0;
}

static int text_split(struct row_codec *c, const uint8_t *msg, size_t len, size_t *off,
		      struct row *r)
{
	const struct myrow_cols *st = c->state;
	size_t i = 0;

	if (*off) /* one row per payload (a row has a column, so at least a byte) */
		return 0;
	if (r->ncols < 1 || (st && st->ncols != r->ncols))
		return -1;
	for (int k = 0; k < r->ncols; k++) {
		struct row_cell *cell = &r->cells[k];
		size_t a = i, n;
		const uint8_t *s;

		if (i >= len)
			return -1;
		if (msg[i] == 0xfb) {
			cell->p = msg + i;
			cell->len = -1;
			i++;
		} else {
			if (lenenc_str(msg, len, &i, &s, &n) || n > INT32_MAX)
				return -1;
			cell->p = s;
			cell->len = (int32_t)n;
		}
		cell->raw_off = (uint32_t)a;
		cell->raw_len = (uint32_t)(i - a);
	}
	if (i != len)
		return -1;
	r->base = msg;
	r->start = 0;
	r->end = len;
	*off = len;
	return 1;
}

static int text_put_row(struct row_codec *c, const uint8_t *msg, const struct row *r,
			struct buf *out)
{
	const struct myrow_cols *st = c->state;

	for (int k = 0; k < r->ncols; k++) {
		const struct row_out *x = &r->outs[k];
		const struct row_cell *cell = &r->cells[k];
		const uint8_t *v;
		int rc;

		if (x->kind == ROW_KEEP) {
			rc = put(out, msg + cell->raw_off, cell->raw_len);
		} else if (x->kind == ROW_NULL) {
			rc = put(out, "\xfb", 1);
		} else {
			v = x->len ? r->vals + x->off : (const uint8_t *)""; /* vals may be NULL */
			if (st &&
			    !value_fits(&st->cols[k], vclass(st->cols[k].type), v, (size_t)x->len))
				return unfit(r, k, &st->cols[k]);
			rc = my_put_lenenc_str(out, v, (size_t)x->len);
		}
		if (rc)
			return -1;
	}
	return 0;
}

static int end_payload(struct row_codec *c, const uint8_t *msg, size_t len, size_t off,
		       size_t start, struct buf *out, char *why, size_t whyn)
{
	if (out->len - start > MYROW_MAX_PAYLOAD) {
		snprintf(why, whyn, "masked row longer than a MySQL packet can be");
		return 1;
	}
	return 0;
}

static const struct row_codec_ops text_ops = {
    .name = "mysql-text",
    .begin = text_begin,
    .split = text_split,
    .put_row = text_put_row,
    .end = end_payload,
};

const struct row_codec myrow_text = {.ops = &text_ops, .cell_format = 0};

void myrow_text_codec(struct row_codec *c, const struct myrow_cols *cols)
{
	c->ops = &text_ops;
	c->cell_format = 0;
	c->state = (void *)cols;
}

/* ---- binary rows ---- */

static size_t bitmap_len(int ncols)
{
	return ((size_t)ncols + 7 + 2) / 8;
}

static int is_null(const uint8_t *bm, int k)
{
	return bm[(k + 2) / 8] >> ((k + 2) % 8) & 1;
}

/* Where value k's bytes end: d[*i..) framed by its class; -1 when it overruns. For strings,
 * the value itself. */
static int frame_value(int cls, const struct mycol *c, const uint8_t *d, size_t len, size_t *i,
		       const uint8_t **s, size_t *n)
{
	size_t w;

	switch (cls) {
	case VC_STRING:
	case VC_DECIMAL:
		return lenenc_str(d, len, i, s, n) || *n > INT32_MAX ? -1 : 0;
	case VC_INT:
		w = (size_t)int_range(c->type).w;
		break;
	case VC_FLOAT:
		w = 4;
		break;
	case VC_DOUBLE:
		w = 8;
		break;
	case VC_DATE:
	case VC_DATETIME:
		if (*i >= len || (d[*i] != 0 && d[*i] != 4 && d[*i] != 7 && d[*i] != 11))
			return -1;
		w = 1 + (size_t)d[*i];
		break;
	case VC_TIME:
		if (*i >= len || (d[*i] != 0 && d[*i] != 8 && d[*i] != 12))
			return -1;
		w = 1 + (size_t)d[*i];
		break;
	default: /* type NULL with a value, or a type we cannot frame */
		return -1;
	}
	if (len - *i < w)
		return -1;
	*s = d + *i;
	*n = w;
	*i += w;
	return 0;
}

/* A fixed value's text as the text protocol writes it; its length, -1 when it is malformed. */
static int dec_value(const struct mycol *c, int cls, const uint8_t *p, char *t, size_t tn)
{
	switch (cls) {
	case VC_INT:
		return dec_int(c, p, t, tn);
	case VC_FLOAT:
	case VC_DOUBLE:
		return dec_float(cls == VC_FLOAT, p, t, tn);
	case VC_DATE:
	case VC_DATETIME:
		return dec_datetime(c, cls == VC_DATE, p, t, tn);
	case VC_TIME:
		return dec_time(c, p, t, tn);
	}
	return -1;
}

static int bin_begin(struct row_codec *c, const uint8_t *msg, size_t len, size_t *off,
		     struct buf *out)
{
	*off = 0;
	return len && !buf_reserve(out, len) ? -1 : 0;
}

/*
 * Every non-NULL cell's text into scratch, in column order with a NUL between cells: strings
 * copied, fixed values decoded. Cells hold offsets into scratch until it stops moving.
 */
static int bin_decode_all(const struct myrow_cols *st, const uint8_t *msg, struct row *r)
{
	struct buf *dec = r->scratch;
	char t[320]; /* a ZEROFILL display width is at most 255 */

	for (int k = 0; k < r->ncols; k++) {
		struct row_cell *cell = &r->cells[k];
		const struct mycol *col = &st->cols[k];
		int cls = vclass(col->type), l;
		size_t at = dec->len;

		if (cell->len < 0)
			continue;
		if (cls == VC_STRING || cls == VC_DECIMAL) {
			if (put(dec, cell->p, (size_t)cell->len))
				return -1;
		} else {
			l = dec_value(col, cls, msg + cell->raw_off, t, sizeof(t));
			if (l < 0 || (size_t)l >= sizeof(t) || put(dec, t, (size_t)l))
				return -1;
			cell->len = l;
		}
		cell->p = (const uint8_t *)(uintptr_t)at;
		if (put(dec, "\0", 1))
			return -1;
	}
	for (int k = 0; k < r->ncols; k++)
		if (r->cells[k].len >= 0)
			r->cells[k].p = buf_head(dec) + (uintptr_t)r->cells[k].p;
	r->base = buf_head(dec);
	return 0;
}

static int bin_split(struct row_codec *c, const uint8_t *msg, size_t len, size_t *off,
		     struct row *r)
{
	const struct myrow_cols *st = c->state;
	size_t nb, i;
	const uint8_t *bm;
	int decode = 0;

	if (*off)
		return 0;
	if (!st || !st->cols || r->ncols < 1 || st->ncols != r->ncols)
		return -1;
	nb = bitmap_len(r->ncols);
	if (len < 1 + nb || msg[0] != 0x00)
		return -1;
	bm = msg + 1;
	/* the two bits before the first column and those past the last are never set */
	if (bm[0] & 3 || (bm[nb - 1] >> ((r->ncols + 2) % 8 ? (r->ncols + 2) % 8 : 8)))
		return -1;
	i = 1 + nb;
	for (int k = 0; k < r->ncols; k++) {
		struct row_cell *cell = &r->cells[k];
		const struct mycol *col = &st->cols[k];
		int cls = vclass(col->type);
		size_t a = i, n;
		const uint8_t *s;

		cell->raw_off = (uint32_t)i;
		if (is_null(bm, k)) {
			cell->p = msg + i;
			cell->len = -1;
			cell->raw_len = 0;
			continue;
		}
		if (frame_value(cls, col, msg, len, &i, &s, &n))
			return -1;
		cell->p = s;
		cell->len = (int32_t)n;
		cell->raw_len = (uint32_t)(i - a);
		if (cls != VC_STRING && cls != VC_DECIMAL)
			decode = 1;
	}
	if (i != len)
		return -1;
	r->base = msg;
	if (decode && bin_decode_all(st, msg, r))
		return -1;
	r->start = 0;
	r->end = len;
	*off = len;
	return 1;
}

static int bin_put_row(struct row_codec *c, const uint8_t *msg, const struct row *r,
		       struct buf *out)
{
	const struct myrow_cols *st = c->state;
	size_t nb = bitmap_len(r->ncols), bm;

	/* the header and the bitmap as they came, NULL bits changed below */
	bm = out->len + 1;
	if (put(out, msg, 1 + nb))
		return -1;
	for (int k = 0; k < r->ncols; k++) {
		const struct row_out *x = &r->outs[k];
		const struct row_cell *cell = &r->cells[k];
		const struct mycol *col = &st->cols[k];
		const uint8_t *v;
		int cls = vclass(col->type), rc;
		uint8_t *b = buf_head(out) + bm + (size_t)(k + 2) / 8, bit = 1u << ((k + 2) % 8);
		uint8_t o[ENC_MAX];

		if (x->kind == ROW_NULL) {
			*b |= bit;
			continue;
		}
		if (x->kind == ROW_KEEP) {
			if (put(out, msg + cell->raw_off, cell->raw_len))
				return -1;
			continue;
		}
		*b &= (uint8_t)~bit;
		v = x->len ? r->vals + x->off : (const uint8_t *)"";
		if (!value_fits(col, cls, v, (size_t)x->len))
			return unfit(r, k, col);
		if (cls == VC_STRING || cls == VC_DECIMAL) {
			rc = my_put_lenenc_str(out, v, (size_t)x->len);
		} else {
			int n = enc_value(col, cls, v, (size_t)x->len, o);

			rc = n > 0 ? put(out, o, (size_t)n) : -1;
		}
		if (rc)
			return -1;
	}
	return 0;
}

static const struct row_codec_ops bin_ops = {
    .name = "mysql-binary",
    .begin = bin_begin,
    .split = bin_split,
    .put_row = bin_put_row,
    .end = end_payload,
};

void myrow_bin_codec(struct row_codec *c, const struct myrow_cols *cols)
{
	c->ops = &bin_ops;
	c->cell_format = 0;
	c->state = (void *)cols;
}

int mask_mytextrow(const struct mask_engine *me, const struct mask_colplan *cols, int ncols,
		   const uint8_t *payload, size_t len, struct buf *out, struct mask_counts *counts)
{
	struct row_codec c = myrow_text;

	return mask_rows(me, &c, cols, ncols, payload, len, out, counts);
}

int mask_mybinrow(const struct mask_engine *me, const struct mask_colplan *cols, int ncols,
		  const struct mycol *coldefs, const uint8_t *payload, size_t len, struct buf *out,
		  struct mask_counts *counts)
{
	struct myrow_cols st = {.ncols = ncols, .cols = coldefs};
	struct row_codec c;

	myrow_bin_codec(&c, &st);
	return mask_rows(me, &c, cols, ncols, payload, len, out, counts);
}
