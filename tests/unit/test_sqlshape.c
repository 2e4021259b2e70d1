/*
 * Statement shapes (user/hoopd/sql/sqlshape.c), which let hoopd keep a statement's policy facts and
 * masking plan and reuse them for the next statement of the same shape (stmtcache.h). What
 * must hold for that to be safe is checked here, not assumed:
 *
 * - the shaper accepts only what it lexes as PostgreSQL does, and refuses the forms it does
 *   not (comments, dollar quoting, escapes, several statements, exotic numbers): a table;
 * - for every statement of the corpora given on the command line (the policy rule cases, the
 *   masking provenance cases, the e2e exfiltration and legitimate queries) that has a shape,
 *   texts of the same shape with other constants (7 and 2.5, 2147483647 and 99999999999, 0
 *   and 0.0) have the same shape, the same facts from sqlfacts and the same provenance plan
 *   from maskplan (a plan marked const_sensitive excepted: hoopd does not keep those), and the
 *   statement's place in the text is where PostgreSQL's splitter puts it.
 *
 * Usage: test_sqlshape FILE...   (.cases: SQL after the first '|'; .sql: one statement a line)
 */
#include <pg_query.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "maskplan.h"
#include "maskplan_fixture.h"
#include "sqlfacts.h"
#include "sqlshape.h"
#include "sqlshape_check.h"

/* ---- the table ---- */

struct shape_case {
	const char *sql;
	const char *key; /* '#' stands for an Integer mark, '~' for a Float one; NULL: no shape */
};

static const struct shape_case cases[] = {
	{"SELECT abalance FROM pgbench_accounts WHERE aid = 41;",
	 "SELECT abalance FROM pgbench_accounts WHERE aid = #;"},
	{"UPDATE t SET a = a + -5 WHERE id = 0007", "UPDATE t SET a = a + -# WHERE id = #"},
	{"SELECT 2147483647, 2147483648, 1.5, 00000000002147483647",
	 "SELECT #, ~, ~, #"},
	{"SELECT 'it''s 42', \"col 7\", x1, $1, $12 FROM t", "SELECT 'it''s 42', \"col 7\", x1, $1, $12 FROM t"},
	{"  BEGIN;  \n", "  BEGIN;  \n"},
	{"SELECT a::numeric(10,2) FROM t", "SELECT a::numeric(#,#) FROM t"},
	{"SELECT arr[1:3] FROM t", "SELECT arr[#:#] FROM t"},
	{"select ü5 from t", "select ü5 from t"},
	/* no shape: */
	{"SELECT 1; SELECT 2", NULL},
	{"SELECT 1;;", NULL},
	{";SELECT 1", NULL},
	{"SELECT 1 -- 2", NULL},
	{"SELECT 1 /* 2 */", NULL},
	{"SELECT $$5$$", NULL},
	{"SELECT $a$5$a$", NULL},
	{"SELECT E'\\x41'", NULL},
	{"SELECT e'5'", NULL},
	{"SELECT '\\'", NULL},
	{"SELECT 1e5", NULL},
	{"SELECT .5", NULL},
	{"SELECT 5.", NULL},
	{"SELECT 1..2", NULL},
	{"SELECT 12abc", NULL},
	{"SELECT 0x1F", NULL},
	{"SELECT 1_000", NULL},
	{"SELECT $1abc", NULL},
	{"SELECT 'unterminated", NULL},
	{"SELECT \"unterminated", NULL},
	{"SELECT 1\f", NULL},
	{"SELECT \"a\x01\" FROM t WHERE id = 5", NULL},
	{"SELECT 'a\x02' FROM t WHERE id = 5", NULL},
	{"SELECT \\x", NULL},
	{"", NULL},
	{"   ", NULL},
};

