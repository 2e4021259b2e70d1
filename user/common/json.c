/* JSON writer: the only place that escapes strings for JSON output. */
#include "json.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void jb_init(struct jbuf *j)
{
	memset(j, 0, sizeof(*j));
}

void jb_free(struct jbuf *j)
{
	free(j->s);
	memset(j, 0, sizeof(*j));
}

static void put(struct jbuf *j, const char *p, size_t n)
{
	if (j->oom)
		return;
	if (j->len + n + 1 > j->cap) {
		size_t cap = j->cap ? j->cap : 256;
		char *s;

		while (cap < j->len + n + 1)
			cap *= 2;
		s = realloc(j->s, cap);
		if (!s) {
			j->oom = 1;
			return;
		}
		j->s = s;
		j->cap = cap;
	}
	memcpy(j->s + j->len, p, n);
	j->len += n;
	j->s[j->len] = '\0';
}

const char *jb_str(struct jbuf *j)
{
	if (j->oom || !j->s)
		return "{}";
	return j->s;
}

static void sep(struct jbuf *j)
{
	if (j->need_comma)
		put(j, ",", 1);
	j->need_comma = 1;
}

void jb_obj_open(struct jbuf *j)
{
	sep(j);
	put(j, "{", 1);
	j->need_comma = 0;
}

void jb_obj_close(struct jbuf *j)
{
	put(j, "}", 1);
	j->need_comma = 1;
}

void jb_arr_open(struct jbuf *j)
{
	sep(j);
	put(j, "[", 1);
	j->need_comma = 0;
}

void jb_arr_close(struct jbuf *j)
{
	put(j, "]", 1);
	j->need_comma = 1;
}

/* Length of the well-formed UTF-8 sequence at p (Unicode table 3-7: no overlong forms, no
 * surrogates, nothing above U+10FFFF), or 0 with *bad set to the length of its longest
 * ill-formed start, which becomes one U+FFFD (the "maximal subpart" rule). A NUL ends any
 * sequence, so this never reads past the string. */
static size_t utf8_len(const unsigned char *p, size_t *bad)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t n;

	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		n = 2;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		n = 3;
		lo = p[0] == 0xe0 ? 0xa0 : 0x80;
		hi = p[0] == 0xed ? 0x9f : 0xbf;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		n = 4;
		lo = p[0] == 0xf0 ? 0x90 : 0x80;
		hi = p[0] == 0xf4 ? 0x8f : 0xbf;
	} else {
		*bad = 1;
		return 0;
	}
	for (size_t i = 1; i < n; i++) {
		if (p[i] < lo || p[i] > hi) {
			*bad = i;
			return 0;
		}
		lo = 0x80;
		hi = 0xbf;
	}
	return n;
}

/* JSON text must be UTF-8, and strings here come from the network and from files: bytes that
 * are not UTF-8 become U+FFFD rather than invalid output. */
static void put_escaped(struct jbuf *j, const char *v)
{
	const unsigned char *p = (const unsigned char *)v;

	put(j, "\"", 1);
	while (*p) {
		char e[8];
		size_t n, bad = 1;
		const unsigned char *run = p;

		/* Plain ASCII goes in runs, not byte by byte. */
		while (*p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
			p++;
		if (p != run) {
			put(j, (const char *)run, (size_t)(p - run));
			continue;
		}
		switch (*p) {
		case '"':
			put(j, "\\\"", 2);
			break;
		case '\\':
			put(j, "\\\\", 2);
			break;
		case '\n':
			put(j, "\\n", 2);
			break;
		case '\r':
			put(j, "\\r", 2);
			break;
		case '\t':
			put(j, "\\t", 2);
			break;
		default:
			if (*p < 0x20) {
				snprintf(e, sizeof(e), "\\u%04x", *p);
				put(j, e, 6);
			} else if (*p < 0x80) {
				put(j, (const char *)p, 1);
			} else if ((n = utf8_len(p, &bad))) {
				put(j, (const char *)p, n);
				p += n;
				continue;
			} else {
				put(j, "\xef\xbf\xbd", 3);
				p += bad;
				continue;
			}
		}
		p++;
	}
	put(j, "\"", 1);
}

void jb_key(struct jbuf *j, const char *k)
{
	sep(j);
	put_escaped(j, k);
	put(j, ":", 1);
	j->need_comma = 0;
}

void jb_str_val(struct jbuf *j, const char *v)
{
	sep(j);
	if (v)
		put_escaped(j, v);
	else
		put(j, "null", 4);
}

/* Decimal digits of v at the end of b[24]; their start. (snprintf cost more than the rest of a
 * record's fields.) */
static char *u64_dec(uint64_t v, char *b)
{
	char *p = b + 24;

	do
		*--p = (char)('0' + v % 10);
	while ((v /= 10));
	return p;
}

void jb_int_val(struct jbuf *j, int64_t v)
{
	char b[24], *p;

	sep(j);
	p = u64_dec(v < 0 ? 0 - (uint64_t)v : (uint64_t)v, b);
	if (v < 0)
		*--p = '-';
	put(j, p, (size_t)(b + 24 - p));
}

void jb_raw(struct jbuf *j, const char *raw)
{
	sep(j);
	put(j, raw, strlen(raw));
}

void jb_kv_str(struct jbuf *j, const char *k, const char *v)
{
	jb_key(j, k);
	jb_str_val(j, v);
}

void jb_kv_int(struct jbuf *j, const char *k, int64_t v)
{
	jb_key(j, k);
	jb_int_val(j, v);
}

void jb_kv_uint(struct jbuf *j, const char *k, uint64_t v)
{
	char b[24], *p;

	jb_key(j, k);
	sep(j);
	p = u64_dec(v, b);
	put(j, p, (size_t)(b + 24 - p));
}

void jb_kv_bool(struct jbuf *j, const char *k, int v)
{
	jb_key(j, k);
	jb_raw(j, v ? "true" : "false");
}
