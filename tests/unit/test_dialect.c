/*
 * The PostgreSQL dialect (dialect.h, dialect_pg.c): splitting as hoopd always split a Query,
 * every parse under the session's standard_conforming_strings (and never under the wrong one:
 * texts that read differently under the two values), and grammar errors exactly as a real
 * PostgreSQL 15 server words them (tests/unit/sqlerror.cases, recorded from one by
 * tests/unit/sqlerror_record.py).
 *
 * Usage: test_dialect tests/unit/sqlerror.cases
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dialect.h"
#include "grantkey.h"
#include "harness.h"
#include "maskplan.h"
#include "pglex.h"
#include "sqlfacts.h"
#include "sqlshape.h"
#include "sqlsize.h"

static const struct dialect_settings on = {0}, off = {.pg_escape_strings = 1},
				      unsure_on = {.unsure = 1},
				      unsure_off = {.pg_escape_strings = 1, .unsure = 1};

static struct dialect_split sp; /* 32 KiB: not on the stack */

static int split(const struct dialect_settings *ds, const char *sql, struct sql_error *e)
{
	return dialect_pg.split(ds, sql, strlen(sql), &sp, e);
}

static int stmt_is(int i, const char *sql, const char *want)
{
	return i < sp.n && (size_t)sp.len[i] == strlen(want) && !memcmp(sql + sp.off[i], want,
									   strlen(want));
}

/* the split pg.c had (split_sql), kept: statements without their leading blanks (\r too) or semicolon, the
 * last one running to the end, blank text none, text the grammar rejects one whole statement. */
static void test_split_as_hoopd_always_did(void)
{
	const char *s = " \r\n\tSELECT 1;\r\n  SELECT 2 ;\tSELECT 3";
	struct sql_error e;
	char *many;
	size_t o = 0;

	CHECK_EQ_INT(split(NULL, s, &e), 0);
	CHECK_EQ_INT(sp.n, 3);
	CHECK(stmt_is(0, s, "SELECT 1"));
	CHECK(stmt_is(1, s, "SELECT 2 "));
	CHECK(stmt_is(2, s, "SELECT 3"));
	CHECK_EQ_INT(e.kind, SQL_ERR_NONE);
	CHECK_EQ_INT(split(NULL, " ;\n; ", &e), 0);
	CHECK_EQ_INT(sp.n, 0);
	CHECK_EQ_INT(split(NULL, "", &e), 0);
	CHECK_EQ_INT(sp.n, 0);
	/* only comments: no statement the grammar finds, and no error: blank, as the server
	 * answers it (EmptyQueryResponse) */
	CHECK_EQ_INT(split(NULL, "-- hi", &e), 0);
	CHECK(sp.n == 0 && !sp.parse_error);
	CHECK_EQ_INT(split(NULL, "/* a /* b */ c */ ; -- d", &e), 0);
	CHECK(sp.n == 0 && !sp.parse_error);
	/* ...but an unterminated one is the grammar's error */
	CHECK_EQ_INT(split(NULL, "/* a /* b */", &e), -1);
	CHECK(sp.n == 1 && sp.parse_error && e.kind == SQL_ERR_GRAMMAR);
	s = "SELECT 1; SELEC 2";
	CHECK_EQ_INT(split(NULL, s, &e), -1);
	CHECK(sp.n == 1 && sp.parse_error && sp.len[0] == (int)strlen(s));
	CHECK_EQ_INT(e.kind, SQL_ERR_GRAMMAR);
	CHECK_STREQ(e.message, "syntax error at or near \"SELEC\"");
	CHECK_EQ_INT(e.position, 11);
	/* a NUL inside: refused, never cut short */
	CHECK_EQ_INT(dialect_pg.split(NULL, "SELECT 1\0; DROP TABLE t", 23, &sp, &e), -1);
	CHECK(sp.parse_error && sp.len[0] == 23);
	/* more statements than hoopd judges: one, whole */
	many = malloc((size_t)(DIALECT_MAX_STMTS + 1) * 10 + 1);
	if (!many)
		return;
	for (int i = 0; i <= DIALECT_MAX_STMTS; i++)
		o += (size_t)sprintf(many + o, "SELECT 1;");
	CHECK_EQ_INT(dialect_pg.split(NULL, many, o, &sp, &e), -1);
	CHECK(sp.n == 1 && sp.parse_error && (size_t)sp.len[0] == o);
	CHECK_EQ_INT(e.kind, SQL_ERR_LIMIT);
	CHECK_EQ_INT(dialect_pg.split(NULL, many, o - 9, &sp, &e), 0);
	CHECK_EQ_INT(sp.n, DIALECT_MAX_STMTS);
	free(many);
}

