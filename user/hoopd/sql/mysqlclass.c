/*
 * The MySQL/MariaDB classifier (mysqlclass.h): a recursive-descent reader over mysqllex's
 * tokens. Expressions are not parsed into trees: they are read as balanced token runs in which
 * every subquery ('(' then SELECT, WITH, VALUES or TABLE) is read as a query and every call
 * (a name then '(') is a function; clauses end at the keywords that end them.
 */
#include "mysqlclass.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_DEPTH 64
#define MAX_CTES  32

struct p {
	const struct myl_settings *st;
	const char *s;
	const struct myl_token *t;
	size_t n, i;
	struct sqlfacts *f;
	int depth;
	int err;
	char cte[MAX_CTES][SQLFACTS_NAME]; /* names WITH defined: not tables */
	int ncte;
};

static int stmt(struct p *p);
static int query_expr(struct p *p, int top);

/* ---- tokens ----------------------------------------------------------------------------- */

static const struct myl_token *tk(const struct p *p, size_t k)
{
	return p->i + k < p->n ? &p->t[p->i + k] : &p->t[p->n]; /* t[n]: MYL_END */
}

static int at_end(const struct p *p)
{
	return tk(p, 0)->kind == MYL_END ||
	       (tk(p, 0)->kind == MYL_OP && !strcmp(tk(p, 0)->op, ";"));
}

/* Where the statement at p->i ends: its ';' or the end of the text. */
static size_t stmt_end(const struct p *p)
{
	size_t k = p->i;

	while (k < p->n && !(p->t[k].kind == MYL_OP && !strcmp(p->t[k].op, ";")))
		k++;
	return k;
}

static int kw_at(const struct p *p, size_t k, const char *kw)
{
	return myl_is(p->s, tk(p, k), kw);
}

static int kw(const struct p *p, const char *w)
{
	return kw_at(p, 0, w);
}

static int op_at(const struct p *p, size_t k, const char *o)
{
	return tk(p, k)->kind == MYL_OP && !strcmp(tk(p, k)->op, o);
}

static int op(const struct p *p, const char *o)
{
	return op_at(p, 0, o);
}

static int fail(struct p *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct p *p, const char *fmt, ...)
{
	va_list ap;
	char m[160];
	const struct myl_token *t = tk(p, 0);

	if (p->err)
		return -1;
	p->err = 1;
	va_start(ap, fmt);
	vsnprintf(m, sizeof(m), fmt, ap);
	va_end(ap);
	if (t->kind == MYL_END)
		snprintf(p->f->error, sizeof(p->f->error), "%s, at the end", m);
	else
		snprintf(p->f->error, sizeof(p->f->error), "%s, near \"%.*s\"", m,
			 (int)(t->len > 40 ? 40 : t->len), p->s + t->off);
	return -1;
}

static int accept_kw(struct p *p, const char *w)
{
	if (!kw(p, w))
		return 0;
	p->i++;
	return 1;
}

static int accept_op(struct p *p, const char *o)
{
	if (!op(p, o))
		return 0;
	p->i++;
	return 1;
}

static int expect_kw(struct p *p, const char *w)
{
	return accept_kw(p, w) ? 0 : fail(p, "%s expected", w);
}

static int expect_op(struct p *p, const char *o)
{
	return accept_op(p, o) ? 0 : fail(p, "\"%s\" expected", o);
}

static void kind(struct p *p, enum sql_kind k)
{
	p->f->kinds |= 1ULL << k;
}

/* Words that end a clause or cannot be a name or alias where one is read. */
static int reserved(const struct p *p, size_t k)
{
	static const char *const words[] = {"select",
					    "from",
					    "where",
					    "group",
					    "having",
					    "order",
					    "limit",
					    "union",
					    "except",
					    "intersect",
					    "on",
					    "using",
					    "join",
					    "inner",
					    "left",
					    "right",
					    "cross",
					    "natural",
					    "straight_join",
					    "for",
					    "lock",
					    "into",
					    "window",
					    "set",
					    "values",
					    "value",
					    "returning",
					    "partition",
					    "as",
					    "and",
					    "or",
					    "not",
					    "is",
					    "in",
					    "like",
					    "between",
					    "when",
					    "then",
					    "else",
					    "end",
					    "case",
					    "with",
					    "outer",
					    "full",
					    "procedure",
					    "use",
					    "force",
					    "ignore",
					    "key",
					    "index",
					    "by",
					    "asc",
					    "desc",
					    "distinct",
					    "all",
					    "exists",
					    "interval",
					    "xor",
					    "div",
					    "mod",
					    "regexp",
					    "rlike",
					    "escape",
					    "collate",
					    "binary",
					    "null",
					    "table",
					    "lateral",
					    "recursive",
					    "duplicate",
					    "offset",
					    "fetch",
					    "high_priority",
					    "low_priority",
					    "delayed",
					    "quick",
					    "sql_calc_found_rows",
					    "window",
					    "row",
					    "over",
					    NULL};
	const struct myl_token *t = tk(p, k);

	if (t->kind != MYL_IDENT)
		return 0;
	for (int i = 0; words[i]; i++)
		if (myl_is(p->s, t, words[i]))
			return 1;
	return 0;
}

/* A name part (an unquoted word that is not reserved, or a quoted name), folded to lower
 * case into out. 0, or -1. */
static int name_part(struct p *p, char *out, size_t outn)
{
	const struct myl_token *t = tk(p, 0);
	size_t o = 0;

	if (t->kind == MYL_IDENT && !reserved(p, 0)) {
		if (t->len >= outn || t->len > 64)
			return fail(p, "a name longer than 64 bytes");
		for (size_t k = 0; k < t->len; k++)
			out[o++] = (char)tolower((unsigned char)p->s[t->off + k]);
	} else if (t->kind == MYL_QIDENT) {
		const char *q = p->s + t->off;
		char qc = q[0];

		for (size_t k = 1; k + 1 < t->len; k++) {
			if (q[k] == qc)
				k++; /* a doubled quote is one */
			if (o + 1 >= outn || o >= 64)
				return fail(p, "a name longer than 64 bytes");
			out[o++] = (char)tolower((unsigned char)q[k]);
		}
		if (!o)
			return fail(p, "an empty name");
	} else {
		return fail(p, "a name expected");
	}
	out[o] = '\0';
	/* Folded to lower case as ASCII: a server with lower_case_table_names folds other
	 * letters too (PATİENTS is patients there), so a name with other bytes is refused. */
	for (size_t k = 0; k < o; k++)
		if ((unsigned char)out[k] >= 0x80)
			return fail(p, "a name with a byte beyond ASCII");
	p->i++;
	return 0;
}

/* [db.]name into full ("db.name" or "name"). */
static int qname(struct p *p, char full[SQLFACTS_NAME])
{
	char a[72], b[72];

	if (name_part(p, a, sizeof(a)))
		return -1;
	if (op(p, ".") && (tk(p, 1)->kind == MYL_IDENT || tk(p, 1)->kind == MYL_QIDENT)) {
		p->i++;
		if (name_part(p, b, sizeof(b)))
			return -1;
		snprintf(full, SQLFACTS_NAME, "%.64s.%.64s", a, b);
	} else {
		snprintf(full, SQLFACTS_NAME, "%.64s", a);
	}
	return 0;
}

static void add(struct p *p, char (*list)[SQLFACTS_NAME], int *n, const char *name)
{
	for (int i = 0; i < *n; i++)
		if (!strcmp(list[i], name))
			return;
	if (*n == SQLFACTS_MAX_NAMES) {
		p->f->too_many = 1;
		return;
	}
	snprintf(list[(*n)++], SQLFACTS_NAME, "%s", name);
}

static int is_cte(const struct p *p, const char *name)
{
	for (int i = 0; i < p->ncte; i++)
		if (!strcmp(p->cte[i], name))
			return 1;
	return 0;
}

/* A table read (or written too), unless it names a WITH query. */
static void table(struct p *p, const char *name, int written)
{
	if (!strchr(name, '.') && is_cte(p, name))
		return;
	add(p, p->f->read, &p->f->nread, name);
	if (written)
		add(p, p->f->written, &p->f->nwritten, name);
}

static int query_start(const struct p *p, size_t k)
{
	return kw_at(p, k, "select") || kw_at(p, k, "with") || kw_at(p, k, "values") ||
	       kw_at(p, k, "table");
}

