/*
 * The PostgreSQL dialect (dialect.h) over libpg_query: splitting, facts (sqlfacts.c), masking
 * provenance (maskplan.c), shapes (sqlshape.c), the size pre-scan (sqlsize.c), grant
 * fingerprints (grantkey.c), named objects and grammar errors, each read under the session's
 * standard_conforming_strings (pglex.h). Pure: hoopd and hoopctl link the same code.
 */
#include "dialect.h"

#include <ctype.h>
#include <pg_query.h>
#include <pg_query/pg_query.pb-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "grantkey.h"
#include "maskplan.h"
#include "pglex.h"
#include "sqlfacts.h"
#include "sqlshape.h"
#include "sqlsize.h"

static const struct dialect_settings defaults;

static const struct dialect_settings *eff(const struct dialect_settings *ds)
{
	return ds ? ds : &defaults;
}

/* ---- settings: which texts read differently with standard_conforming_strings off ---- */

/* Does a scan under this setting find a '...' (or N'...') string with a backslash in it? Such
 * a string is the only thing the setting changes: E'...', U&'...', B'', X'', dollar quotes,
 * identifiers and comments lex alike either way. -1 when the text does not scan. */
static int plain_backslash(const char *text, int escape)
{
	struct pglex_saved sv;
	PgQueryScanResult sr;
	PgQuery__ScanResult *r = NULL;
	int found = 0;

	pglex_set(escape, &sv);
	sr = pg_query_scan(text);
	pglex_restore(&sv);
	if (sr.error) {
		pg_query_free_scan_result(sr);
		return -1;
	}
	r = pg_query__scan_result__unpack(NULL, sr.pbuf.len, (const uint8_t *)sr.pbuf.data);
	for (size_t i = 0; r && i < r->n_tokens && !found; i++) {
		const PgQuery__ScanToken *t = r->tokens[i];

		if (t->token != PG_QUERY__TOKEN__SCONST || t->start < 0 || t->end <= t->start ||
		    text[t->start] != '\'')
			continue;
		found = memchr(text + t->start, '\\', (size_t)(t->end - t->start)) != NULL;
	}
	if (!r)
		found = -1;
	else
		pg_query__scan_result__free_unpacked(r, NULL);
	pg_query_free_scan_result(sr);
	return found;
}

static int pg_depends_on_settings(const char *sql, size_t len)
{
	char *t;
	int on, off;

	if (!memchr(sql, '\\', len))
		return 0; /* nothing the setting changes */
	if (memchr(sql, '\0', len))
		return 0; /* refused whatever the setting (split, facts) */
	if (!(t = strndup(sql, len)))
		return 1; /* cannot tell: say it depends rather than guess */
	on = plain_backslash(t, 0);
	off = plain_backslash(t, 1);
	free(t);
	/* If neither scan sees a plain string with a backslash, both lex the text alike (and
	 * both fail alike when neither scans). */
	return on == 1 || off == 1;
}

/* Refuse text whose meaning the engine cannot pin down: 1 when so (and why is set). */
static int unsure_refusal(const struct dialect_settings *ds, const char *sql, size_t len,
			  char *why, size_t whyn)
{
	if (!ds->unsure || !pg_depends_on_settings(sql, len))
		return 0;
	snprintf(why, whyn, "its strings read differently with standard_conforming_strings on and "
			    "off, and a statement still running may change that setting");
	return 1;
}

/* ---- grammar errors, as the server reports them ---- */

/*
 * libpg_query gives the primary message, the position and the function that raised it; the
 * SQLSTATE, DETAIL and HINT are the server's for that message. The table holds every ereport of
 * PostgreSQL 15's scan.l, parser.c and gram.y (with the helpers it calls) whose answer is not a
 * bare syntax error (42601): any other message is one, which is what nearly all of them are.
 * Matched in order: by the raising function when given, and by a prefix, or a substring when
 * the entry starts with '*'. Each is checked against a real server in tests/unit/sqlerror.cases.
 *
 * An ereport gives its position apart from the message, so the message never says "at or near"
 * (only scanner_yyerror's do, and libpg_query words those as the server does). Where 15.18
 * words a message otherwise than libpg_query's 15.1 grammar, say replaces the matched prefix.
 */