/* The adversary's texts: one meaning with standard strings, another with backslash escapes.
 * Each is judged under the setting given, never the other one. */
static void test_text_read_under_its_setting(void)
{
	static const char *hide = "SELECT 'a\\'; DROP TABLE x; --'";
	static const char *show = "SELECT 'a\\' || '; DROP TABLE x; --'";
	struct sqlfacts *f = calloc(1, sizeof(*f));
	struct sql_error e;

	if (!f)
		return;
	unit_where("%s", hide);
	CHECK_EQ_INT(split(&on, hide, &e), 0);
	CHECK(sp.n == 2 && stmt_is(1, hide, "DROP TABLE x"));
	CHECK_EQ_INT(split(&off, hide, &e), 0);
	CHECK(sp.n == 1 && stmt_is(0, hide, hide));
	CHECK_EQ_INT(dialect_pg.facts(&on, hide, strlen(hide), f), 0);
	CHECK(f->kinds & (1ULL << SK_DROP_TABLE));
	CHECK_EQ_INT(dialect_pg.facts(&off, hide, strlen(hide), f), 0);
	CHECK(f->kinds == 1ULL << SK_SELECT && !f->nwritten);
	unit_where("%s", show);
	CHECK_EQ_INT(split(&on, show, &e), 0);
	CHECK_EQ_INT(sp.n, 1);
	CHECK_EQ_INT(split(&off, show, &e), 0);
	CHECK(sp.n == 2 && stmt_is(1, show, "DROP TABLE x"));
	CHECK_EQ_INT(dialect_pg.facts(&off, show, strlen(show), f), 0);
	CHECK(f->kinds & (1ULL << SK_DROP_TABLE));
	CHECK_EQ_INT(dialect_pg.facts(&on, show, strlen(show), f), 0);
	CHECK(!(f->kinds & (1ULL << SK_DROP_TABLE)));
	/* the example: only with escapes is it one string */
	CHECK_EQ_INT(dialect_pg.facts(&on, "SELECT 'a\\\\b\\'cd'", 17, f), -1);
	CHECK_EQ_INT(dialect_pg.facts(&off, "SELECT 'a\\\\b\\'cd'", 17, f), 0);
	/* the setting is the call's: libpg_query's own is back to standard strings after */
	CHECK(standard_conforming_strings);
	CHECK(escape_string_warning);
	free(f);
}

/* What the setting changes (a backslash in a '...' or N'...' string) and what it does not. */
static void test_depends_on_settings(void)
{
	static const struct {
		const char *sql;
		int depends;
	} c[] = {
	    {"SELECT 1", 0},
	    {"SELECT 'a''b'", 0},
	    {"SELECT E'a\\'b'", 0},
	    {"SELECT $$a\\'b$$", 0},
	    {"SELECT \"a\\b\" FROM t", 0},
	    {"SELECT 1 -- it\\'s", 0},
	    {"SELECT 1 /* \\' */", 0},
	    {"SELECT B'01', X'0F'", 0},
	    {"SELECT U&'\\0041'", 0}, /* off: the server refuses U&'' (and so does hoop) */
	    {"SELECT 'a\\b'", 1},
	    {"SELECT '\\d+'", 1},
	    {"SELECT N'a\\'b'", 1},
	    {"SELECT 'a\\'; DROP TABLE x; --'", 1},
	    {"SELECT 'a\\' || '; DROP TABLE x; --'", 1},
	    {"SELECT 'a\\'b", 1},		  /* scans only with escapes */
	    {"SELECT '\\' -- '", 1},		  /* a string and a comment, or one string */
	    {"SELECT 'x'\n'y\\'", 1},		  /* a continued string */
	    {"SELECT 'unterminated\\", 0},	  /* neither scans: refused either way */
	};

	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		unit_where("%s", c[i].sql);
		CHECK_EQ_INT(dialect_pg.depends_on_settings(c[i].sql, strlen(c[i].sql)),
			     c[i].depends);
	}
}

