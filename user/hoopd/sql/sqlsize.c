/*
 * Cheap pre-parse bounds on a SQL text (sqlsize.h): one pass, no allocation. Over-estimates
 * are fine (a limit is reached a little early); under-estimates are what an attacker would
 * look for, so every construct that hides text from the count (strings, comments, dollar
 * quotes, quoted identifiers) is skipped exactly as PostgreSQL's scanner skips it.
 */
#include "sqlsize.h"

#include <string.h>

#define SQLSIZE_LEVELS 256 /* parenthesis levels with their own operator chain */

static int ident_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '$' || c >= 0x80;
}

static int op_char(unsigned char c)
{
	return c && strchr("+-*/<>=~!@#%^&|`?", c) != NULL;
}

/* The scanner's quote continuation: a string's closing quote at s[j - 1], then blanks holding a
 * newline and a quote, go on with the same string in the same mode: E'\'' <LF> '\'' is one
 * string with two escaped quotes, where reading the second part as a new plain string would end
 * it early and count the rest as hidden. libpg_query's scan.l (whose cost this bounds) allows no
 * comment in those blanks: it returns comments as tokens, where the server's scan.l takes them
 * as blanks; a text the two read differently then fails to parse in hoopd and is refused. Past
 * the continuing quote, or 0 when the string ends. */
static size_t quote_continues(const char *s, size_t n, size_t j)
{
	size_t k = j;

	while (k < n && (s[k] == ' ' || s[k] == '\t' || s[k] == '\f'))
		k++;
	if (k >= n || (s[k] != '\n' && s[k] != '\r'))
		return 0;
	while (k < n && (s[k] == ' ' || s[k] == '\t' || s[k] == '\f' || s[k] == '\n' ||
			 s[k] == '\r'))
		k++;
	return k < n && s[k] == '\'' ? k + 1 : 0;
}

/* Past a quoted token starting at s[i] == q: doubled quotes inside, backslash escapes in
 * E'...' strings (and every string but B'' and X'' with standard_conforming_strings off), a
 * string's continuations (above) in the same mode. */
static size_t skip_quoted(const char *s, size_t n, size_t i, char q, int backslash)
{
	for (i++; i < n; i++) {
		if (backslash && s[i] == '\\') {
			i++;
			continue;
		}
		if (s[i] == q) {
			size_t c;

			if (i + 1 < n && s[i + 1] == q) {
				i++;
				continue;
			}
			if (q == '\'' && (c = quote_continues(s, n, i + 1))) {
				i = c - 1;
				continue;
			}
			return i + 1;
		}
	}
	return n;
}

/* Past a B'...' or X'...' string at s[i] == '\'': it ends at the next quote ('' is no quote in
 * it: the quote after it starts a string), or goes on after a continuation (above). */
static size_t skip_bits(const char *s, size_t n, size_t i)
{
	for (;;) {
		const char *q = memchr(s + i + 1, '\'', n - i - 1);
		size_t c;

		if (!q)
			return n;
		i = (size_t)(q - s);
		if (!(c = quote_continues(s, n, i + 1)))
			return i + 1;
		i = c - 1;
	}
}

/* $tag$...$tag$ at s[i] == '$': past its end, or 0 when s[i] does not open one. */
static size_t skip_dollar(const char *s, size_t n, size_t i)
{
	size_t t = i + 1, tl;

	if (t < n && s[t] >= '0' && s[t] <= '9')
		return 0; /* $1: a parameter */
	while (t < n && s[t] != '$' && ident_char((unsigned char)s[t]))
		t++;
	if (t >= n || s[t] != '$')
		return 0;
	tl = t + 1 - i; /* "$tag$" */
	for (size_t k = t + 1; k + tl <= n; k++)
		if (s[k] == '$' && !memcmp(s + k, s + i, tl))
			return k + tl;
	return n;
}

static int word_is(const char *w, size_t l, const char *kw)
{
	size_t k = strlen(kw);

	if (l != k)
		return 0;
	for (size_t i = 0; i < l; i++)
		if ((w[i] | 0x20) != kw[i])
			return 0;
	return 1;
}

/* Keywords of PostgreSQL's a_expr productions that take an expression on one side and make a
 * node around it, so that a run of them nests as deep as it is long without a parenthesis
 * (AND and OR are not among them: the grammar flattens their chains into one list); JOIN and
 * the set operations build left-deep trees of the same kind. */
static int chain_word(const char *w, size_t l)
{
	static const char *const kw[] = {
	    "not",  "is",      "isnull", "notnull",  "like",	  "ilike",  "similar", "between",
	    "in",   "collate", "at",	 "overlaps", "operator",  "escape", "any",     "all",
	    "some", "unique",  "join",	 "union",    "intersect", "except", NULL};

	for (int i = 0; kw[i]; i++)
		if (word_is(w, l, kw[i]))
			return 1;
	return 0;
}

/* Past the comment at i (a line comment, or a block comment with its nested ones), or 0 if
 * none starts there. */
