/* The shape of a one-statement SQL text: see sqlshape.h. Lexing follows PostgreSQL 15's scan.l
 * for the tokens it accepts and refuses the rest. */
#include "sqlshape.h"

#include <string.h>

static int ident_start(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}

static int ident_cont(unsigned char c)
{
	return ident_start(c) || (c >= '0' && c <= '9') || c == '$';
}

static int digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static int blank(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* scan.l's process_integer_literal: strtoint, and a value outside int32 becomes a Float. */
static int fits_int32(const char *d, size_t n)
{
	static const char max[] = "2147483647";

	while (n > 1 && *d == '0') {
		d++;
		n--;
	}
	if (n != sizeof(max) - 1)
		return n < sizeof(max) - 1;
	return memcmp(d, max, n) <= 0;
}

/* The end of a quoted token starting at s[i] (the quote q), doubled quotes inside; 0 when it
 * does not end, holds a control character (the shape's marks are control characters: a key
 * never holds one but as a mark), or (strings) holds a backslash, whose meaning depends on
 * standard_conforming_strings and the E prefix. */
static size_t quoted_end(const char *s, size_t len, size_t i, char q)
{
	for (size_t k = i + 1; k < len; k++) {
		if ((s[k] == '\\' && q == '\'') ||
		    ((unsigned char)s[k] < 0x20 && !blank((unsigned char)s[k])))
			return 0;
		if (s[k] == q) {
			if (k + 1 < len && s[k + 1] == q) {
				k++;
				continue;
			}
			return k + 1;
		}
	}
	return 0;
}

int sqlshape(const char *sql, size_t len, struct sqlshape *out)
{
	const unsigned char *s = (const unsigned char *)sql;
	size_t i = 0, k = 0, semi = 0;
	int tokens = 0;

	if (len > SQLSHAPE_MAX)
		return -1;
	out->nconst = 0;
	while (i < len && blank(s[i]))
		i++;
	out->off = i;
	i = 0;
	while (i < len) {
		unsigned char c = s[i];
		size_t e;

		if (semi) {
			/* after the statement's semicolon: only blanks */
			if (!blank(c))
				return -1;
			out->key[k++] = (char)c;
			i++;
			continue;
		}
		if (blank(c)) {
			out->key[k++] = (char)c;
			i++;
		} else if (c == ';') {
			if (!tokens)
				return -1;
			semi = i + 1;
			out->key[k++] = ';';
			i++;
		} else if (ident_start(c)) {
			for (e = i + 1; e < len && ident_cont(s[e]); e++)
				;
			memcpy(out->key + k, s + i, e - i);
			k += e - i;
			i = e;
			tokens++;
		} else if (digit(c)) {
			int is_float = 0;

			for (e = i + 1; e < len && digit(s[e]); e++)
				;
			if (e < len && s[e] == '.') {
				/* digits.digits; "1." and "1.." lex otherwise */
				if (e + 1 >= len || !digit(s[e + 1]))
					return -1;
				for (e += 2; e < len && digit(s[e]); e++)
					;
				is_float = 1;
			}
			/* 1e5, 12abc (an error in 15), 1.2.3: not a shape */
			if (e < len && (ident_cont(s[e]) || s[e] == '.'))
				return -1;
			out->key[k++] = is_float || !fits_int32(sql + i, e - i) ? SQLSHAPE_FLOAT
										 : SQLSHAPE_INT;
			out->nconst++;
			i = e;
			tokens++;
		} else if (c == '\'' || c == '"') {
			if (!(e = quoted_end(sql, len, i, (char)c)))
				return -1;
			if (c == '\'' && i > 0 && (s[i - 1] == 'e' || s[i - 1] == 'E'))
				return -1; /* E'...' : escapes (already refused with a backslash) */
			memcpy(out->key + k, s + i, e - i);
			k += e - i;
			i = e;
			tokens++;
		} else if (c == '$') {
			/* $n is a parameter; anything else starts dollar quoting */
			if (i + 1 >= len || !digit(s[i + 1]))
				return -1;
			for (e = i + 1; e < len && digit(s[e]); e++)
				;
			if (e < len && ident_cont(s[e]))
				return -1;
			memcpy(out->key + k, s + i, e - i);
			k += e - i;
			i = e;
			tokens++;
		} else if (c == '.') {
			if (i + 1 < len && digit(s[i + 1]))
				return -1; /* .5 */
			out->key[k++] = '.';
			i++;
			tokens++;
		} else if (c == '-' && i + 1 < len && s[i + 1] == '-') {
			return -1; /* a comment */
		} else if (c == '/' && i + 1 < len && s[i + 1] == '*') {
			return -1;
		} else if (strchr("()[],:+-*/%^<>=~!@#&|`?{}", c) && c) {
			out->key[k++] = (char)c;
			i++;
			tokens++;
		} else {
			return -1; /* control characters, backslash, NUL... */
		}
	}
	if (!tokens)
		return -1;
	out->klen = k;
	out->len = (semi ? semi - 1 : len) - out->off;
	return 0;
}
