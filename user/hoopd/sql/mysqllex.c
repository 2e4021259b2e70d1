/*
 * The MySQL/MariaDB lexer (mysqllex.h). Structured after MariaDB 10.11's sql_lex.cc
 * (lex_one_token and its states), which is the server the tests run against.
 */
#include "mysqllex.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct lx {
	const struct myl_settings *st;
	const char *s;
	size_t n, i;
	struct myl_result *r;
	size_t cap;
	int in_exec;	   /* inside an executed comment */
	size_t exec_start; /* where it began (for the error) */
};

static int fail(struct lx *x, size_t at, const char *why)
{
	x->r->error = 1;
	x->r->at = at;
	snprintf(x->r->why, sizeof(x->r->why), "%s", why);
	return -1;
}

static int push(struct lx *x, enum myl_kind k, size_t off, size_t len, const char *op)
{
	struct myl_token *t;

	if (x->r->n + 1 >= MYL_MAX_TOKENS)
		return fail(x, off, "more tokens than hoop reads in one text");
	if (x->r->n + 2 > x->cap) {
		size_t nc = x->cap ? x->cap * 2 : 64;
		struct myl_token *nt = realloc(x->r->tok, nc * sizeof(*nt));

		if (!nt)
			return fail(x, off, "out of memory");
		x->r->tok = nt;
		x->cap = nc;
	}
	t = &x->r->tok[x->r->n++];
	memset(t, 0, sizeof(*t));
	t->kind = k;
	t->off = (uint32_t)off;
	t->len = (uint32_t)len;
	t->in_exec_comment = (uint8_t)x->in_exec;
	if (op)
		snprintf(t->op, sizeof(t->op), "%s", op);
	return 0;
}

/* Letters, digits, '_', '$' and every byte >= 0x80 (the server's ident_map for utf8). */
static int identc(unsigned char c)
{
	return isalnum(c) || c == '_' || c == '$' || c >= 0x80;
}

