/* libFuzzer target for the PostgreSQL dialect (dialect.h, dialect_pg.c) on any text:
 * - every call leaves libpg_query's lexer settings as it found them (pglex.h);
 * - a text that does not depend on standard_conforming_strings (depends_on_settings 0) is cut
 *   and read alike under on and off (U&'...' aside, which the server refuses when off), and
 *   with the setting unsure it is judged as usual; one that depends is refused when unsure;
 * - the split and the grammar error agree: text split without error parses, text the grammar
 *   rejects gets the same error from both, its position within the text.
 * Seeds: fuzz/corpus/dialect/. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dialect.h"
#include "fuzz_require.h"
#include "pglex.h"
#include "sqlfacts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct dialect_split a, b;

static int same_split(void)
{
	if (a.n != b.n || a.parse_error != b.parse_error)
		return 0;
	for (int i = 0; i < a.n; i++)
		if (a.off[i] != b.off[i] || a.len[i] != b.len[i])
			return 0;
	return 1;
}

static int same_facts(const struct sqlfacts *x, const struct sqlfacts *y)
{
	if (x->kinds != y->kinds || x->parse_error != y->parse_error || x->nread != y->nread ||
	    x->nwritten != y->nwritten || x->nfunctions != y->nfunctions)
		return 0;
	for (int i = 0; i < x->nread; i++)
		if (strcmp(x->read[i], y->read[i]))
			return 0;
	for (int i = 0; i < x->nwritten; i++)
		if (strcmp(x->written[i], y->written[i]))
			return 0;
	return 1;
}

static int chars(const char *s, size_t n)
{
	int c = 0;

	for (size_t i = 0; i < n; i++)
		c += ((unsigned char)s[i] & 0xc0) != 0x80;
	return c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct dialect_settings on = {0}, off = {.pg_escape_strings = 1},
					      unsure = {.unsure = 1};
	const char *sql = (const char *)data;
	struct sqlfacts *f1, *f2;
	struct sql_error e1, e2;
	int dep, r;

	if (size > 2048)
		return 0;
	f1 = calloc(1, sizeof(*f1));
	f2 = calloc(1, sizeof(*f2));
	if (!f1 || !f2)
		goto out;
	dep = dialect_pg.depends_on_settings(sql, size);
	r = dialect_pg.split(&on, sql, size, &a, &e1);
	REQUIRE(standard_conforming_strings && escape_string_warning);
	REQUIRE(a.n >= 0 && a.n <= DIALECT_MAX_STMTS && (r == 0) == !a.parse_error);
	for (int i = 0; i < a.n; i++)
		REQUIRE(a.off[i] >= 0 && a.len[i] >= 0 && (size_t)(a.off[i] + a.len[i]) <= size);
	if (a.parse_error && e1.kind == SQL_ERR_GRAMMAR) {
		REQUIRE(dialect_pg.error(&on, sql, size, &e2) == 1);
		REQUIRE(!strcmp(e1.message, e2.message) && e1.position == e2.position);
		REQUIRE(e1.position >= 0 && e1.position <= chars(sql, size) + 1);
		REQUIRE(strlen(e1.sqlstate) == 5);
	} else if (!a.parse_error && !memchr(sql, '\0', size)) {
		REQUIRE(dialect_pg.error(&on, sql, size, &e2) == 0);
	}
	dialect_pg.split(&unsure, sql, size, &b, &e2);
	REQUIRE(standard_conforming_strings && escape_string_warning);
	if (dep)
		REQUIRE(b.parse_error && e2.kind == SQL_ERR_UNSURE);
	else
		REQUIRE(same_split());
	if (dep || memmem(sql, size, "&'", 2))
		goto out;
	dialect_pg.split(&off, sql, size, &b, &e2);
	REQUIRE(standard_conforming_strings && escape_string_warning);
	REQUIRE(same_split());
	if (size <= 512) {
		dialect_pg.facts(&on, sql, size, f1);
		dialect_pg.facts(&off, sql, size, f2);
		REQUIRE(standard_conforming_strings && escape_string_warning);
		REQUIRE(same_facts(f1, f2));
	}
out:
	free(f1);
	free(f2);
	return 0;
}