/* Unsure (a statement in flight may have changed the setting): what reads differently is
 * refused by every function that would judge it, and what does not is judged as usual. */
static void test_unsure_refuses_what_depends(void)
{
	static const char *t = "SELECT 'a\\'; DROP TABLE x; --'";
	struct sqlfacts *f = calloc(1, sizeof(*f));
	struct maskplan mp;
	struct sql_error e;
	char key[GRANTKEY_LEN + 1], why[256];

	if (!f)
		return;
	for (int k = 0; k < 2; k++) {
		const struct dialect_settings *ds = k ? &unsure_off : &unsure_on;

		unit_where("unsure, %s", k ? "off" : "on");
		CHECK_EQ_INT(split(ds, t, &e), -1);
		CHECK(sp.n == 1 && sp.parse_error);
		CHECK_EQ_INT(e.kind, SQL_ERR_UNSURE);
		CHECK_EQ_INT(dialect_pg.facts(ds, t, strlen(t), f), -1);
		CHECK(f->parse_error && strstr(f->error, "standard_conforming_strings"));
		CHECK_EQ_INT(dialect_pg.plan(ds, t, strlen(t), NULL, NULL, NULL, 0, &mp), -1);
		CHECK(mp.all_unknown);
		maskplan_free(&mp);
		CHECK_EQ_INT(dialect_pg.fingerprint(ds, t, strlen(t), key, why, sizeof(why)), -1);
		CHECK_EQ_INT(split(ds, "SELECT 'plain', E'a\\'b'; SELECT 2", &e), 0);
		CHECK_EQ_INT(sp.n, 2);
	}
	free(f);
}

static void test_size_shape_names_fingerprint_follow_the_setting(void)
{
	static const char *t = "select '\\'' , 1+1+1+1 --'";
	struct sqlsize z, zo, zu;
	struct sqlshape sh;
	struct dialect_names ns;
	char k1[GRANTKEY_LEN + 1], k2[GRANTKEY_LEN + 1], why[256];
	const char *prep = "PREPARE p AS SELECT 'a\\'b'";

	/* with escapes the operators are code, not a string: counted */
	CHECK_EQ_INT(dialect_pg.size(&on, t, strlen(t), 1000, 1000, &z), 0);
	CHECK_EQ_INT(dialect_pg.size(&off, t, strlen(t), 1000, 1000, &zo), 0);
	CHECK(zo.tokens > z.tokens && zo.depth >= 3 && z.depth == 0);
	CHECK_EQ_INT(dialect_pg.size(&unsure_on, t, strlen(t), 1000, 1000, &zu), 0);
	CHECK(zu.tokens == zo.tokens && zu.depth == zo.depth);
	CHECK_EQ_INT(dialect_pg.size(&unsure_on, t, strlen(t), 1000, 2, &zu), 1);
	/* no shape with escapes (the shape cache's facts came from standard-strings parses) */
	CHECK_EQ_INT(dialect_pg.shape(&on, "SELECT 1 FROM t WHERE a = 5", 27, &sh), 0);
	CHECK_EQ_INT(dialect_pg.shape(&off, "SELECT 1 FROM t WHERE a = 5", 27, &sh), -1);
	/* names: PREPARE's body found by the scanner under the setting */
	CHECK_EQ_INT(dialect_pg.names(&off, prep, strlen(prep), &ns), 0);
	CHECK(ns.kind == DIALECT_NAME_PREPARE && !strcmp(ns.name, "p") && ns.body == 13);
	CHECK_EQ_INT(dialect_pg.names(&on, prep, strlen(prep), &ns), 0);
	CHECK_EQ_INT(ns.kind, DIALECT_NAME_NONE);
	CHECK_EQ_INT(dialect_pg.names(NULL, "close ALL", 9, &ns), 0);
	CHECK(ns.kind == DIALECT_NAME_CLOSE && !ns.name[0]);
	/* one tree, one key, whichever way its strings were written */
	CHECK_EQ_INT(dialect_pg.fingerprint(&off, "SELECT 'a\\'b' FROM t", 20, k1, why, sizeof(why)),
		     0);
	CHECK_EQ_INT(dialect_pg.fingerprint(&on, "SELECT 'a''b' FROM t", 20, k2, why, sizeof(why)),
		     0);
	CHECK_STREQ(k1, k2);
	CHECK_EQ_INT(dialect_pg.fingerprint(&on, "SELECT 'a\\'b' FROM t", 20, k2, why, sizeof(why)),
		     -1);
}

