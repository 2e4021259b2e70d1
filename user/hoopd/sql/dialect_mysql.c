/*
 * The MySQL/MariaDB dialect (dialect.h) over mysqllex (the server-exact lexer) and mysqlclass
 * (the fail-closed classifier). The engine (engines/mysql/) reads the session's settings from
 * the server and passes them in struct dialect_settings; hoopctl policy test --protocol mysql
 * passes what its options say. Pure: no session, no daemon state.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dialect.h"
#include "maskplan.h"
#include "mysqlclass.h"
#include "mysqllex.h"
#include "sqlfacts.h"
#include "sqlsize.h"

/* The lexer's settings from the dialect's (NULL: MariaDB 10.11's defaults). */
static void lex_settings(const struct dialect_settings *ds, struct myl_settings *st)
{
	memset(st, 0, sizeof(*st));
	if (!ds) {
		st->mariadb = 1;
		st->version = 101106;
		return;
	}
	st->ansi_quotes = ds->my_ansi_quotes;
	st->no_backslash_escapes = ds->my_no_backslash_escapes;
	st->unread_mode = ds->my_unread_mode;
	st->mariadb = ds->my_mariadb;
	st->version = ds->my_version;
	st->unsafe_charset = ds->my_unsafe_charset;
}

static void unsure_error(struct sql_error *err)
{
	if (!err)
		return;
	memset(err, 0, sizeof(*err));
	err->kind = SQL_ERR_UNSURE;
	memcpy(err->sqlstate, "42000", 6);
	snprintf(err->message, sizeof(err->message),
		 "the session's sql_mode may have changed and is not known yet");
}

void mysql_dialect_settings(const struct myl_settings *st, int unsure, struct dialect_settings *ds)
{
	memset(ds, 0, sizeof(*ds));
	ds->my_ansi_quotes = st->ansi_quotes;
	ds->my_no_backslash_escapes = st->no_backslash_escapes;
	ds->my_unread_mode = st->unread_mode;
	ds->my_mariadb = st->mariadb;
	ds->my_version = st->version;
	ds->my_unsafe_charset = st->unsafe_charset;
	ds->unsure = unsure;
}

static int my_dsplit(const struct dialect_settings *ds, const char *sql, size_t len,
		     struct dialect_split *out, struct sql_error *err)
{
	struct myl_settings st;
	struct mysql_split *sp;
	char why[200] = "";

	if (err)
		memset(err, 0, sizeof(*err));
	out->n = 0;
	out->parse_error = 0;
	if (ds && ds->unsure) {
		unsure_error(err);
		goto whole;
	}
	if (!(sp = malloc(sizeof(*sp)))) {
		if (err) {
			err->kind = SQL_ERR_LIMIT;
			memcpy(err->sqlstate, "53200", 6);
			snprintf(err->message, sizeof(err->message), "out of memory");
		}
		goto whole;
	}
	lex_settings(ds, &st);
	if (mysql_split(&st, sql, len, sp, why, sizeof(why)) || sp->n > DIALECT_MAX_STMTS) {
		free(sp);
		if (err) {
			/* hoop's refusal to read the text (the lexer, a compound statement, ';'
			 * inside an executable comment), not the server's own grammar error */
			err->kind = SQL_ERR_LIMIT;
			memcpy(err->sqlstate, "42000", 6);
			snprintf(err->message, sizeof(err->message), "%s",
				 why[0] ? why : "more statements than hoop reads in one query");
		}
		goto whole;
	}
	out->n = sp->n;
	for (int i = 0; i < sp->n; i++) {
		out->off[i] = (int)sp->off[i];
		out->len[i] = (int)sp->len[i];
	}
	free(sp);
	return 0;
whole:
	out->parse_error = 1;
	out->n = 1;
	out->off[0] = 0;
	out->len[0] = (int)len;
	return -1;
}

static int my_dfacts(const struct dialect_settings *ds, const char *sql, size_t len,
		     struct sqlfacts *f)
{
	struct myl_settings st;

	if (ds && ds->unsure) {
		memset(f, 0, sizeof(*f));
		f->parse_error = 1;
		snprintf(f->error, sizeof(f->error),
			 "the session's sql_mode may have changed and is not known yet");
		return -1;
	}
	lex_settings(ds, &st);
	return mysql_facts(&st, sql, len, f);
}

/* Provenance from the text is not read for MySQL: the engine masks by the server's column
 * metadata (and everything it cannot trust by unknown_style). */
static int my_dplan(const struct dialect_settings *ds, const char *sql, size_t len,
		    const struct catalog *cat, const struct mask_policy *mp,
		    const char (*shadow)[64], int nshadow, struct maskplan *out)
{
	(void)ds, (void)sql, (void)len, (void)cat, (void)mp, (void)shadow, (void)nshadow;
	memset(out, 0, sizeof(*out));
	out->all_unknown = 1;
	return -1;
}

/* Tokens, and the deepest nesting of parentheses, from the server-exact lexer: a text the
 * lexer refuses counts as over (it is refused anyway). */
static int my_dsize(const struct dialect_settings *ds, const char *sql, size_t len,
		    size_t max_tokens, size_t max_depth, struct sqlsize *out)
{
	struct myl_settings st;
	struct myl_result r;
	size_t depth = 0;
	int over;

	memset(out, 0, sizeof(*out));
	lex_settings(ds, &st);
	if (myl_lex(&st, sql, len, &r)) {
		myl_free(&r);
		out->tokens = max_tokens + 1;
		return 1;
	}
	out->tokens = r.n;
	for (size_t k = 0; k < r.n; k++) {
		if (r.tok[k].kind != MYL_OP)
			continue;
		if (!strcmp(r.tok[k].op, "(") && ++depth > out->depth)
			out->depth = depth;
		else if (!strcmp(r.tok[k].op, ")") && depth)
			depth--;
	}
	myl_free(&r);
	over = out->tokens > max_tokens || out->depth > max_depth;
	return over;
}

/* ANSI_QUOTES turns "..." from a string into a name; NO_BACKSLASH_ESCAPES makes a backslash
 * in a string an ordinary byte: a text with neither byte reads the same under every value. */
static int my_ddepends(const char *sql, size_t len)
{
	return memchr(sql, '"', len) || memchr(sql, '\\', len);
}

static int my_dencoding_safe(const char *name)
{
	return !myl_charset_unsafe(name);
}

const struct dialect dialect_mysql = {
	.name = "mysql",
	.split = my_dsplit,
	.facts = my_dfacts,
	.plan = my_dplan,
	.size = my_dsize,
	.depends_on_settings = my_ddepends,
	.encoding_safe = my_dencoding_safe,
};