/* ---- expressions -------------------------------------------------------------------------- */

/* Words after which '(' is not a function call. */
static int not_a_call(const struct p *p)
{
	static const char *const words[] = {
	    "in",   "exists",	 "not",	    "and",    "or",    "xor",	   "any",
	    "some", "all",	 "row",	    "values", "value", "interval", "when",
	    "then", "else",	 "case",    "using",  "over",  "as",	   "on",
	    "is",   "like",	 "between", "div",    "mod",   "by",	   "returning",
	    "set",  "partition", "columns", "nested", NULL};

	for (int i = 0; words[i]; i++)
		if (kw(p, words[i]))
			return 1;
	return 0;
}

/*
 * A run of expression tokens, up to (not including) a ',' at this level (when commas end it),
 * a ')' closing an outer level, the end, or a word in `stop` at this level. Subqueries are read
 * as queries, calls recorded as functions. 0, or -1.
 */
/* Does an expression that ends with token t lack its last operand ("1 +", "a and")? */
static int dangling(const struct p *p, const struct myl_token *t)
{
	static const char *const ops[] = {
	    "+", "-", "/", "%", "=", "<",  ">",	 "<=", ">=", "<>",  "!=", "<=>", "&&", "||",
	    "!", "~", "^", "&", "|", "<<", ">>", ":=", "->", "->>", ".",  ",",	 NULL};
	static const char *const words[] = {
	    "and",	"or",	  "not",  "xor",    "is",    "like",   "between",
	    "in",	"div",	  "mod",  "regexp", "rlike", "escape", "collate",
	    "interval", "binary", "case", "when",   "then",  "else",   NULL};

	if (t->kind == MYL_OP) {
		for (int i = 0; ops[i]; i++)
			if (!strcmp(t->op, ops[i]))
				return 1;
		return 0;
	}
	for (int i = 0; words[i]; i++)
		if (myl_is(p->s, t, words[i]))
			return 1;
	return 0;
}

static int expr(struct p *p, int comma_ends, const char *const *stop)
{
	size_t first = p->i;

	if (++p->depth > MAX_DEPTH)
		return fail(p, "nested too deep");
	for (;;) {
		const struct myl_token *t = tk(p, 0);

		if (at_end(p) || op(p, ")") || (comma_ends && op(p, ",")))
			break;
		if (stop && t->kind == MYL_IDENT) {
			int hit = 0;

			for (int i = 0; stop[i] && !hit; i++)
				hit = kw(p, stop[i]);
			if (hit)
				break;
		}
		if (op(p, "(")) {
			p->i++;
			if (query_start(p, 0)) {
				if (query_expr(p, 0))
					return -1;
			} else if (expr(p, 0, NULL)) {
				return -1;
			}
			if (expect_op(p, ")"))
				return -1;
			continue;
		}
		if (query_start(p, 0) && !kw(p, "values") && !kw(p, "table"))
			return fail(p, "a query where an expression goes");
		if (t->kind == MYL_OP && !strcmp(t->op, ":="))
			kind(p, SK_SET); /* a user variable assigned inside a statement */
		if (kw(p, "references")) {
			/* a foreign key: the server checks the referenced table */
			char ref[SQLFACTS_NAME];

			p->i++;
			if (qname(p, ref))
				return -1;
			table(p, ref, 0);
			continue;
		}
		if ((t->kind == MYL_IDENT || t->kind == MYL_QIDENT) && !not_a_call(p)) {
			/* name( or db.name( : a function */
			if (op_at(p, 1, "(")) {
				char fn[SQLFACTS_NAME];
				size_t save = p->i;

				if (t->kind == MYL_IDENT && reserved(p, 0)) {
					p->i++;
					continue; /* a keyword with parentheses (CAST, CONVERT...)
						   */
				}
				if (qname(p, fn))
					return -1;
				p->i = save + 1;
				add(p, p->f->functions, &p->f->nfunctions, fn);
				continue;
			}
			if (op_at(p, 1, ".") &&
			    (tk(p, 2)->kind == MYL_IDENT || tk(p, 2)->kind == MYL_QIDENT) &&
			    op_at(p, 3, "(")) {
				char fn[SQLFACTS_NAME];

				if (qname(p, fn))
					return -1;
				add(p, p->f->functions, &p->f->nfunctions, fn);
				continue;
			}
		}
		if (t->kind == MYL_IDENT && (kw(p, "values") || kw(p, "table")) &&
		    !op_at(p, 1, "("))
			return fail(p, "a query where an expression goes");
		p->i++;
	}
	if (p->i > first && dangling(p, &p->t[p->i - 1]))
		return fail(p, "an expression that ends early");
	p->depth--;
	return 0;
}

/* A condition (WHERE, HAVING, ON): one expression, not empty, not a list. */
static int cond(struct p *p, const char *const *stop)
{
	size_t first = p->i;

	if (expr(p, 1, stop))
		return -1;
	if (p->i == first)
		return fail(p, "a condition expected");
	if (op(p, ","))
		return fail(p, "a list where a condition goes");
	return 0;
}

static int expr_list(struct p *p, const char *const *stop)
{
	do {
		size_t first = p->i;

		if (expr(p, 1, stop))
			return -1;
		if (p->i == first)
			return fail(p, "an expression expected");
	} while (accept_op(p, ","));
	return 0;
}

/* What ends each clause of a query. */
static const char *const q_stop[] = {"from",	"where",	 "group",     "having",	   "order",
				     "limit",	"union",	 "except",    "intersect", "into",
				     "for",	"lock",		 "window",    "on",	   "using",
				     "join",	"inner",	 "left",      "right",	   "cross",
				     "natural", "straight_join", "returning", NULL};

/* ---- queries ------------------------------------------------------------------------------ */

static int table_refs(struct p *p, int written);

/* ( name, name ... ); primary: PRIMARY counts as a name (index hints) */
static int paren_names(struct p *p, int primary)
{
	if (expect_op(p, "("))
		return -1;
	while (!op(p, ")")) {
		char x[72];

		if (primary && kw(p, "primary"))
			p->i++;
		else if (name_part(p, x, sizeof(x)))
			return -1;
		if (!accept_op(p, ","))
			break;
	}
	return expect_op(p, ")");
}

/* PARTITION (p1, p2) */
static int partition_list(struct p *p)
{
	return accept_kw(p, "partition") ? paren_names(p, 0) : 0;
}

/* [AS] alias, when there is one */
static int alias(struct p *p)
{
	char x[72];

	if (accept_kw(p, "as"))
		return tk(p, 0)->kind == MYL_STRING ? (p->i++, 0) : name_part(p, x, sizeof(x));
	if ((tk(p, 0)->kind == MYL_IDENT && !reserved(p, 0)) || tk(p, 0)->kind == MYL_QIDENT)
		return name_part(p, x, sizeof(x));
	return 0;
}

/* (col, col) after a derived table's alias or an INSERT's table */
static int column_list(struct p *p)
{
	return op(p, "(") ? paren_names(p, 0) : 0;
}

static int index_hints(struct p *p)
{
	while (kw(p, "use") || kw(p, "ignore") || kw(p, "force")) {
		p->i++;
		if (!accept_kw(p, "index") && !accept_kw(p, "key"))
			return fail(p, "INDEX expected");
		if (accept_kw(p, "for")) {
			if (!accept_kw(p, "join")) {
				if (!accept_kw(p, "order") && !accept_kw(p, "group"))
					return fail(p, "JOIN, ORDER BY or GROUP BY expected");
				if (expect_kw(p, "by"))
					return -1;
			}
		}
		if (paren_names(p, 1))
			return -1;
	}
	return 0;
}

static int table_factor(struct p *p, int written)
{
	char name[SQLFACTS_NAME];

	if (++p->depth > MAX_DEPTH)
		return fail(p, "nested too deep");
	if (accept_kw(p, "lateral")) {
		if (!op(p, "("))
			return fail(p, "a query expected after LATERAL");
	}
	if (accept_op(p, "(")) {
		size_t k = 0;

		while (op_at(p, k, "("))
			k++;
		if (query_start(p, k)) {
			/* a derived table: (query) alias [(cols)] */
			if (query_expr(p, 0) || expect_op(p, ")") || alias(p) || column_list(p))
				return -1;
		} else {
			/* ( table_refs ) */
			if (table_refs(p, written) || expect_op(p, ")"))
				return -1;
		}
	} else if (kw(p, "json_table") && op_at(p, 1, "(")) {
		p->i += 2;
		add(p, p->f->functions, &p->f->nfunctions, "json_table");
		if (expr(p, 0, NULL) || expect_op(p, ")") || alias(p))
			return -1;
	} else if (kw(p, "dual")) {
		p->i++;
	} else {
		if (qname(p, name))
			return -1;
		table(p, name, written);
		if (partition_list(p) || alias(p) || index_hints(p))
			return -1;
	}
	p->depth--;
	return 0;
}