static const struct {
	const char *func; /* NULL: any */
	const char *match;
	const char *sqlstate, *detail, *hint;
	const char *say; /* 15.18's words for the matched prefix (not with '*'); NULL: as given */
} pg_errors[] = {
	/* scan.l and parser.c */
	{NULL, "unsafe use of string constant with Unicode escapes", "0A000",
	 "String constants with Unicode escapes cannot be used when standard_conforming_strings "
	 "is off.",
	 NULL, NULL},
	{NULL, "unsafe use of \\' in a string literal", "22P06", NULL,
	 "Use '' to write quotes in strings. \\' is insecure in client-only encodings.", NULL},
	/* E'\u00' (scan.l) and U&'\00' (parser.c) say the same words with other codes */
	{"core_yylex", "invalid Unicode escape", "22025", NULL,
	 "Unicode escapes must be \\uXXXX or \\UXXXXXXXX.", NULL},
	{"str_udeescape", "invalid Unicode escape", "42601", NULL,
	 "Unicode escapes must be \\XXXX or \\+XXXXXX.", NULL},
	/* scan.l checks an escape string's bytes (E'\xff') with mbutils.c's pg_verifymbstr */
	{"report_invalid_encoding", "invalid byte sequence for encoding ", "22021", NULL, NULL,
	 NULL},

	/* gram.y: ERRCODE_FEATURE_NOT_SUPPORTED */
	{NULL, "UNENCRYPTED PASSWORD is no longer supported", "0A000", NULL,
	 "Remove UNENCRYPTED to store the password in encrypted form instead.", NULL},
	{NULL, "CREATE SCHEMA IF NOT EXISTS cannot include schema elements", "0A000", NULL, NULL,
	 NULL},
	{NULL, "current database cannot be changed", "0A000", NULL, NULL, NULL},
	{NULL, "MATCH PARTIAL not yet implemented", "0A000", NULL, NULL, NULL},
	{NULL, "a column list with SET ", "0A000", NULL, NULL, NULL},
	{NULL, "CREATE EXTENSION ... FROM is no longer supported", "0A000", NULL, NULL, NULL},
	{NULL, "CREATE OR REPLACE CONSTRAINT TRIGGER is not supported", "0A000", NULL, NULL, NULL},
	{NULL, "CREATE ASSERTION is not yet implemented", "0A000", NULL, NULL, NULL},
	{NULL, "aggregates cannot have output arguments", "0A000", NULL, NULL, NULL},
	{NULL, "WITH CHECK OPTION not supported on recursive views", "0A000", NULL, NULL, NULL},
	{NULL, "UNIQUE predicate is not yet implemented", "0A000", NULL, NULL, NULL},
	{"makeOrderedSetArgs", "an ordered-set aggregate with a VARIADIC direct argument ", "0A000",
	 NULL, NULL, NULL},
	/* 15.18 names the constraint ALTER CONSTRAINT alters: only a foreign key can be */
	{"processCASbits", "ALTER CONSTRAINT statement constraints cannot be marked ", "0A000",
	 NULL, NULL, "FOREIGN KEY constraints cannot be marked "},
	{"processCASbits", "* constraints cannot be marked ", "0A000", NULL, NULL, NULL},

	/* gram.y: other codes */
	{NULL, "column number must be in range from 1 to ", "22023", NULL, NULL, NULL},
	{NULL, "precision for type float must be ", "22023", NULL, NULL, NULL},
	{NULL, "modulus for hash partition provided more than once", "42710", NULL, NULL, NULL},
	{NULL, "remainder for hash partition provided more than once", "42710", NULL, NULL, NULL},
	{NULL, "role name \"", "42939", NULL, NULL, NULL},
	{NULL, "* cannot be used as a role name here", "42939", NULL, NULL, NULL},
	{NULL, "frame ", "42P20", NULL, NULL, NULL}, /* window frames: ERRCODE_WINDOWING_ERROR */

	/* gram.y: syntax errors with a hint or a detail */
	{NULL, "LIMIT #,# syntax is not supported", "42601", NULL,
	 "Use separate LIMIT and OFFSET clauses.", NULL},
	{NULL, "unrecognized row security option \"", "42601", NULL,
	 "Only PERMISSIVE or RESTRICTIVE policies are supported currently.", NULL},
	{NULL, "missing argument", "42601", NULL,
	 "Use NONE to denote the missing argument of a unary operator.", NULL},
	{NULL, "VALUES in FROM must have an alias", "42601", NULL,
	 "For example, FROM (VALUES ...) [AS] foo.", NULL},
	{NULL, "subquery in FROM must have an alias", "42601", NULL,
	 "For example, FROM (SELECT ...) [AS] foo.", NULL},
	{"preprocess_pubobj_list", "invalid publication object list", "42601",
	 "One of TABLE or TABLES IN SCHEMA must be specified before a standalone table or schema "
	 "name.",
	 NULL, NULL},

	/* gram.y: syntax errors 15.18 words otherwise */
	{"preprocess_pubobj_list", "invalid table name at or near", "42601", NULL, NULL,
	 "invalid table name"},
	{"preprocess_pubobj_list", "invalid schema name at or near", "42601", NULL, NULL,
	 "invalid schema name"},
	/* 15.18 reserves this option name (it spells NOT NULL in a deparsed XMLTABLE) */
	{NULL, "unrecognized column option \"__pg__is_not_null\"", "42601", NULL, NULL,
	 "option name \"__pg__is_not_null\" cannot be used in XMLTABLE"},
};

