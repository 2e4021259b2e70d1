/* libFuzzer target for the pre-parse bounds (sqlsize.c), checked against libpg_query itself:
 * on any text, sqlsize counts at least as many tokens as PostgreSQL's scanner finds, and its
 * depth estimate bounds the depth of the parse tree (JSON nesting of pg_query_parse's output,
 * at most SQLSIZE_FUZZ_RATIO levels per estimated level, over a fixed wrapping of two such
 * steps: RawStmt, SelectStmt, its target list, a Boolean expression's arguments and a typed
 * literal's TypeCast, TypeName and name list take 17 levels at estimated depth 0, as in
 * "select w1 and e '!'"): an under-count is how a costly or
 * stack-deep text would slip past limits.statement_tokens/_depth. With limits, it answers "over"
 * exactly when the full count is over one. Both with standard_conforming_strings on and off
 * (sqlsize_ex's escape, libpg_query's lexer setting: pglex.h). Seeds: fuzz/corpus/sqlsize/. */
#include <pg_query.h>
#include <pg_query/pg_query.pb-c.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_require.h"
#include "pglex.h"
#include "sqlsize.h"

#define SQLSIZE_FUZZ_RATIO 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t json_depth(const char *j)
{
	size_t d = 0, m = 0;
	int q = 0;

	for (; *j; j++) {
		if (q) {
			if (*j == '\\' && j[1])
				j++;
			else if (*j == '"')
				q = 0;
		} else if (*j == '"') {
			q = 1;
		} else if (*j == '{' || *j == '[') {
			if (++d > m)
				m = d;
		} else if (*j == '}' || *j == ']') {
			d--;
		}
	}
	return m;
}

static void check(const uint8_t *data, size_t size, const char *sql, int escape)
{
	struct sqlsize full, lim;
	struct pglex_saved sv;
	size_t t, d;

	REQUIRE(sqlsize_ex(sql, size, escape, SIZE_MAX, SIZE_MAX, &full) == 0);
	REQUIRE(full.tokens <= size);
	/* limits from the input's first bytes: the early stop agrees with the full count */
	t = size ? data[0] : 0;
	d = size > 1 ? data[1] % 32 : 0;
	REQUIRE(sqlsize_ex(sql, size, escape, t, d, &lim) == (full.tokens > t || full.depth > d));
	pglex_set(escape, &sv);
	{
		PgQueryScanResult sr = pg_query_scan(sql);

		if (!sr.error) {
			PgQuery__ScanResult *r = pg_query__scan_result__unpack(
			    NULL, sr.pbuf.len, (const uint8_t *)sr.pbuf.data);

			if (r) {
				if (full.tokens < r->n_tokens)
					fprintf(stderr, "sqlsize: %zu tokens, the scanner %zu (%s)\n",
						full.tokens, r->n_tokens, escape ? "off" : "on");
				REQUIRE(full.tokens >= r->n_tokens);
				pg_query__scan_result__free_unpacked(r, NULL);
			}
		}
		pg_query_free_scan_result(sr);
	}
	{
		PgQueryParseResult pr = pg_query_parse(sql);

		if (!pr.error && pr.parse_tree) {
			size_t jd = json_depth(pr.parse_tree);

			if (jd > SQLSIZE_FUZZ_RATIO * (full.depth + 2))
				fprintf(stderr, "sqlsize: depth %zu, the parse tree's JSON %zu (%s)\n",
					full.depth, jd, escape ? "off" : "on");
			REQUIRE(jd <= SQLSIZE_FUZZ_RATIO * (full.depth + 2));
		}
		pg_query_free_parse_result(pr);
	}
	pglex_restore(&sv);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *sql;

	if (size > 4096 || memchr(data, 0, size))
		return 0; /* libpg_query reads a C string */
	sql = malloc(size + 1);
	if (!sql)
		return 0;
	memcpy(sql, data, size);
	sql[size] = '\0';
	check(data, size, sql, 0);
	check(data, size, sql, 1);
	free(sql);
	return 0;
}