static int join_tail(struct p *p, int written)
{
	for (;;) {
		int natural = 0, straight = 0;

		if (accept_kw(p, "natural"))
			natural = 1;
		if (accept_kw(p, "straight_join")) {
			straight = 1;
		} else if (kw(p, "inner") || kw(p, "cross")) {
			p->i++;
			if (expect_kw(p, "join"))
				return -1;
		} else if (kw(p, "left") || kw(p, "right") || kw(p, "full")) {
			p->i++;
			accept_kw(p, "outer");
			if (expect_kw(p, "join"))
				return -1;
		} else if (!accept_kw(p, "join")) {
			if (natural)
				return fail(p, "JOIN expected");
			return 0;
		}
		if (table_factor(p, written))
			return -1;
		if (accept_kw(p, "on")) {
			static const char *const on_stop[] = {
			    "where",	     "group",	  "having",    "order", "limit", "union",
			    "except",	     "intersect", "into",      "for",	"lock",	 "window",
			    "join",	     "inner",	  "left",      "right", "cross", "natural",
			    "straight_join", "set",	  "returning", NULL};

			if (cond(p, on_stop))
				return -1;
		} else if (!natural && !straight && accept_kw(p, "using")) {
			if (column_list(p))
				return -1;
		}
	}
}

static int table_refs(struct p *p, int written)
{
	do {
		if (table_factor(p, written) || join_tail(p, written))
			return -1;
	} while (accept_op(p, ","));
	return 0;
}

/* INTO OUTFILE 'f' ..., INTO DUMPFILE 'f', INTO @a, @b */
static int into(struct p *p)
{
	if (!accept_kw(p, "into"))
		return 0;
	if (accept_kw(p, "outfile") || accept_kw(p, "dumpfile")) {
		static const char *const stop[] = {"for", "lock", NULL};

		kind(p, SK_COPY_TO);
		p->f->copy |= SQL_COPY_FILE;
		if (tk(p, 0)->kind != MYL_STRING)
			return fail(p, "a file name expected");
		p->i++;
		/* CHARACTER SET, FIELDS ..., LINES ...: words and strings */
		while (!at_end(p) && !op(p, ")")) {
			int hit = 0;

			for (int i = 0; stop[i]; i++)
				hit |= kw(p, stop[i]);
			if (hit)
				break;
			if (tk(p, 0)->kind != MYL_IDENT && tk(p, 0)->kind != MYL_STRING &&
			    tk(p, 0)->kind != MYL_HEX)
				return fail(p, "an OUTFILE option expected");
			p->i++;
		}
		return 0;
	}
	/* variables: values carried out of the statement, past masking */
	kind(p, SK_SET);
	do {
		if (tk(p, 0)->kind != MYL_VAR && tk(p, 0)->kind != MYL_IDENT &&
		    tk(p, 0)->kind != MYL_QIDENT)
			return fail(p, "a variable expected");
		p->i++;
	} while (accept_op(p, ","));
	return 0;
}

static int order_limit(struct p *p, int *limited)
{
	static const char *const stop[] = {"limit",  "into",	  "for",       "lock", "union",
					   "except", "intersect", "returning", NULL};
	static const char *const lstop[] = {"into",   "for",	   "lock",	"union",
					    "except", "intersect", "returning", NULL};

	if (accept_kw(p, "order")) {
		if (expect_kw(p, "by") || expr_list(p, stop))
			return -1;
	}
	if (accept_kw(p, "limit")) {
		*limited = 1;
		if (expr_list(p, lstop))
			return -1;
	}
	return 0;
}

static int locking(struct p *p)
{
	for (;;) {
		if (kw(p, "for") && (kw_at(p, 1, "update") || kw_at(p, 1, "share"))) {
			p->i += 2;
			if (accept_kw(p, "of")) {
				do {
					char x[SQLFACTS_NAME];

					if (qname(p, x))
						return -1;
				} while (accept_op(p, ","));
			}
			if (accept_kw(p, "nowait"))
				continue;
			if (accept_kw(p, "skip")) {
				if (expect_kw(p, "locked"))
					return -1;
			} else if (accept_kw(p, "wait")) {
				if (tk(p, 0)->kind != MYL_NUMBER)
					return fail(p, "a number expected");
				p->i++;
			}
			continue;
		}
		if (kw(p, "lock") && kw_at(p, 1, "in")) {
			p->i += 2;
			if (expect_kw(p, "share") || expect_kw(p, "mode"))
				return -1;
			continue;
		}
		return 0;
	}
}

/* SELECT ... (one query block) */
static int select_block(struct p *p, int *limited)
{
	static const char *const opts[] = {
	    "all",	     "distinct",	 "distinctrow",		"high_priority",
	    "straight_join", "sql_small_result", "sql_big_result",	"sql_buffer_result",
	    "sql_cache",     "sql_no_cache",	 "sql_calc_found_rows", NULL};
	static const char *const where_stop[] = {"group",  "having",	"order", "limit", "union",
						 "except", "intersect", "into",	 "for",	  "lock",
						 "window", "returning", NULL};
	static const char *const group_stop[] = {
	    "having", "order", "limit",	 "union", "except",    "intersect", "into",
	    "for",    "lock",  "window", "with",  "returning", NULL};

	if (expect_kw(p, "select"))
		return -1;
	for (int again = 1; again;) {
		again = 0;
		for (int i = 0; opts[i]; i++)
			if (accept_kw(p, opts[i]))
				again = 1;
	}
	if (expr_list(p, q_stop) || into(p))
		return -1;
	if (accept_kw(p, "from")) {
		if (table_refs(p, 0))
			return -1;
	}
	if (accept_kw(p, "where") && cond(p, where_stop))
		return -1;
	if (accept_kw(p, "group")) {
		if (expect_kw(p, "by") || expr_list(p, group_stop))
			return -1;
		if (kw(p, "with") && kw_at(p, 1, "rollup"))
			p->i += 2;
	}
	if (accept_kw(p, "having") && cond(p, where_stop))
		return -1;
	if (accept_kw(p, "window")) {
		static const char *const wstop[] = {
		    "order", "limit", "union", "except", "intersect", "into", "for", "lock", NULL};

		if (expr_list(p, wstop))
			return -1;
	}
	return order_limit(p, limited) || into(p) || locking(p) || into(p) ? -1 : 0;
}

/* SELECT ..., (query), TABLE t, VALUES ROW(...), ... */
static int query_term(struct p *p, int *limited)
{
	if (kw(p, "select"))
		return select_block(p, limited);
	if (accept_kw(p, "table")) {
		char name[SQLFACTS_NAME];

		if (p->st->mariadb)
			return fail(p, "TABLE is MySQL's, not MariaDB's");
		kind(p, SK_SELECT);
		if (qname(p, name))
			return -1;
		table(p, name, 0);
		return order_limit(p, limited);
	}
	if (accept_kw(p, "values")) {
		do {
			/* MySQL writes each row ROW(...); MariaDB's value constructor has no ROW */
			if (p->st->mariadb ? kw(p, "row") : !accept_kw(p, "row"))
				return fail(p, "VALUES rows as the server does not write them");
			if (expect_op(p, "(") || expr_list(p, NULL) || expect_op(p, ")"))
				return -1;
		} while (accept_op(p, ","));
		return order_limit(p, limited);
	}
	if (accept_op(p, "(")) {
		if (query_expr(p, 0) || expect_op(p, ")"))
			return -1;
		return 0;
	}
	return fail(p, "a query expected");
}