static void test_table(void)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sqlshape sh;
		int r = sqlshape(cases[i].sql, strlen(cases[i].sql), &sh);

		snprintf(unit_state.where, sizeof(unit_state.where), "%s", cases[i].sql);
		if (!cases[i].key) {
			CHECK(r == -1);
			continue;
		}
		CHECK(r == 0);
		if (r)
			continue;
		for (size_t k = 0; k < sh.klen; k++)
			if (sh.key[k] == SQLSHAPE_INT)
				sh.key[k] = '#';
			else if (sh.key[k] == SQLSHAPE_FLOAT)
				sh.key[k] = '~';
		CHECK(sh.klen == strlen(cases[i].key) && !memcmp(sh.key, cases[i].key, sh.klen));
	}
}

/* ---- the corpora ---- */

static int g_shaped, g_sensitive, g_split_checked;

static void check_statement(const char *sql)
{
	static const char *const iv[] = {"7", "2147483647", "0"};
	static const char *const fv[] = {"2.5", "99999999999", "0.0"};
	size_t len = strlen(sql), off, slen;
	struct sqlshape sh;
	struct sqlfacts *fa, *fb;
	struct maskplan pa, pb;

	if (sqlshape(sql, len, &sh))
		return;
	g_shaped++;
	if (!split_one(sql, len, &off, &slen)) {
		g_split_checked++;
		CHECK(off == sh.off && slen == sh.len);
	}
	fa = calloc(1, sizeof(*fa));
	fb = calloc(1, sizeof(*fb));
	if (!fa || !fb) {
		CHECK(!"out of memory");
		free(fa);
		free(fb);
		return;
	}
	sqlfacts_analyze(sql, len, fa);
	memset(&pa, 0, sizeof(pa));
	maskplan_build(sql, len, cat, &pol, &pa);
	if (pa.const_sensitive)
		g_sensitive++;
	for (size_t v = 0; v < sizeof(iv) / sizeof(iv[0]); v++) {
		char *o = variant(sql, len, iv[v], fv[v]);
		struct sqlshape sv;

		CHECK(o != NULL);
		if (!o)
			continue;
		snprintf(unit_state.where, sizeof(unit_state.where), "%.200s  /  %.200s", sql, o);
		CHECK(!sqlshape(o, strlen(o), &sv) && sv.klen == sh.klen &&
		      !memcmp(sv.key, sh.key, sh.klen));
		memset(fb, 0, sizeof(*fb));
		sqlfacts_analyze(o, strlen(o), fb);
		CHECK(same_facts(fa, fb));
		if (!pa.const_sensitive) {
			memset(&pb, 0, sizeof(pb));
			maskplan_build(o, strlen(o), cat, &pol, &pb);
			CHECK(same_plan(&pa, &pb));
			maskplan_free(&pb);
		}
		free(o);
	}
	maskplan_free(&pa);
	free(fa);
	free(fb);
}

static void run_file(const char *path)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int lineno = 0, sqlfile = strlen(path) > 4 && !strcmp(path + strlen(path) - 4, ".sql");

	if (!f) {
		fprintf(stderr, "test_sqlshape: cannot open %s\n", path);
		CHECK(!"corpus file missing");
		return;
	}
	while ((n = getline(&line, &cap, f)) > 0) {
		char *sql = line;

		lineno++;
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (!n || line[0] == '#' || !strncmp(line, "--", 2) || strstr(line, "{{"))
			continue;
		if (!sqlfile) {
			char *bar = strchr(line, '|');

			if (!bar)
				continue;
			for (sql = bar + 1; *sql == ' '; sql++)
				;
		}
		snprintf(unit_state.where, sizeof(unit_state.where), "%s:%d", path, lineno);
		check_statement(sql);
	}
	free(line);
	fclose(f);
}

int main(int argc, char **argv)
{
	build_policy();
	build_catalog();
	UNIT_RUN(test_table);
	unit_begin("corpora");
	for (int i = 1; i < argc; i++)
		run_file(argv[i]);
	/* the corpora hold hundreds of shaped statements; far fewer means the shaper (or this
	 * test's reading of the files) stopped accepting them and proved nothing */
	printf("test_sqlshape: %d statements with a shape (%d split-checked, %d const-sensitive "
	       "plans)\n",
	       g_shaped, g_split_checked, g_sensitive);
	CHECK(g_shaped >= 400 && g_split_checked >= 300 && g_sensitive >= 1);
	unit_end();
	return unit_report();
}