static int error_matches(size_t i, const char *func, const char *msg)
{
	const char *m = pg_errors[i].match;

	if (pg_errors[i].func && (!func || strcmp(func, pg_errors[i].func)))
		return 0;
	if (m[0] == '*')
		return strstr(msg, m + 1) != NULL;
	return !strncmp(msg, m, strlen(m));
}

static int utf8_chars(const char *s, size_t n)
{
	int c = 0;

	for (size_t i = 0; i < n; i++)
		c += ((unsigned char)s[i] & 0xc0) != 0x80;
	return c;
}

/* Byte offset of the 1-based character position pos in t (UTF-8), or -1. */
static long char_to_byte(const char *t, size_t n, int pos)
{
	int c = 0;

	for (size_t i = 0; i < n; i++)
		if (((unsigned char)t[i] & 0xc0) != 0x80 && ++c == pos)
			return (long)i;
	return -1;
}

static int ident_cont(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '$' || c >= 0x80;
}

/*
 * libpg_query 15-4.0.0 has PostgreSQL 15.1's scanner, which ends the junk after a number or a
 * parameter at its first letter ("123a"); servers since 15.x take the whole identifier
 * ("123abc"), as PostgreSQL 15.18 answers (tests/unit/sqlerror.cases). Say what they say.
 */
static void whole_junk(struct sql_error *err, const char *t, size_t n)
{
	static const char near[] = " at or near \"";
	char *q = strstr(err->message, near), *tok;
	size_t tl, end;
	long b;

	if (strncmp(err->message, "trailing junk after ", 20) || !q || !err->position)
		return;
	tok = q + sizeof(near) - 1;
	tl = strlen(tok);
	if (!tl || tok[tl - 1] != '"')
		return;
	tl--;
	/* only a junk rule ends at a letter; realfail's "1e+" ends at its sign, in both */
	if (!tl || !ident_cont((unsigned char)tok[tl - 1]) || isdigit((unsigned char)tok[tl - 1]))
		return;
	b = char_to_byte(t, n, err->position);
	if (b < 0 || (size_t)b + tl > n || memcmp(t + b, tok, tl))
		return;
	for (end = (size_t)b + tl; end < n && ident_cont((unsigned char)t[end]); end++)
		;
	snprintf(tok, sizeof(err->message) - (size_t)(tok - err->message), "%.*s\"",
		 (int)(end - (size_t)b), t + b);
}

static void fill_error(struct sql_error *err, const PgQueryError *pe)
{
	const size_t n = sizeof(pg_errors) / sizeof(pg_errors[0]);
	const char *msg = pe->message ? pe->message : "syntax error";
	size_t i;

	memset(err, 0, sizeof(*err));
	err->kind = SQL_ERR_GRAMMAR;
	err->position = pe->cursorpos > 0 ? pe->cursorpos : 0;
	for (i = 0; i < n && !error_matches(i, pe->funcname, msg); i++)
		;
	if (i == n) {
		snprintf(err->message, sizeof(err->message), "%s", msg);
		snprintf(err->sqlstate, sizeof(err->sqlstate), "42601");
		return;
	}
	if (pg_errors[i].say)
		snprintf(err->message, sizeof(err->message), "%s%s", pg_errors[i].say,
			 msg + strlen(pg_errors[i].match));
	else
		snprintf(err->message, sizeof(err->message), "%s", msg);
	snprintf(err->sqlstate, sizeof(err->sqlstate), "%s", pg_errors[i].sqlstate);
	if (pg_errors[i].detail)
		snprintf(err->detail, sizeof(err->detail), "%s", pg_errors[i].detail);
	if (pg_errors[i].hint)
		snprintf(err->hint, sizeof(err->hint), "%s", pg_errors[i].hint);
}