static int query_expr(struct p *p, int top)
{
	int limited = 0, ncte = p->ncte;

	if (++p->depth > MAX_DEPTH)
		return fail(p, "nested too deep");
	kind(p, SK_SELECT);
	if (accept_kw(p, "with")) {
		int recursive = accept_kw(p, "recursive");

		do {
			char name[72];

			if (name_part(p, name, sizeof(name)))
				return -1;
			if (p->ncte >= MAX_CTES)
				return fail(p, "more WITH queries than hoop reads");
			/* The name is a query's after its body; inside its own body only with
			 * RECURSIVE (WITH patients AS (SELECT * FROM patients) reads the table). */
			if (recursive)
				snprintf(p->cte[p->ncte++], SQLFACTS_NAME, "%s", name);
			if (column_list(p) || expect_kw(p, "as") || expect_op(p, "(") ||
			    query_expr(p, 0) || expect_op(p, ")"))
				return -1;
			if (!recursive)
				snprintf(p->cte[p->ncte++], SQLFACTS_NAME, "%s", name);
		} while (accept_op(p, ","));
	}
	if (query_term(p, &limited))
		return -1;
	while (kw(p, "union") || kw(p, "except") || kw(p, "intersect")) {
		p->i++;
		if (!accept_kw(p, "all"))
			accept_kw(p, "distinct");
		limited = 0;
		if (query_term(p, &limited))
			return -1;
	}
	if (order_limit(p, &limited) || into(p) || locking(p) || into(p))
		return -1;
	if (top && !limited)
		p->f->select_without_limit = 1;
	/* WITH names end with their query, after the clauses that may use them */
	p->ncte = ncte;
	p->depth--;
	return 0;
}

/* ---- statements --------------------------------------------------------------------------- */

/* a = expr, b = expr (SET clauses) */
static int assignments(struct p *p, const char *const *stop)
{
	return expr_list(p, stop);
}

/* MariaDB's RETURNING select list (INSERT, REPLACE, DELETE): a read. */
static int returning(struct p *p)
{
	if (!accept_kw(p, "returning"))
		return 0;
	kind(p, SK_SELECT);
	return expr_list(p, NULL);
}

/* WHERE of an UPDATE or DELETE, or the fact that there is none (every row). */
static int where_or_all(struct p *p, const char *const *stop)
{
	if (accept_kw(p, "where"))
		return cond(p, stop);
	p->f->write_without_where = 1;
	return 0;
}

static int insert_stmt(struct p *p, int replace)
{
	static const char *const opts[] = {"low_priority", "delayed", "high_priority", "ignore",
					   NULL};
	static const char *const dup_stop[] = {"returning", NULL};
	char name[SQLFACTS_NAME];
	int limited = 0;

	kind(p, SK_INSERT);
	if (replace)
		kind(p, SK_DELETE); /* REPLACE deletes the rows it conflicts with */
	for (int again = 1; again;) {
		again = 0;
		for (int i = 0; opts[i]; i++)
			if (accept_kw(p, opts[i]))
				again = 1;
	}
	accept_kw(p, "into");
	if (qname(p, name))
		return -1;
	table(p, name, 1);
	if (partition_list(p))
		return -1;
	if (op(p, "(") && !query_start(p, 1) && !op_at(p, 1, "(")) {
		if (column_list(p))
			return -1;
	}
	if (accept_kw(p, "values") || accept_kw(p, "value")) {
		do {
			accept_kw(p, "row");
			if (expect_op(p, "("))
				return -1;
			if (!op(p, ")") && expr_list(p, NULL))
				return -1;
			if (expect_op(p, ")"))
				return -1;
		} while (accept_op(p, ","));
	} else if (accept_kw(p, "set")) {
		static const char *const stop[] = {"on", "returning", "as", NULL};

		if (assignments(p, stop))
			return -1;
	} else if (query_start(p, 0) || op(p, "(")) {
		if (query_expr(p, 0))
			return -1;
		p->f->kinds |= 1ULL << SK_SELECT;
		(void)limited;
	} else {
		return fail(p, "VALUES, SET or a query expected");
	}
	if (accept_kw(p, "as")) { /* MySQL 8's row alias */
		char x[72];

		if (name_part(p, x, sizeof(x)) || column_list(p))
			return -1;
	}
	if (accept_kw(p, "on")) {
		if (expect_kw(p, "duplicate") || expect_kw(p, "key") || expect_kw(p, "update") ||
		    assignments(p, dup_stop))
			return -1;
		kind(p, SK_UPDATE);
	}
	return returning(p);
}

static int update_stmt(struct p *p)
{
	static const char *const set_stop[] = {"where", "order", "limit", "returning", NULL};
	static const char *const where_stop[] = {"order", "limit", "returning", NULL};
	int limited = 0;

	kind(p, SK_UPDATE);
	accept_kw(p, "low_priority");
	accept_kw(p, "ignore");
	if (table_refs(p, 1) || expect_kw(p, "set") || assignments(p, set_stop))
		return -1;
	if (where_or_all(p, where_stop))
		return -1;
	return order_limit(p, &limited);
}

/* t[.*], t2[.*] (the tables a multi-table DELETE deletes from) */
static int delete_targets(struct p *p)
{
	do {
		char name[SQLFACTS_NAME];

		if (qname(p, name))
			return -1;
		if (op(p, ".") && op_at(p, 1, "*"))
			p->i += 2;
		table(p, name, 1);
	} while (accept_op(p, ","));
	return 0;
}

static int delete_stmt(struct p *p)
{
	static const char *const where_stop[] = {"order", "limit", "returning", NULL};
	int limited = 0;

	kind(p, SK_DELETE);
	for (int again = 1; again;)
		again =
		    accept_kw(p, "low_priority") || accept_kw(p, "quick") || accept_kw(p, "ignore");
	if (accept_kw(p, "from")) {
		size_t save = p->i;

		if (delete_targets(p))
			return -1;
		if (accept_kw(p, "using")) {
			if (table_refs(p, 0))
				return -1;
		} else {
			/* one table: FROM t [PARTITION] [AS a] */
			p->i = save;
			{
				char name[SQLFACTS_NAME];

				if (qname(p, name))
					return -1;
				table(p, name, 1);
				if (partition_list(p))
					return -1;
				/* an alias of a single-table DELETE: MySQL from 8.0.16, MariaDB from
				 * 11.6; before, the server's grammar refuses it (and so does hoop) */
				if ((p->st->mariadb ? p->st->version >= 110600
						    : p->st->version >= 80016) &&
				    alias(p))
					return -1;
			}
		}
	} else {
		if (delete_targets(p) || expect_kw(p, "from") || table_refs(p, 0))
			return -1;
	}
	if (where_or_all(p, where_stop))
		return -1;
	if (order_limit(p, &limited))
		return -1;
	return returning(p);
}

/* The rest of a statement whose details carry no table: its expressions still get read
 * (a subquery in SHOW ... WHERE reads tables). */
static int rest(struct p *p)
{
	while (!at_end(p)) {
		if (op(p, ")"))
			return fail(p, "an unmatched \")\"");
		if (expr(p, 0, NULL))
			return -1;
		if (!at_end(p) && !op(p, ")"))
			p->i++;
	}
	return 0;
}

/* Is token k a variable whose value changes how text reads (SET STATEMENT's list)? */
static int lexing_var(const struct p *p, size_t k)
{
	static const char *const vars[] = {"sql_mode", "names", "character_set_client",
					   "character_set_connection", "charset", "character",
					   NULL};

	for (int i = 0; vars[i]; i++)
		if (myl_is(p->s, &p->t[k], vars[i]))
			return 1;
	if (p->t[k].kind == MYL_SYSVAR) { /* @@sql_mode, @@session.character_set_client */
		char v[96];

		snprintf(v, sizeof(v), "%.*s", (int)(p->t[k].len < 95 ? p->t[k].len : 95),
			 p->s + p->t[k].off);
		return strcasestr(v, "sql_mode") || strcasestr(v, "character_set");
	}
	return 0;
}