static size_t skip_comment(const char *s, size_t n, size_t i)
{
	int nest = 1;

	if (s[i] == '-' && i + 1 < n && s[i + 1] == '-') {
		while (i < n && s[i] != '\n' && s[i] != '\r')
			i++;
		return i;
	}
	if (s[i] != '/' || i + 1 >= n || s[i + 1] != '*')
		return 0;
	for (i += 2; i < n && nest; i++) {
		if (s[i] == '/' && i + 1 < n && s[i + 1] == '*') {
			nest++;
			i++;
		} else if (s[i] == '*' && i + 1 < n && s[i + 1] == '/') {
			nest--;
			i++;
		}
	}
	return i;
}

/* Past the number or parameter ($1) at i: it ends where its digits do ("1abc" is two tokens
 * to PostgreSQL, so it is two here), with an exponent (1e5, 1e-5: one token). */
static size_t skip_number(const char *s, size_t n, size_t i)
{
	char c = s[i];

	for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++)
		;
	if (c != '$' && i + 1 < n && (s[i] == 'e' || s[i] == 'E') &&
	    ((s[i + 1] >= '0' && s[i + 1] <= '9') ||
	     ((s[i + 1] == '+' || s[i + 1] == '-') && i + 2 < n && s[i + 2] >= '0' &&
	      s[i + 2] <= '9')))
		for (i += 2; i < n && s[i] >= '0' && s[i] <= '9'; i++)
			;
	return i;
}

int sqlsize(const char *s, size_t n, size_t max_tokens, size_t max_depth, struct sqlsize *out)
{
	return sqlsize_ex(s, n, 0, max_tokens, max_depth, out);
}

int sqlsize_ex(const char *s, size_t n, int escape, size_t max_tokens, size_t max_depth,
	       struct sqlsize *out)
{
	size_t chain[SQLSIZE_LEVELS], chained = 0, level = 0, i = 0;

	memset(out, 0, sizeof(*out));
	chain[0] = 0;
	while (i < n) {
		unsigned char c = (unsigned char)s[i];
		size_t d;

		if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f') {
			i++;
			continue;
		}
		/* Comments count as tokens: libpg_query's scanner reports them (and they cost a
		 * little); they are never part of the tree. */
		if ((d = skip_comment(s, n, i))) {
			out->tokens++;
			i = d;
			continue;
		}
		out->tokens++;
		if (c == '\'') {
			i = skip_quoted(s, n, i, '\'', escape);
		} else if (c == '"') {
			i = skip_quoted(s, n, i, '"', 0);
		} else if (c == '$' && (d = skip_dollar(s, n, i))) {
			i = d;
		} else if ((c >= '0' && c <= '9') || c == '$') {
			i = skip_number(s, n, i);
		} else if (ident_char(c)) {
			size_t w = i;

			while (i < n && ident_char((unsigned char)s[i]))
				i++;
			/* E'...' (and e'...') takes backslash escapes; U&'...', B'', X'' do not;
			 * with standard_conforming_strings off, any string but B'' and X''
			 * does (N'...' and an identifier followed by a string too) */
			if (i < n && s[i] == '\'') {
				int bits = word_is(s + w, i - w, "b") || word_is(s + w, i - w, "x");
				int bs = word_is(s + w, i - w, "e") || (escape && !bits);

				out->tokens++; /* one token with its prefix (E'', X''), or two */
				if (bits) {
					i = skip_bits(s, n, i);
				} else {
					i = skip_quoted(s, n, i, '\'', bs);
				}
			} else if (word_is(s + w, i - w, "case")) {
				if (++level < SQLSIZE_LEVELS)
					chain[level] = 0;
			} else if (word_is(s + w, i - w, "end") && level) {
				if (level < SQLSIZE_LEVELS)
					chained -= chain[level];
				level--;
			} else if (chain_word(s + w, i - w)) {
				goto operator; /* NOT NOT x, x IS NULL IS NULL: as deep as long */
			}
		} else if (c == '(' || c == '[') {
			i++;
			if (++level < SQLSIZE_LEVELS)
				chain[level] = 0;
		} else if (c == ')' || c == ']') {
			i++;
			if (level) {
				if (level < SQLSIZE_LEVELS)
					chained -= chain[level];
				level--;
			}
		} else if (c == ',' || c == ';') {
			i++;
			if (level < SQLSIZE_LEVELS) {
				chained -= chain[level];
				chain[level] = 0;
			}
		} else if (c == ':' && i + 1 < n && s[i + 1] == ':') {
			i += 2; /* x::a::b::c: casts nest too */
			goto operator;
		} else if (op_char(c)) {
			/* Each character its own operator: PostgreSQL splits "+-+-" into unary
			 * operators that nest (its rules for where an operator ends are subtler;
			 * counting more is the safe side). A comment start ends the run. */
			i++;
			goto operator;
		} else {
			i++; /* . : and anything else: one token */
		}
		goto next;
		operator: if (level < SQLSIZE_LEVELS) chain[level]++;
		chained++;
	next:
		if (level + chained > out->depth)
			out->depth = level + chained;
		if (out->tokens > max_tokens || out->depth > max_depth)
			return 1;
	}
	return out->tokens > max_tokens || out->depth > max_depth; /* counted comments last */
}