static void limit_error(struct sql_error *err, int kind, const char *sqlstate, const char *msg)
{
	if (!err)
		return;
	memset(err, 0, sizeof(*err));
	err->kind = kind;
	snprintf(err->sqlstate, sizeof(err->sqlstate), "%s", sqlstate);
	snprintf(err->message, sizeof(err->message), "%s", msg);
}

static int pg_error(const struct dialect_settings *ds, const char *sql, size_t len,
		    struct sql_error *err)
{
	struct pglex_saved sv;
	PgQueryParseResult r;
	char *t;
	int bad;

	ds = eff(ds);
	if (memchr(sql, '\0', len)) {
		/* the wire cannot carry it; the server says this of a NUL in a Query */
		limit_error(err, SQL_ERR_GRAMMAR, "42601", "syntax error");
		return 1;
	}
	if (!(t = strndup(sql, len))) {
		limit_error(err, SQL_ERR_LIMIT, "53200", "out of memory");
		return 1;
	}
	pglex_set(ds->pg_escape_strings, &sv);
	r = pg_query_parse(t);
	pglex_restore(&sv);
	bad = r.error != NULL;
	if (bad) {
		fill_error(err, r.error);
		whole_junk(err, t, len);
	}
	pg_query_free_parse_result(r);
	/* cursorpos counts characters of the text as libpg_query read it (UTF-8), as the
	 * server counts them in the session's encoding; both are UTF-8 here (encoding_safe). */
	if (bad && err->position > utf8_chars(t, len) + 1)
		err->position = utf8_chars(t, len) + 1;
	free(t);
	return bad;
}

/* ---- split ---- */

static void whole(struct dialect_split *out, size_t len)
{
	out->parse_error = 1;
	out->n = 1;
	out->off[0] = 0;
	out->len[0] = (int)len;
}

/*
 * Statements of a Query as PostgreSQL's grammar splits them; what it cannot split is one
 * statement marked parse_error (so the verdict can refuse it: nothing goes unjudged). If the
 * grammar cannot split it, the server rejects the whole Query before running any of it; it is
 * judged whole (the scanner's split drops pieces it does not understand).
 */
static int pg_split(const struct dialect_settings *ds, const char *sql, size_t len,
		    struct dialect_split *out, struct sql_error *err)
{
	struct pglex_saved sv;
	PgQuerySplitResult r;
	char why[256];
	char *t;

	ds = eff(ds);
	out->n = 0;
	out->parse_error = 0;
	if (err)
		memset(err, 0, sizeof(*err));
	if (memchr(sql, '\0', len) || !(t = strndup(sql, len))) {
		whole(out, len);
		limit_error(err, SQL_ERR_LIMIT, "54000", "the text cannot be split");
		return -1;
	}
	if (unsure_refusal(ds, sql, len, why, sizeof(why))) {
		free(t);
		whole(out, len);
		limit_error(err, SQL_ERR_UNSURE, "42601", why);
		return -1;
	}
	pglex_set(ds->pg_escape_strings, &sv);
	r = pg_query_split_with_parser(t);
	pglex_restore(&sv);
	/* No statement and no error (blanks, semicolons, comments): the server answers
	 * EmptyQueryResponse, and so the text is forwarded as blank. */
	if (r.error || r.n_stmts > DIALECT_MAX_STMTS) {
		whole(out, len);
		if (r.error && err)
			pg_error(ds, sql, len, err); /* the parser's error, as error() words it */
		else
			limit_error(err, SQL_ERR_LIMIT, "54000",
				    "more statements in one message than hoop judges");
	} else {
		for (int i = 0; i < r.n_stmts; i++) {
			int o = r.stmts[i]->stmt_location, l = r.stmts[i]->stmt_len;

			if (o < 0 || (size_t)o > len)
				continue;
			if (l == 0 || (size_t)(o + l) > len)
				l = (int)len - o; /* the last statement runs to the end */
			while (l > 0 && (sql[o] == ' ' || sql[o] == '\n' || sql[o] == '\t' ||
					 sql[o] == '\r')) {
				o++;
				l--;
			}
			out->off[out->n] = o;
			out->len[out->n] = l;
			out->n++;
		}
	}
	pg_query_free_split_result(r);
	free(t);
	return out->parse_error ? -1 : 0;
}

/* ---- facts, plan, shape, size, fingerprint: the modules, under the session's lexing ---- */

static int pg_facts(const struct dialect_settings *ds, const char *sql, size_t len,
		    struct sqlfacts *f)
{
	struct pglex_saved sv;
	int r;