static int set_stmt(struct p *p)
{
	size_t end = stmt_end(p);
	int depth = 0;

	if (accept_kw(p, "statement")) {
		/* SET STATEMENT var = value [, ...] FOR statement: the statement's own facts; the
		 * statement is read under the variables it sets, which hoop does not follow */
		static const char *const stop[] = {"for", NULL};
		size_t from = p->i;

		kind(p, SK_SET);
		if (expr_list(p, stop) || expect_kw(p, "for"))
			return -1;
		for (size_t k = from; k < p->i; k++)
			if (lexing_var(p, k))
				return fail(p,
					    "SET STATEMENT that changes how its statement reads");
		return stmt(p);
	}
	/* every assignment of the list, not only the first: SET @a = 1, PASSWORD = ...,
	 * GLOBAL x = ..., @@global . x = ... */
	for (size_t k = p->i; k < end; k++) {
		const struct myl_token *t = &p->t[k];
		int first = k == p->i || (p->t[k - 1].kind == MYL_OP && !strcmp(p->t[k - 1].op, ",") &&
					  depth == 0);

		if (t->kind == MYL_OP && !strcmp(t->op, "("))
			depth++;
		else if (t->kind == MYL_OP && !strcmp(t->op, ")"))
			depth -= depth > 0;
		if (t->kind == MYL_SYSVAR &&
		    ((t->len >= 8 && !strncasecmp(p->s + t->off, "@@global", 8)) ||
		     (t->len >= 9 && !strncasecmp(p->s + t->off, "@@persist", 9))))
			kind(p, SK_ALTER_SYSTEM);
		if (!first || t->kind != MYL_IDENT)
			continue;
		if (myl_is(p->s, t, "password"))
			kind(p, SK_ALTER_ROLE);
		else if (myl_is(p->s, t, "global") || myl_is(p->s, t, "persist") ||
			 myl_is(p->s, t, "persist_only"))
			kind(p, SK_ALTER_SYSTEM);
		else if (myl_is(p->s, t, "role") ||
			 (myl_is(p->s, t, "default") && k + 1 < end && myl_is(p->s, &p->t[k + 1], "role")))
			kind(p, SK_SET_ROLE);
	}
	if (kw(p, "password") || kw(p, "role") || (kw(p, "default") && kw_at(p, 1, "role")))
		return rest(p);
	if (kw(p, "transaction") || (kw(p, "session") && kw_at(p, 1, "transaction"))) {
		kind(p, SK_TRANSACTION);
		return rest(p);
	}
	kind(p, SK_SET);
	return expr_list(p, NULL);
}

static int explainable(const struct p *p)
{
	return query_start(p, 0) || op(p, "(") || kw(p, "insert") || kw(p, "replace") ||
	       kw(p, "update") || kw(p, "delete");
}

static int explain_stmt(struct p *p)
{
	/* EXPLAIN [EXTENDED|PARTITIONS|FORMAT=x|ANALYZE] stmt, or DESCRIBE t [col] */
	for (;;) {
		if (accept_kw(p, "extended") || accept_kw(p, "partitions") ||
		    accept_kw(p, "analyze"))
			continue;
		/* FORMAT=name: the name a word of this statement (not its ';', not the end) */
		if (kw(p, "format") && op_at(p, 1, "=") && p->i + 2 < stmt_end(p) &&
		    (p->t[p->i + 2].kind == MYL_IDENT || p->t[p->i + 2].kind == MYL_QIDENT ||
		     p->t[p->i + 2].kind == MYL_STRING)) {
			p->i += 3;
			continue;
		}
		break;
	}
	if (explainable(p)) {
		/* ANALYZE runs it: its facts are the statement's own */
		kind(p, SK_EXPLAIN);
		return stmt(p);
	}
	kind(p, SK_SHOW);
	{
		char name[SQLFACTS_NAME];

		if (qname(p, name))
			return -1;
		table(p, name, 0); /* its columns: the server checks a privilege on it */
	}
	return rest(p);
}

/* ON t (CREATE INDEX i ON t, DROP INDEX i ON t): the table, written; then the rest. */
static int index_on(struct p *p)
{
	for (size_t k = p->i; k + 1 < stmt_end(p); k++)
		if (myl_is(p->s, &p->t[k], "on")) {
			char name[SQLFACTS_NAME];
			size_t save = p->i;

			p->i = k + 1;
			if (qname(p, name))
				return -1;
			table(p, name, 1);
			p->i = save;
			break;
		}
	return rest(p);
}

/* SHOW ...: the tables it names (COLUMNS/INDEX FROM t [FROM db], CREATE TABLE/VIEW t) are
 * read (the server checks a privilege on them); the rest is read as expressions. */
static int show_stmt(struct p *p)
{
	char name[SQLFACTS_NAME], db[72];

	kind(p, SK_SHOW);
	accept_kw(p, "full");
	accept_kw(p, "extended");
	if (kw(p, "columns") || kw(p, "fields") || kw(p, "index") || kw(p, "indexes") ||
	    kw(p, "keys")) {
		p->i++;
		if (!accept_kw(p, "from") && !accept_kw(p, "in"))
			return fail(p, "FROM expected");
		if (qname(p, name))
			return -1;
		if ((kw(p, "from") || kw(p, "in")) && !strchr(name, '.')) {
			char full[SQLFACTS_NAME];

			p->i++;
			if (name_part(p, db, sizeof(db)))
				return -1;
			snprintf(full, sizeof(full), "%.64s.%.64s", db, name);
			snprintf(name, sizeof(name), "%s", full);
		}
		table(p, name, 0);
		return rest(p);
	}
	if (kw(p, "create") && (kw_at(p, 1, "table") || kw_at(p, 1, "view"))) {
		p->i += 2;
		if (qname(p, name))
			return -1;
		table(p, name, 0);
		return rest(p);
	}
	return rest(p);
}

static int drop_stmt(struct p *p)
{
	accept_kw(p, "temporary");
	if (accept_kw(p, "table") || accept_kw(p, "tables")) {
		kind(p, SK_DROP_TABLE);
		if (kw(p, "if") && kw_at(p, 1, "exists"))
			p->i += 2;
		do {
			char name[SQLFACTS_NAME];

			if (qname(p, name))
				return -1;
			table(p, name, 1);
		} while (accept_op(p, ","));
		if (!accept_kw(p, "restrict"))
			accept_kw(p, "cascade");
		return 0;
	}
	if (accept_kw(p, "database") || accept_kw(p, "schema"))
		kind(p, SK_DROP_DATABASE);
	else if (accept_kw(p, "view"))
		kind(p, SK_DROP_VIEW);
	else if (accept_kw(p, "index")) {
		kind(p, SK_DROP_INDEX);
		return index_on(p);
	} else if (accept_kw(p, "user") || accept_kw(p, "role"))
		kind(p, SK_DROP_ROLE);
	else if (accept_kw(p, "function") || accept_kw(p, "procedure"))
		kind(p, SK_DROP_FUNCTION);
	else if (accept_kw(p, "prepare"))
		kind(p, SK_DEALLOCATE);
	else
		kind(p, SK_DROP_OTHER);
	return rest(p);
}

static int create_stmt(struct p *p)
{
	if (kw(p, "or") && kw_at(p, 1, "replace")) {
		/* MariaDB's CREATE OR REPLACE drops what has the name first */
		p->i += 2;
		if (kw(p, "table") || (kw(p, "temporary") && kw_at(p, 1, "table")))
			kind(p, SK_DROP_TABLE);
		else if (kw(p, "database") || kw(p, "schema"))
			kind(p, SK_DROP_DATABASE);
		else if (kw(p, "user") || kw(p, "role"))
			kind(p, SK_DROP_ROLE);
		else if (kw(p, "index") || kw_at(p, 1, "index"))
			kind(p, SK_DROP_INDEX);
		else if (!kw(p, "view") && !kw_at(p, 2, "view") && !kw_at(p, 4, "view"))
			kind(p, SK_DROP_OTHER);
	}
	accept_kw(p, "temporary");
	if (accept_kw(p, "table")) {
		char name[SQLFACTS_NAME];

		kind(p, SK_CREATE_TABLE);
		if (kw(p, "if") && kw_at(p, 1, "not") && kw_at(p, 2, "exists"))
			p->i += 3;
		if (qname(p, name))
			return -1;
		table(p, name, 1);
		if (accept_kw(p, "like") || (op(p, "(") && kw_at(p, 1, "like"))) {
			int paren = accept_op(p, "(") && accept_kw(p, "like");

			if (qname(p, name))
				return -1;
			table(p, name, 0);
			return paren ? expect_op(p, ")") : 0;
		}
		if (op(p, "(") && !query_start(p, 1)) {
			p->i++;
			if (expr(p, 0, NULL) || expect_op(p, ")"))
				return -1;
		}
		/* table options, then [IGNORE|REPLACE] [AS] query */
		while (!at_end(p) && !query_start(p, 0) && !kw(p, "as") && !op(p, "(")) {
			if (op(p, ")"))
				return fail(p, "an unmatched \")\"");
			p->i++;
		}
		if (accept_kw(p, "as") || query_start(p, 0) || op(p, "(")) {
			if (query_expr(p, 0))
				return -1;
		}
		return 0;
	}
	if (accept_kw(p, "database") || accept_kw(p, "schema")) {
		kind(p, SK_CREATE_DATABASE);
		return rest(p);
	}
	if (kw(p, "index") || kw_at(p, 1, "index")) {
		kind(p, SK_CREATE_INDEX);
		return index_on(p);
	}
	if (accept_kw(p, "user") || accept_kw(p, "role")) {
		kind(p, SK_CREATE_ROLE);
		return rest(p);
	}
	/* [ALGORITHM = x] [DEFINER = u] [SQL SECURITY x] VIEW v [(cols)] AS query */
	for (size_t k = 0; k < 8 && p->i + k < stmt_end(p); k++)
		if (kw_at(p, k, "view")) {
			char name[SQLFACTS_NAME];

			p->i += k + 1;
			kind(p, SK_CREATE_VIEW);
			if (qname(p, name) || column_list(p) || expect_kw(p, "as") ||
			    query_expr(p, 0))
				return -1;
			if (kw(p, "with")) /* WITH [CASCADED|LOCAL] CHECK OPTION */
				while (!at_end(p))
					p->i++;
			return 0;
		}
	return fail(p, "a CREATE statement hoop does not read (procedures, functions, "
		       "triggers and events run bodies hoop cannot judge)");
}