/* Every recorded answer of the real server, field by field. */
static int test_errors_as_the_server_says(const char *path)
{
	FILE *in = fopen(path, "re");
	char *line = NULL;
	size_t cap = 0;
	int lineno = 0, n = 0;

	unit_begin("grammar errors");
	if (!in) {
		unit_fail(__FILE__, __LINE__, "cannot open %s", path);
		unit_end();
		return 0;
	}
	unit_end();
	while (getline(&line, &cap, in) != -1) {
		json_object *o, *v;
		const char *sql, *scs;
		struct dialect_settings ds = {0};
		struct sql_error e;

		lineno++;
		if (line[0] == '#' || line[0] == '\n')
			continue;
		unit_begin("grammar errors");
		unit_where("%s:%d", path, lineno);
		o = json_tokener_parse(line);
		if (!o || !json_object_object_get_ex(o, "sql", &v) || !(sql = json_object_get_string(v)) ||
		    !json_object_object_get_ex(o, "standard_conforming_strings", &v) ||
		    !(scs = json_object_get_string(v))) {
			unit_fail(__FILE__, __LINE__, "malformed case");
			json_object_put(o);
			unit_end();
			continue;
		}
		ds.pg_escape_strings = !strcmp(scs, "off");
		memset(&e, 0, sizeof(e));
		CHECK_EQ_INT(dialect_pg.error(&ds, sql, strlen(sql), &e), 1);
		CHECK_EQ_INT(e.kind, SQL_ERR_GRAMMAR);
#define FIELD(k, got)                                                                              \
	if (json_object_object_get_ex(o, k, &v))                                                   \
		CHECK_STREQ(got, json_object_get_string(v));
		FIELD("sqlstate", e.sqlstate);
		FIELD("message", e.message);
		FIELD("detail", e.detail);
		FIELD("hint", e.hint);
#undef FIELD
		if (json_object_object_get_ex(o, "position", &v))
			CHECK_EQ_INT(e.position, json_object_get_int(v));
		/* a message the grammar rejects is never split, and says the same */
		{
			struct sql_error se;

			CHECK_EQ_INT(dialect_pg.split(&ds, sql, strlen(sql), &sp, &se), -1);
			CHECK(se.kind == SQL_ERR_GRAMMAR && !strcmp(se.message, e.message) &&
			      se.position == e.position && !strcmp(se.sqlstate, e.sqlstate));
		}
		json_object_put(o);
		unit_end();
		n++;
	}
	free(line);
	fclose(in);
	unit_begin("grammar errors");
	if (n < 20)
		unit_fail(__FILE__, __LINE__, "only %d case(s) in %s", n, path);
	unit_end();
	return n;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: test_dialect tests/unit/sqlerror.cases\n");
		return 2;
	}
	UNIT_RUN(test_split_as_hoopd_always_did);
	UNIT_RUN(test_text_read_under_its_setting);
	UNIT_RUN(test_depends_on_settings);
	UNIT_RUN(test_unsure_refuses_what_depends);
	UNIT_RUN(test_size_shape_names_fingerprint_follow_the_setting);
	fprintf(stderr, "%s: %d server answer(s) compared\n", argv[1],
		test_errors_as_the_server_says(argv[1]));
	return unit_report();
}