static int blank(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static int peek(const struct lx *x, size_t k)
{
	return x->i + k < x->n ? (unsigned char)x->s[x->i + k] : -1;
}

/* A quoted run from x->i (at the opening quote q) to its closing quote. backslash: escapes
 * apply. 0 with x->i past it, or -1. */
static int quoted(struct lx *x, char q, int backslash, const char *what)
{
	size_t start = x->i;

	x->i++;
	while (x->i < x->n) {
		char c = x->s[x->i];

		if (backslash && c == '\\') {
			if (x->i + 1 >= x->n)
				break;
			x->i += 2;
			continue;
		}
		if (c == q) {
			if (x->i + 1 < x->n && x->s[x->i + 1] == q) {
				x->i += 2; /* a doubled quote */
				continue;
			}
			x->i++;
			return 0;
		}
		x->i++;
	}
	return fail(x, start, what);
}

static int string_lit(struct lx *x, size_t start)
{
	char q = x->s[x->i];

	if (quoted(x, q, !x->st->no_backslash_escapes, "an unterminated string"))
		return -1;
	return push(x, MYL_STRING, start, x->i - start, NULL);
}

/* The end of a plain comment that starts at x->i ("/" "*"): x->i past its "*" "/". */
static int skip_comment(struct lx *x, int allow_nested)
{
	size_t start = x->i;

	x->i += 2;
	while (x->i + 1 < x->n) {
		if (x->s[x->i] == '*' && x->s[x->i + 1] == '/') {
			x->i += 2;
			return 0;
		}
		if (x->s[x->i] == '/' && x->s[x->i + 1] == '*') {
			if (!allow_nested)
				return fail(x, x->i, "a comment inside a comment");
			/* a skipped versioned comment may hold one plain comment (sql_lex.cc
			 * consume_comment(lip, 1)): refused too, rather than follow its depth */
			return fail(x, x->i, "a comment inside a versioned comment");
		}
		x->i++;
	}
	return fail(x, start, "an unterminated comment");
}

/* At "/" "*": a comment, an executable comment (its content is lexed as text), or hints. */
static int long_comment(struct lx *x)
{
	size_t start = x->i;
	int maria = 0, bang = 0;
	size_t p = x->i + 2;

	if (p < x->n && x->s[p] == '!')
		bang = 1, p++;
	else if (x->st->mariadb && p + 1 < x->n && x->s[p] == 'M' && x->s[p + 1] == '!')
		bang = 1, maria = 1, p += 2;
	if (!bang) {
		if (x->in_exec)
			return fail(x, start, "a comment inside an executable comment");
		return skip_comment(x, 0);
	}
	if (x->in_exec)
		return fail(x, start, "an executable comment inside an executable comment");
	x->r->has_exec_comment = 1;
	if (p + 4 < x->n && isdigit((unsigned char)x->s[p]) &&
	    isdigit((unsigned char)x->s[p + 1]) && isdigit((unsigned char)x->s[p + 2]) &&
	    isdigit((unsigned char)x->s[p + 3]) && isdigit((unsigned char)x->s[p + 4])) {
		uint32_t v = 0;
		size_t digits = p + 5 < x->n && isdigit((unsigned char)x->s[p + 5]) ? 6 : 5;
		int runs;

		for (size_t k = 0; k < digits; k++)
			v = v * 10 + (uint32_t)(x->s[p + k] - '0');
		if (!x->st->version)
			return fail(x, start,
				    "a versioned comment, and the server's version unknown");
		if (x->st->mariadb)
			runs = v <= x->st->version && (v < 50700 || v > 99999 || maria);
		else if (digits == 6)
			/* MySQL reads five digits; what it makes of a sixth is not hoop's to guess
			 */
			return fail(x, start, "a six-digit versioned comment on MySQL");
		else
			runs = v <= x->st->version;
		if (!runs)
			return skip_comment(x, 1);
		p += digits;
	}
	x->in_exec = 1;
	x->exec_start = start;
	x->i = p;
	return 0;
}

/* A run of identifier characters from x->i: a number, or a name. after_dot: it follows
 * "name." (then a run starting with a digit is a name). */
static int word(struct lx *x, int after_dot)
{
	size_t start = x->i, e = x->i;
	const char *s = x->s;

	while (e < x->n && identc((unsigned char)s[e]))
		e++;
	if (!after_dot && isdigit((unsigned char)s[start])) {
		size_t d = start;
		int all_digits;

		while (d < e && isdigit((unsigned char)s[d]))
			d++;
		all_digits = d == e;
		/* 0x.., 0b.. that the run is made of */
		if (e - start > 2 && s[start] == '0' &&
		    (s[start + 1] == 'x' || s[start + 1] == 'b')) {
			int hex = s[start + 1] == 'x', ok = 1;

			for (size_t k = start + 2; k < e; k++)
				if (hex ? !isxdigit((unsigned char)s[k])
					: (s[k] != '0' && s[k] != '1'))
					ok = 0;
			if (ok) {
				x->i = e;
				return push(x, hex ? MYL_HEX : MYL_BIT, start, e - start, NULL);
			}
		}
		if (all_digits) {
			/* 12, 12.5, 12., 12e3, 12.5e-3 */
			size_t k = e;

			if (k < x->n && s[k] == '.') {
				k++;
				while (k < x->n && isdigit((unsigned char)s[k]))
					k++;
			}
			if (k < x->n && (s[k] == 'e' || s[k] == 'E')) {
				size_t m = k + 1;

				if (m < x->n && (s[m] == '+' || s[m] == '-'))
					m++;
				if (m < x->n && isdigit((unsigned char)s[m])) {
					while (m < x->n && isdigit((unsigned char)s[m]))
						m++;
					k = m;
				}
			}
			if (k < x->n && identc((unsigned char)s[k]) && k > e)
				return fail(x, start, "a number that runs into a name");
			x->i = k;
			return push(x, MYL_NUMBER, start, k - start, NULL);
		}
		/* digits then e/E and digits, with nothing else: a float (1e5) */
		if (d < e && (s[d] == 'e' || s[d] == 'E')) {
			size_t m = d + 1;

			if (m == e && m < x->n && (s[m] == '+' || s[m] == '-') && m + 1 < x->n &&
			    isdigit((unsigned char)s[m + 1])) {
				m++;
				while (m < x->n && isdigit((unsigned char)s[m]))
					m++;
				if (m < x->n && identc((unsigned char)s[m]))
					return fail(x, start, "a number that runs into a name");
				x->i = m;
				return push(x, MYL_NUMBER, start, m - start, NULL);
			}
			while (m < e && isdigit((unsigned char)s[m]))
				m++;
			if (m == e && m > d + 1) {
				x->i = e;
				return push(x, MYL_NUMBER, start, e - start, NULL);
			}
			/* 1e5x: a number and a name, or one name? The servers' lexers differ. */
			if (m > d + 1)
				return fail(x, start, "a number that runs into a name");
		}
		/* otherwise a name that starts with digits (1abc) */
	}
	/* introducers and literals: X'..', B'..', N'..', _charset'..' */
	if (e < x->n && s[e] == '\'') {
		size_t wl = e - start;

		if (wl == 1 &&
		    (s[start] == 'x' || s[start] == 'X' || s[start] == 'b' || s[start] == 'B')) {
			int hex = s[start] == 'x' || s[start] == 'X';

			x->i = e;
			if (quoted(x, '\'', 0, "an unterminated literal"))
				return -1;
			for (size_t k = e + 1; k + 1 < x->i; k++)
				if (hex ? !isxdigit((unsigned char)s[k])
					: (s[k] != '0' && s[k] != '1'))
					return fail(x, start, "a bad hex or bit literal");
			return push(x, hex ? MYL_HEX : MYL_BIT, start, x->i - start, NULL);
		}
		if ((wl == 1 && (s[start] == 'n' || s[start] == 'N')) ||
		    (wl > 1 && s[start] == '_')) {
			x->i = e;
			if (quoted(x, '\'', !x->st->no_backslash_escapes, "an unterminated string"))
				return -1;
			return push(x, MYL_STRING, start, x->i - start, NULL);
		}
	}
	if (e < x->n && s[e] == '"' && !x->st->ansi_quotes && e - start > 1 && s[start] == '_') {
		x->i = e;
		if (quoted(x, '"', !x->st->no_backslash_escapes, "an unterminated string"))
			return -1;
		return push(x, MYL_STRING, start, x->i - start, NULL);
	}
	x->i = e;
	return push(x, MYL_IDENT, start, e - start, NULL);
}

/* @name, @'name', @@name, @@scope.name */
static int variable(struct lx *x)
{
	size_t start = x->i;
	int sys = peek(x, 1) == '@';

	x->i += sys ? 2 : 1;
	if (!sys && x->i < x->n && (x->s[x->i] == '\'' || x->s[x->i] == '"' || x->s[x->i] == '`')) {
		char q = x->s[x->i];
		/* a string's escapes in '...', and in "..." unless ANSI_QUOTES makes it a quoted
		 * name (which has none) */
		int esc = !x->st->no_backslash_escapes &&
			  (q == '\'' || (q == '"' && !x->st->ansi_quotes));

		if (quoted(x, q, esc, "an unterminated variable name"))
			return -1;
		return push(x, MYL_VAR, start, x->i - start, NULL);
	}
	if (sys && x->i < x->n && x->s[x->i] == '`') {
		if (quoted(x, '`', 0, "an unterminated variable name"))
			return -1;
	} else {
		while (x->i < x->n && (identc((unsigned char)x->s[x->i]) || x->s[x->i] == '.'))
			x->i++;
	}
	if (x->i == start + (sys ? 2 : 1)) {
		if (sys)
			return fail(x, start, "@@ without a variable name");
		return push(x, MYL_VAR, start, 1, NULL); /* a lone @: the classifier refuses it */
	}
	return push(x, sys ? MYL_SYSVAR : MYL_VAR, start, x->i - start, NULL);
}

static int op(struct lx *x)
{
	static const char *const ops3[] = {"<=>", "->>", NULL};
	static const char *const ops2[] = {"<=", ">=", "<>", "!=", "<<", ">>",
					   "&&", "||", ":=", "->", NULL};
	static const char singles[] = "()[],;.+-*/%=<>!~^&|{}:";
	size_t start = x->i;
	char buf[4] = {0};

	for (int k = 0; ops3[k]; k++)
		if (x->i + 3 <= x->n && !memcmp(x->s + x->i, ops3[k], 3)) {
			x->i += 3;
			return push(x, MYL_OP, start, 3, ops3[k]);
		}
	for (int k = 0; ops2[k]; k++)
		if (x->i + 2 <= x->n && !memcmp(x->s + x->i, ops2[k], 2)) {
			x->i += 2;
			return push(x, MYL_OP, start, 2, ops2[k]);
		}
	if (!strchr(singles, x->s[x->i]) || !x->s[x->i])
		return fail(x, start, "a character the server reads no token from");
	buf[0] = x->s[x->i++];
	return push(x, MYL_OP, start, 1, buf);
}

int myl_lex(const struct myl_settings *st, const char *text, size_t len, struct myl_result *r)
{
	static const struct myl_settings dflt;
	struct lx x = {.st = st ? st : &dflt, .s = text, .n = len, .r = r};

	memset(r, 0, sizeof(*r));
	if (x.st->unsafe_charset)
		return fail(&x, 0,
			    "a client character set hoop does not read exactly (only utf8, "
			    "utf8mb4, ascii and binary)");
	if (x.st->unread_mode)
		return fail(&x, 0,
			    "an sql_mode that changes the grammar in ways hoop does not read "
			    "(MSSQL, ORACLE)");
	if (memchr(text, 0, len))
		return fail(&x, (size_t)((const char *)memchr(text, 0, len) - text), "a NUL byte");
	while (x.i < x.n) {
		unsigned char c = (unsigned char)x.s[x.i];
		int after_dot;

		if (blank(c)) {
			x.i++;
			continue;
		}
		if (c == '#') {
			while (x.i < x.n && x.s[x.i] != '\n')
				x.i++;
			continue;
		}
		/* "--" then a blank or a control character (or the end) */
		if (c == '-' && peek(&x, 1) == '-' &&
		    (peek(&x, 2) < 0 || peek(&x, 2) <= ' ' || peek(&x, 2) == 0x7f)) {
			while (x.i < x.n && x.s[x.i] != '\n')
				x.i++;
			continue;
		}
		if (c == '/' && peek(&x, 1) == '*') {
			if (long_comment(&x))
				return -1;
			continue;
		}
		if (c == '*' && peek(&x, 1) == '/' && x.in_exec) {
			x.in_exec = 0;
			x.i += 2;
			continue;
		}
		if (c == '\'' || (c == '"' && !x.st->ansi_quotes)) {
			if (string_lit(&x, x.i))
				return -1;
			continue;
		}
		if (c == '`' || (c == '"' && x.st->ansi_quotes)) {
			size_t s0 = x.i;

			if (quoted(&x, (char)c, 0, "an unterminated quoted name"))
				return -1;
			if (push(&x, MYL_QIDENT, s0, x.i - s0, NULL))
				return -1;
			continue;
		}
		if (c == '@') {
			if (variable(&x))
				return -1;
			continue;
		}
		if (c == '?') {
			if (push(&x, MYL_PARAM, x.i, 1, NULL))
				return -1;
			x.i++;
			continue;
		}
		/* Only after an unquoted name (sql_lex.cc's IDENT_SEP): after a quoted one the
		 * server starts afresh, and ".5" is a number. */
		after_dot = r->n >= 2 && r->tok[r->n - 1].kind == MYL_OP &&
			    !strcmp(r->tok[r->n - 1].op, ".") && r->tok[r->n - 1].off == x.i - 1 &&
			    r->tok[r->n - 2].kind == MYL_IDENT &&
			    r->tok[r->n - 2].off + r->tok[r->n - 2].len == x.i - 1;
		if (c == '.' && peek(&x, 1) >= 0 && isdigit(peek(&x, 1)) &&
		    !(r->n && r->tok[r->n - 1].kind == MYL_IDENT &&
		      r->tok[r->n - 1].off + r->tok[r->n - 1].len == x.i)) {
			/* .5, .5e3 */
			size_t s0 = x.i++;

			while (x.i < x.n && isdigit((unsigned char)x.s[x.i]))
				x.i++;
			if (x.i < x.n && (x.s[x.i] == 'e' || x.s[x.i] == 'E')) {
				size_t m = x.i + 1;

				if (m < x.n && (x.s[m] == '+' || x.s[m] == '-'))
					m++;
				if (m < x.n && isdigit((unsigned char)x.s[m])) {
					while (m < x.n && isdigit((unsigned char)x.s[m]))
						m++;
					x.i = m;
				}
			}
			if (x.i < x.n && identc((unsigned char)x.s[x.i]))
				return fail(&x, s0, "a number that runs into a name");
			if (push(&x, MYL_NUMBER, s0, x.i - s0, NULL))
				return -1;
			continue;
		}
		if (identc(c)) {
			if (word(&x, after_dot))
				return -1;
			continue;
		}
		if (op(&x))
			return -1;
	}
	if (x.in_exec)
		return fail(&x, x.exec_start, "an unterminated executable comment");
	if (push(&x, MYL_END, x.n, 0, NULL))
		return -1;
	r->n--; /* MYL_END follows the n tokens */
	return 0;
}

void myl_free(struct myl_result *r)
{
	free(r->tok);
	r->tok = NULL;
	r->n = 0;
}

int myl_is(const char *text, const struct myl_token *t, const char *kw)
{
	size_t l = strlen(kw);

	return t->kind == MYL_IDENT && t->len == l && !strncasecmp(text + t->off, kw, l);
}

int myl_charset_unsafe(const char *name)
{
	/* Read exactly: bytes below 0x80 are ASCII and never part of a multibyte character,
	 * and no byte above is a blank to the server. Not so in the multibyte Asian sets (a
	 * quote or backslash byte inside a character), nor in latin1, latin2 and greek (0xA0 is
	 * a blank to the server, part of a name to hoop), nor in ucs2/utf16/utf32 or swe7. */
	static const char *const good[] = {"utf8mb4", "utf8mb3", "utf8", "ascii", "binary", NULL};

	for (int i = 0; good[i]; i++) {
		size_t l = strlen(good[i]);

		/* the character set itself, or one of its collations (utf8mb4_general_ci) */
		if (!strncasecmp(name, good[i], l) && (!name[l] || name[l] == '_'))
			return 0;
	}
	return 1;
}