static int alter_stmt(struct p *p)
{
	if (accept_kw(p, "table")) {
		char name[SQLFACTS_NAME];

		kind(p, SK_ALTER_TABLE);
		if (qname(p, name))
			return -1;
		table(p, name, 1);
		for (size_t k = p->i; k < stmt_end(p); k++) {
			const struct myl_token *t = &p->t[k];

			if (myl_is(p->s, t, "rename")) {
				kind(p, SK_RENAME);
				/* RENAME [TO|AS] name: the new name is written */
				if (k + 1 < p->n && (myl_is(p->s, &p->t[k + 1], "to") ||
						     myl_is(p->s, &p->t[k + 1], "as"))) {
					size_t save = p->i;
					char to[SQLFACTS_NAME];

					p->i = k + 2;
					if (qname(p, to))
						return -1;
					table(p, to, 1);
					p->i = save;
				}
			}
			if (myl_is(p->s, t, "union"))
				return fail(p, "ALTER TABLE ... UNION (a MERGE table's tables)");
			if (myl_is(p->s, t, "drop") && k + 1 < p->n) {
				const struct myl_token *u = &p->t[k + 1];
				static const char *const notcol[] = {
				    "index",	 "key",	       "primary", "foreign",
				    "partition", "constraint", "check",	  "default",
				    "system",	 "period",     NULL};
				int col = 1;

				for (int i = 0; notcol[i]; i++)
					if (myl_is(p->s, u, notcol[i]))
						col = 0;
				if (col)
					kind(p, SK_ALTER_TABLE_DROP_COLUMN);
				else if (myl_is(p->s, u, "partition"))
					kind(p, SK_TRUNCATE); /* its rows go with it */
				else if (myl_is(p->s, u, "default") || myl_is(p->s, u, "system") ||
					 myl_is(p->s, u, "period"))
					kind(p, SK_DROP_OTHER);
				else
					kind(p, SK_DROP_INDEX); /* index, key, constraint, check */
			}
			/* rows or data files gone, or moved to another table */
			if ((myl_is(p->s, t, "truncate") || myl_is(p->s, t, "exchange")) &&
			    k + 1 < p->n && myl_is(p->s, &p->t[k + 1], "partition"))
				kind(p, SK_TRUNCATE);
			if ((myl_is(p->s, t, "discard") || myl_is(p->s, t, "import")) && k + 1 < p->n &&
			    myl_is(p->s, &p->t[k + 1], "tablespace"))
				kind(p, SK_TRUNCATE);
			if (myl_is(p->s, t, "remove") && k + 1 < p->n &&
			    myl_is(p->s, &p->t[k + 1], "partitioning"))
				kind(p, SK_ALTER_TABLE);
			/* CHANGE [COLUMN] old new ...: a rename of the column, whatever else */
			if (myl_is(p->s, t, "change") && t->kind == MYL_IDENT)
				kind(p, SK_RENAME);
		}
		return rest(p);
	}
	if (accept_kw(p, "user") || accept_kw(p, "role")) {
		kind(p, SK_ALTER_ROLE);
		return rest(p);
	}
	if (accept_kw(p, "database") || accept_kw(p, "schema")) {
		kind(p, SK_ALTER_DATABASE);
		return rest(p);
	}
	return fail(p, "an ALTER statement hoop does not read");
}

static int prepare_stmt(struct p *p)
{
	char x[72];

	kind(p, SK_PREPARE);
	if (name_part(p, x, sizeof(x)) || expect_kw(p, "from"))
		return -1;
	if (tk(p, 0)->kind == MYL_VAR) {
		/* text built at run time: nothing to judge it by */
		kind(p, SK_OPAQUE_SQL);
		p->i++;
		return 0;
	}
	if (tk(p, 0)->kind != MYL_STRING)
		return fail(p, "a statement text expected");
	{
		/* the text's own facts: unquoted ('' and, with escapes, \x), then read as a text */
		const struct myl_token *t = tk(p, 0);
		const char *q = p->s + t->off;
		size_t start = 0, ql = t->len;
		char *buf, qc;
		size_t o = 0;
		struct sqlfacts *inner;
		int r;

		while (start < ql && q[start] != '\'' && q[start] != '"')
			start++; /* N'...', _cs'...' */
		if (start + 2 > ql)
			return fail(p, "a statement text expected");
		if (start > 1 || (start == 1 && (q[0] | 0x20) != 'n')) {
			/* the server converts the text from the introducer's character set before
			 * it lexes it: only sets whose bytes read the same are taken */
			static const char *const same[] = {"_utf8mb4", "_utf8mb3", "_utf8",
							   "_ascii",   "_binary",  NULL};
			int ok = 0;

			for (int i = 0; same[i]; i++)
				ok |= strlen(same[i]) == start && !strncasecmp(q, same[i], start);
			if (!ok)
				return fail(p, "a prepared text in another character set");
		}
		qc = q[start];
		buf = malloc(2 * ql);
		inner = calloc(1, sizeof(*inner));
		if (!buf || !inner) {
			free(buf);
			free(inner);
			return fail(p, "out of memory");
		}
		for (size_t k = start + 1; k + 1 < ql; k++) {
			char c = q[k];

			if (c == qc)
				k++;
			else if (c == '\\' && !p->st->no_backslash_escapes && k + 2 < ql) {
				/* as the server unescapes (sql_lex.cc): \% and \_ keep their
				 * backslash, \0 is a NUL byte */
				c = q[++k];
				if (c == '%' || c == '_')
					buf[o++] = '\\';
				else if (c == 'n')
					c = '\n';
				else if (c == 't')
					c = '\t';
				else if (c == 'r')
					c = '\r';
				else if (c == 'b')
					c = '\b';
				else if (c == 'Z')
					c = 0x1a;
				else if (c == '0') {
					free(buf);
					free(inner);
					return fail(p, "a NUL byte in a prepared text");
				}
			}
			buf[o++] = c;
		}
		r = mysql_facts(p->st, buf, o, inner);
		free(buf);
		if (r) {
			snprintf(p->f->error, sizeof(p->f->error), "in the prepared text: %.200s",
				 inner->error);
			free(inner);
			p->err = 1;
			return -1;
		}
		p->f->kinds |= inner->kinds;
		for (int i = 0; i < inner->nread; i++)
			add(p, p->f->read, &p->f->nread, inner->read[i]);
		for (int i = 0; i < inner->nwritten; i++)
			add(p, p->f->written, &p->f->nwritten, inner->written[i]);
		for (int i = 0; i < inner->nfunctions; i++)
			add(p, p->f->functions, &p->f->nfunctions, inner->functions[i]);
		p->f->copy |= inner->copy;
		p->f->write_without_where |= inner->write_without_where;
		p->f->select_without_limit |= inner->select_without_limit;
		p->f->too_many |= inner->too_many;
		free(inner);
		p->i++;
	}
	return 0;
}