	ds = eff(ds);
	if (unsure_refusal(ds, sql, len, f->error, sizeof(f->error))) {
		char why[sizeof(f->error)];

		memcpy(why, f->error, sizeof(why));
		memset(f, 0, sizeof(*f));
		f->parse_error = 1;
		memcpy(f->error, why, sizeof(why));
		return -1;
	}
	if (memchr(sql, '\0', len)) {
		memset(f, 0, sizeof(*f));
		f->parse_error = 1;
		snprintf(f->error, sizeof(f->error), "a NUL byte in the text");
		return -1;
	}
	pglex_set(ds->pg_escape_strings, &sv);
	r = sqlfacts_analyze(sql, len, f);
	pglex_restore(&sv);
	return r;
}

static int pg_plan(const struct dialect_settings *ds, const char *sql, size_t len,
		   const struct catalog *cat, const struct mask_policy *mp,
		   const char (*shadow)[64], int nshadow, struct maskplan *out)
{
	struct pglex_saved sv;
	char why[256];
	int r;

	ds = eff(ds);
	if (unsure_refusal(ds, sql, len, why, sizeof(why)) || memchr(sql, '\0', len)) {
		memset(out, 0, sizeof(*out));
		out->all_unknown = 1;
		out->reads_masked = 1;
		snprintf(out->error, sizeof(out->error), "%s",
			 memchr(sql, '\0', len) ? "a NUL byte in the text" : why);
		return -1;
	}
	pglex_set(ds->pg_escape_strings, &sv);
	r = maskplan_build_ex(sql, len, cat, mp, shadow, nshadow, out);
	pglex_restore(&sv);
	return r;
}

static int pg_shape(const struct dialect_settings *ds, const char *sql, size_t len,
		    struct sqlshape *out)
{
	/* A shape never holds a backslash in a string, so it reads alike under both settings;
	 * but with escape strings on the server refuses U&'...', which a shape may hold, and a
	 * shape's cached facts came from a parse that accepted it. No shape then: a parse. */
	if (eff(ds)->pg_escape_strings)
		return -1;
	return sqlshape(sql, len, out);
}

static int pg_size(const struct dialect_settings *ds, const char *sql, size_t len,
		   size_t max_tokens, size_t max_depth, struct sqlsize *out)
{
	struct sqlsize other;
	int r;

	ds = eff(ds);
	r = sqlsize_ex(sql, len, ds->pg_escape_strings, max_tokens, max_depth, out);
	if (!ds->unsure || r)
		return r;
	/* either setting may be the server's: the larger count of the two */
	r = sqlsize_ex(sql, len, !ds->pg_escape_strings, max_tokens, max_depth, &other);
	if (other.tokens > out->tokens)
		out->tokens = other.tokens;
	if (other.depth > out->depth)
		out->depth = other.depth;
	return r;
}

static int pg_fingerprint(const struct dialect_settings *ds, const char *sql, size_t len,
			  char *key, char *why, size_t whyn)
{
	struct pglex_saved sv;
	int r;

	ds = eff(ds);
	key[0] = '\0';
	if (unsure_refusal(ds, sql, len, why, whyn))
		return -1;
	pglex_set(ds->pg_escape_strings, &sv);
	r = grantkey_for(sql, len, key, why, whyn);
	pglex_restore(&sv);
	return r;
}

/* ---- named objects ---- */

/* Could this statement define, use or drop a name (PREPARE, EXECUTE, DEALLOCATE, DECLARE,
 * CLOSE, DISCARD)? Only "no" is sure: it starts with a word that is none of them (keywords are
 * ASCII, any case; quoting makes an identifier). */
static int may_name(const char *s, size_t n)
{
	static const char *const kw[] = {"prepare", "execute", "deallocate",
					 "declare", "close",   "discard"};
	size_t i = 0, w;

	while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
		i++;
	for (w = i; w < n && isalpha((unsigned char)s[w]) && !(s[w] & 0x80); w++)
		;
	if (w == i || (w < n && (isalnum((unsigned char)s[w]) || s[w] == '_' || s[w] == '$' ||
				 (s[w] & 0x80))))
		return 1; /* no plain word first (a comment, a parenthesis...): look closer */
	for (size_t k = 0; k < sizeof(kw) / sizeof(kw[0]); k++)
		if (w - i == strlen(kw[k]) && !strncasecmp(s + i, kw[k], w - i))
			return 1;
	return 0;
}