static int transaction_stmt(struct p *p)
{
	kind(p, SK_TRANSACTION);
	return rest(p);
}

static int stmt(struct p *p)
{
	if (++p->depth > MAX_DEPTH)
		return fail(p, "nested too deep");
	if (query_start(p, 0) || op(p, "(")) {
		if (query_expr(p, 1))
			return -1;
	} else if (accept_kw(p, "insert")) {
		if (insert_stmt(p, 0))
			return -1;
	} else if (accept_kw(p, "replace")) {
		if (insert_stmt(p, 1))
			return -1;
	} else if (accept_kw(p, "update")) {
		if (update_stmt(p))
			return -1;
	} else if (accept_kw(p, "delete")) {
		if (delete_stmt(p))
			return -1;
	} else if (accept_kw(p, "set")) {
		if (set_stmt(p))
			return -1;
	} else if (accept_kw(p, "show")) {
		if (show_stmt(p))
			return -1;
	} else if (accept_kw(p, "describe") || accept_kw(p, "desc") || accept_kw(p, "explain")) {
		if (explain_stmt(p))
			return -1;
	} else if (kw(p, "analyze") && (query_start(p, 1) || kw_at(p, 1, "format"))) {
		p->i++;
		if (explain_stmt(p))
			return -1;
	} else if (accept_kw(p, "use")) {
		char x[72];

		kind(p, SK_SET);
		if (name_part(p, x, sizeof(x)))
			return -1;
	} else if (kw(p, "begin")) {
		p->i++;
		accept_kw(p, "work");
		kind(p, SK_TRANSACTION);
	} else if (accept_kw(p, "start")) {
		if (!accept_kw(p, "transaction"))
			return fail(p, "a START statement hoop does not read");
		if (transaction_stmt(p))
			return -1;
	} else if (accept_kw(p, "commit") || accept_kw(p, "rollback") ||
		   accept_kw(p, "savepoint") || accept_kw(p, "xa")) {
		if (transaction_stmt(p))
			return -1;
	} else if (kw(p, "release") && kw_at(p, 1, "savepoint")) {
		p->i++;
		if (transaction_stmt(p))
			return -1;
	} else if (accept_kw(p, "load")) {
		/* LOAD DATA|XML [LOW_PRIORITY|CONCURRENT] [LOCAL] INFILE 'f' ... INTO TABLE t */
		size_t k;

		if (!accept_kw(p, "data") && !accept_kw(p, "xml"))
			return fail(p, "a LOAD statement hoop does not read");
		kind(p, SK_COPY_FROM);
		p->f->copy |= SQL_COPY_FILE;
		for (k = p->i; k + 2 < stmt_end(p); k++)
			if (myl_is(p->s, &p->t[k], "into") && myl_is(p->s, &p->t[k + 1], "table"))
				break;
		if (k + 2 >= stmt_end(p))
			return fail(p, "INTO TABLE expected");
		p->i = k + 2;
		{
			char name[SQLFACTS_NAME];

			if (qname(p, name))
				return -1;
			table(p, name, 1);
		}
		if (rest(p))
			return -1;
	} else if (accept_kw(p, "handler")) {
		char name[SQLFACTS_NAME];

		kind(p, SK_SELECT);
		if (qname(p, name))
			return -1;
		table(p, name, 0);
		if (rest(p))
			return -1;
	} else if (accept_kw(p, "do")) {
		kind(p, SK_DO);
		if (expr_list(p, NULL))
			return -1;
	} else if (accept_kw(p, "call")) {
		char name[SQLFACTS_NAME];

		kind(p, SK_CALL);
		if (qname(p, name))
			return -1;
		add(p, p->f->functions, &p->f->nfunctions, name);
		if (accept_op(p, "(")) {
			if (!op(p, ")") && expr_list(p, NULL))
				return -1;
			if (expect_op(p, ")"))
				return -1;
		}
	} else if (accept_kw(p, "prepare")) {
		if (prepare_stmt(p))
			return -1;
	} else if (accept_kw(p, "execute")) {
		char x[72];

		kind(p, SK_EXECUTE);
		if (name_part(p, x, sizeof(x)))
			return -1;
		snprintf(p->f->execute_name, sizeof(p->f->execute_name), "%.63s", x);
		if (accept_kw(p, "using") && expr_list(p, NULL))
			return -1;
	} else if (kw(p, "deallocate") && kw_at(p, 1, "prepare")) {
		char x[72];

		p->i += 2;
		kind(p, SK_DEALLOCATE);
		if (name_part(p, x, sizeof(x)))
			return -1;
	} else if (accept_kw(p, "truncate")) {
		char name[SQLFACTS_NAME];

		kind(p, SK_TRUNCATE);
		accept_kw(p, "table");
		if (qname(p, name))
			return -1;
		table(p, name, 1);
	} else if (accept_kw(p, "drop")) {
		if (drop_stmt(p))
			return -1;
	} else if (accept_kw(p, "create")) {
		if (create_stmt(p))
			return -1;
	} else if (accept_kw(p, "alter")) {
		if (alter_stmt(p))
			return -1;
	} else if (accept_kw(p, "rename")) {
		kind(p, SK_RENAME);
		if (!accept_kw(p, "table"))
			return fail(p, "a RENAME statement hoop does not read");
		do {
			char a[SQLFACTS_NAME], b[SQLFACTS_NAME];

			if (qname(p, a) || expect_kw(p, "to") || qname(p, b))
				return -1;
			table(p, a, 1);
			table(p, b, 1);
		} while (accept_op(p, ","));
	} else if (accept_kw(p, "lock")) {
		kind(p, SK_LOCK);
		if (!accept_kw(p, "tables") && !accept_kw(p, "table"))
			return fail(p, "TABLES expected");
		do {
			char name[SQLFACTS_NAME];

			if (qname(p, name))
				return -1;
			table(p, name, 0);
			if (!kw(p, "read") && !kw(p, "write") && alias(p))
				return -1;
			if (!accept_kw(p, "read") && !accept_kw(p, "write"))
				return fail(p, "READ or WRITE expected");
			accept_kw(p, "local");
		} while (accept_op(p, ","));
	} else if (accept_kw(p, "unlock")) {
		kind(p, SK_LOCK);
		if (!accept_kw(p, "tables") && !accept_kw(p, "table"))
			return fail(p, "TABLES expected");
	} else if (accept_kw(p, "grant") || accept_kw(p, "revoke")) {
		/* privileges, objects and users: no expression, no subquery */
		kind(p, myl_is(p->s, &p->t[p->i - 1], "grant") ? SK_GRANT : SK_REVOKE);
		while (!at_end(p))
			p->i++;
	} else if (accept_kw(p, "kill")) {
		/* another session's query or connection (hoop answers a KILL of a statement it
		 * holds itself) */
		kind(p, SK_OTHER);
		if (rest(p))
			return -1;
	} else if (kw(p, "flush") || kw(p, "reset") || kw(p, "purge") || kw(p, "change") ||
		   kw(p, "install") || kw(p, "uninstall") || kw(p, "shutdown") || kw(p, "stop")) {
		/* the server's state, its replication, its plugins, other sessions */
		kind(p, SK_ALTER_SYSTEM);
		p->i++;
		if (rest(p))
			return -1;
	} else if (kw(p, "optimize") || kw(p, "repair") || kw(p, "check") || kw(p, "checksum") ||
		   kw(p, "analyze")) {
		char name[SQLFACTS_NAME];

		kind(p, SK_VACUUM);
		p->i++;
		if (!accept_kw(p, "table") && !accept_kw(p, "tables"))
			return fail(p, "TABLE expected");
		do {
			if (qname(p, name))
				return -1;
			table(p, name, 0);
		} while (accept_op(p, ","));
		if (rest(p))
			return -1;
	} else {
		return fail(p, "a statement hoop does not read");
	}
	if (!at_end(p))
		return fail(p, "more than hoop reads in this statement");
	p->depth--;
	return 0;
}

/* ---- entry points ------------------------------------------------------------------------- */

/* Does the SET statement in tokens [a, b) change how the server reads what follows it
 * (sql_mode, the client character set)? The statements after it in the same text would be
 * read under settings hoop has not seen the server take. */