/* Where PREPARE's statement starts: after the first AS outside parentheses (tokens from
 * PostgreSQL's scanner). 0 when there is none. Called under the session's lexing. */
static size_t prepare_body(const char *sql)
{
	PgQueryScanResult sr = pg_query_scan(sql);
	PgQuery__ScanResult *r = NULL;
	size_t at = 0;
	int depth = 0;

	if (!sr.error)
		r = pg_query__scan_result__unpack(NULL, sr.pbuf.len, (const uint8_t *)sr.pbuf.data);
	for (size_t i = 2; r && i + 1 < r->n_tokens; i++) {
		if (r->tokens[i]->token == '(') {
			depth++;
		} else if (r->tokens[i]->token == ')') {
			depth--;
		} else if (!depth && r->tokens[i]->token == PG_QUERY__TOKEN__AS) {
			at = (size_t)r->tokens[i + 1]->start;
			break;
		}
	}
	if (r)
		pg_query__scan_result__free_unpacked(r, NULL);
	pg_query_free_scan_result(sr);
	return at;
}

static const char *node_names(const PgQuery__Node *n, const char *sql, struct dialect_names *ns)
{
	switch (n->node_case) {
	case PG_QUERY__NODE__NODE_PREPARE_STMT:
		ns->body = prepare_body(sql);
		if (!ns->body)
			return NULL;
		ns->kind = DIALECT_NAME_PREPARE;
		return n->prepare_stmt->name;
	case PG_QUERY__NODE__NODE_EXECUTE_STMT:
		ns->kind = DIALECT_NAME_EXECUTE;
		return n->execute_stmt->name;
	case PG_QUERY__NODE__NODE_DEALLOCATE_STMT:
		ns->kind = DIALECT_NAME_DEALLOCATE;
		return n->deallocate_stmt->name;
	case PG_QUERY__NODE__NODE_DECLARE_CURSOR_STMT:
		ns->kind = DIALECT_NAME_DECLARE;
		ns->holdable = !!(n->declare_cursor_stmt->options & 0x0020); /* CURSOR_OPT_HOLD */
		return n->declare_cursor_stmt->portalname;
	case PG_QUERY__NODE__NODE_CLOSE_PORTAL_STMT:
		ns->kind = DIALECT_NAME_CLOSE;
		return n->close_portal_stmt->portalname;
	case PG_QUERY__NODE__NODE_DISCARD_STMT:
		if (n->discard_stmt->target == PG_QUERY__DISCARD_MODE__DISCARD_ALL)
			ns->kind = DIALECT_NAME_DISCARD_ALL;
		return NULL;
	default:
		return NULL;
	}
}

/* What one statement does to the session's names, read from PostgreSQL's parse tree: names
 * are as the server resolves them (case folded, quoted, U&"..." decoded, truncated to 63). */
static int pg_names(const struct dialect_settings *ds, const char *stmt, size_t len,
		    struct dialect_names *ns)
{
	PgQueryProtobufParseResult pr;
	PgQuery__ParseResult *r = NULL;
	struct pglex_saved sv;
	const char *name = NULL;
	char *sql;

	ds = eff(ds);
	memset(ns, 0, sizeof(*ns));
	if (!may_name(stmt, len) || memchr(stmt, '\0', len) || !(sql = strndup(stmt, len)))
		return 0;
	pglex_set(ds->pg_escape_strings, &sv);
	pr = pg_query_parse_protobuf(sql);
	if (!pr.error)
		r = pg_query__parse_result__unpack(NULL, pr.parse_tree.len,
						   (const uint8_t *)pr.parse_tree.data);
	if (r && r->n_stmts == 1 && r->stmts[0]->stmt)
		name = node_names(r->stmts[0]->stmt, sql, ns);
	pglex_restore(&sv);
	snprintf(ns->name, sizeof(ns->name), "%s", name ? name : "");
	if (r)
		pg_query__parse_result__free_unpacked(r, NULL);
	pg_query_free_protobuf_parse_result(pr);
	free(sql);
	return 0;
}

const struct dialect dialect_pg = {
	.name = "postgresql",
	.split = pg_split,
	.facts = pg_facts,
	.plan = pg_plan,
	.shape = pg_shape,
	.fingerprint = pg_fingerprint,
	.size = pg_size,
	.error = pg_error,
	.names = pg_names,
	.may_name = may_name,
	.depends_on_settings = pg_depends_on_settings,
	.encoding_safe = sqlfacts_encoding_safe,
};