static int changes_lexing(const char *s, const struct myl_token *t, size_t a, size_t b)
{
	static const char *const words[] = {"sql_mode",
					    "names",
					    "character",
					    "charset",
					    "character_set_client",
					    "character_set_connection",
					    "collation_connection",
					    NULL};

	if (a >= b || !myl_is(s, &t[a], "set") || (a + 1 < b && myl_is(s, &t[a + 1], "statement")))
		return 0;
	for (size_t k = a + 1; k < b; k++) {
		for (int i = 0; words[i]; i++)
			if (myl_is(s, &t[k], words[i]))
				return 1;
		if (t[k].kind == MYL_SYSVAR || t[k].kind == MYL_QIDENT) {
			/* @@session.sql_mode, `sql_mode` */
			for (int i = 0; words[i]; i++) {
				size_t l = strlen(words[i]);

				for (size_t j = 0; j + l <= t[k].len; j++)
					if (!strncasecmp(s + t[k].off + j, words[i], l))
						return 1;
			}
		}
	}
	return 0;
}

/* Is the statement from token k a compound statement (its body holds ';')? */
static int compound(const char *s, const struct myl_token *t, size_t n, size_t k)
{
	if (k >= n)
		return 0;
	if (myl_is(s, &t[k], "begin"))
		/* BEGIN; BEGIN WORK; are transactions: anything else begins a block */
		return !(k + 1 >= n || (t[k + 1].kind == MYL_OP && !strcmp(t[k + 1].op, ";")) ||
			 myl_is(s, &t[k + 1], "work"));
	if (myl_is(s, &t[k], "if") || myl_is(s, &t[k], "while") || myl_is(s, &t[k], "loop") ||
	    myl_is(s, &t[k], "repeat") || myl_is(s, &t[k], "case") || myl_is(s, &t[k], "declare") ||
	    myl_is(s, &t[k], "for"))
		return 1;
	/* a label: name ':' */
	if ((t[k].kind == MYL_IDENT || t[k].kind == MYL_QIDENT) && k + 1 < n &&
	    t[k + 1].kind == MYL_OP && !strcmp(t[k + 1].op, ":"))
		return 1;
	if (myl_is(s, &t[k], "create")) {
		for (size_t j = k + 1; j < n && j < k + 12; j++) {
			if (t[j].kind == MYL_OP && !strcmp(t[j].op, ";"))
				break;
			if (myl_is(s, &t[j], "procedure") || myl_is(s, &t[j], "function") ||
			    myl_is(s, &t[j], "trigger") || myl_is(s, &t[j], "event") ||
			    myl_is(s, &t[j], "package"))
				return 1;
		}
	}
	return 0;
}

/* Do tokens [a, b) of r, lexed again from text[off..off+len) alone, come out the same? */
static int same_alone(const struct myl_settings *st, const char *text, const struct myl_result *r,
		      size_t a, size_t b, size_t off, size_t len)
{
	struct myl_result r2;
	int same;

	if (myl_lex(st, text + off, len, &r2)) {
		myl_free(&r2);
		return 0;
	}
	same = r2.n == b - a;
	for (size_t i = 0; same && i < r2.n; i++)
		same = r2.tok[i].kind == r->tok[a + i].kind &&
		       r2.tok[i].off + off == r->tok[a + i].off &&
		       r2.tok[i].len == r->tok[a + i].len;
	myl_free(&r2);
	return same;
}

/* Does a statement follow the ';' at token k (another token that is not a ';')? */
static int empty_before(const struct myl_result *r, size_t k)
{
	for (size_t j = k + 1; j < r->n; j++)
		if (!(r->tok[j].kind == MYL_OP && !strcmp(r->tok[j].op, ";")))
			return 1;
	return 0;
}

int mysql_split(const struct myl_settings *st, const char *text, size_t len,
		struct mysql_split *out, char *why, size_t whyn)
{
	struct myl_result r;
	size_t first = 0, from = 0; /* the piece's first token, and where its text starts */

	out->n = 0;
	if (myl_lex(st, text, len, &r)) {
		snprintf(why, whyn, "%s", r.why);
		myl_free(&r);
		return -1;
	}
	for (size_t k = 0; k <= r.n; k++) {
		int end = k == r.n || (r.tok[k].kind == MYL_OP && !strcmp(r.tok[k].op, ";"));
		size_t to = k == r.n ? len : r.tok[k].off; /* the text up to the ';' */

		if (!end)
			continue;
		if (k < r.n && r.tok[k].in_exec_comment) {
			snprintf(why, whyn, "a ';' inside an executable comment");
			goto fail;
		}
		if (k == first && k < r.n && empty_before(&r, k)) {
			/* ";" with nothing before it and a statement after it: the server's parser
			 * refuses the text from there (";select 1", "select 1;;select 2"); only
			 * empty pieces at the end are skipped */
			snprintf(why, whyn, "an empty statement before another (\";;\" or a leading \";\")");
			goto fail;
		}
		if (k > first) {
			size_t off = from, l;

			while (off < to && isspace((unsigned char)text[off]))
				off++;
			while (to > off && isspace((unsigned char)text[to - 1]))
				to--;
			l = to - off;
			if (compound(text, r.tok, r.n, first)) {
				snprintf(why, whyn,
					 "a compound statement (its body holds statements "
					 "hoop cannot judge one at a time)");
				goto fail;
			}
			/* a statement that may change how the rest of the text reads, before other
			 * statements: a SET of the settings, and EXECUTE and CALL, which run text
			 * that may be such a SET (PREPARE s FROM 'SET sql_mode = ...') */
			if (k < r.n && (changes_lexing(text, r.tok, first, k) ||
					myl_is(text, &r.tok[first], "execute") ||
					myl_is(text, &r.tok[first], "call"))) {
				size_t j = k + 1;

				while (j < r.n && r.tok[j].kind == MYL_OP &&
				       !strcmp(r.tok[j].op, ";"))
					j++;
				if (j < r.n) {
					snprintf(why, whyn,
						 "a SET of sql_mode or the character set, an "
						 "EXECUTE or a CALL before other statements in "
						 "one query (send them separately)");
					goto fail;
				}
			}
			if (out->n == MYSQL_MAX_STMTS) {
				snprintf(why, whyn, "more than %d statements", MYSQL_MAX_STMTS);
				goto fail;
			}
			/* a statement is judged on its own text: it must read the same there
			 * (an executable comment that opens in one statement and closes in
			 * another would not) */
			if (!same_alone(st, text, &r, first, k, off, l)) {
				snprintf(why, whyn,
					 "a statement that reads differently on its own "
					 "(an executable comment across statements)");
				goto fail;
			}
			out->off[out->n] = off;
			out->len[out->n] = l;
			out->n++;
		}
		first = k + 1;
		from = k < r.n ? r.tok[k].off + 1 : len;
	}
	myl_free(&r);
	return 0;
fail:
	myl_free(&r);
	out->n = 0;
	return -1;
}

int mysql_facts(const struct myl_settings *st, const char *text, size_t len, struct sqlfacts *f)
{
	struct myl_result r;
	struct p p = {0};
	size_t k = 0;

	memset(f, 0, sizeof(*f));
	if (myl_lex(st, text, len, &r)) {
		f->parse_error = 1;
		snprintf(f->error, sizeof(f->error), "%s", r.why);
		myl_free(&r);
		return -1;
	}
	p.st = st ? st : &(const struct myl_settings){0};
	p.s = text;
	p.t = r.tok;
	p.n = r.n;
	p.f = f;
	while (p.i < p.n) {
		if (op(&p, ";")) {
			p.i++;
			continue;
		}
		if (compound(text, r.tok, r.n, p.i)) {
			fail(&p,
			     "a compound statement (its body holds statements hoop cannot judge "
			     "one at a time)");
			break;
		}
		p.depth = 0;
		p.ncte = 0;
		{
			size_t b = p.i, j;

			while (b < p.n && !(r.tok[b].kind == MYL_OP && !strcmp(r.tok[b].op, ";")))
				b++;
			for (j = b;
			     j < p.n && r.tok[j].kind == MYL_OP && !strcmp(r.tok[j].op, ";");)
				j++;
			if (j < p.n && changes_lexing(text, r.tok, p.i, b)) {
				fail(&p, "a SET of sql_mode or the character set before other "
					 "statements "
					 "in one query");
				break;
			}
		}
		if (stmt(&p))
			break;
		k++;
	}
	myl_free(&r);
	if (p.err) {
		f->parse_error = 1;
		return -1;
	}
	(void)k;
	return 0;
}
