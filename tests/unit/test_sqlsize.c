/* Unit tests for the pre-parse bounds (sqlsize.c): token counts and depth estimates of texts
 * whose cost to libpg_query is known, the constructs that hide text from a naive count
 * (strings, E'' escapes, dollar quotes, quoted identifiers, nested comments), and the limits.
 * fuzz/fuzz_sqlsize.c checks the same against libpg_query's own scanner and tree. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "sqlsize.h"

struct sz_case {
	const char *sql;
	size_t tokens, depth;
};

static const struct sz_case cases[] = {
    {"select 1", 2, 0},
    {"select 1,1,1", 6, 0},
    {"select 1+1+1+1", 8, 3},
    {"select (1+1)", 6, 2},
    {"select 1 is null is null", 6, 2},
    {"select not not not x", 5, 3},
    {"select x::int::text", 6, 2},
    {"select -+-1", 5, 3},
    {"select 'a''b, c+d' as x", 4, 0},
    {"select E'\\'' + 1", 5, 1},
    {"select $$ 1+1+1, ( $$", 2, 0},
    {"select $q$ $$ 1+1 $$ $q$ + 1", 4, 1},
    {"select \"a\"\"+b\"", 2, 0},
    {"select 1 /* a /* + */ + */ + 2", 5, 1},
    {"select 1 -- + + +\r+ 2", 5, 1},
    {"select case when a then 1 end", 7, 1},
    {"select 1e-5, 1abc", 5, 0},
    {"select $1 + $2", 4, 1},
    {"select a from t join u on true join v on true", 12, 2},
    {"select 1 union select 2 union select 3", 8, 2},
};

static void test_counts(void)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sqlsize z;

		unit_where("%s", cases[i].sql);
		CHECK_EQ_INT(sqlsize(cases[i].sql, strlen(cases[i].sql), 1000, 1000, &z), 0);
		CHECK_EQ_INT(z.tokens, cases[i].tokens);
		CHECK_EQ_INT(z.depth, cases[i].depth);
	}
}

/* What cost hoopd seconds or its stack before the limits: each is refused by one of them. */
static void test_costly_texts_are_over(void)
{
	size_t n = 1 << 20, o;
	char *s = malloc(n + 16);
	struct sqlsize z;

	if (!s)
		return;
	o = (size_t)sprintf(s, "select ");
	while (o < n - 2)
		o += (size_t)sprintf(s + o, "1,");
	unit_where("a megabyte of small tokens");
	CHECK_EQ_INT(sqlsize(s, o, 30000, 1000, &z), 1);
	CHECK(z.tokens > 30000 && z.depth <= 1000);
	o = (size_t)sprintf(s, "select ");
	while (o < 100000)
		o += (size_t)sprintf(s + o, "a.b+c*d-");
	unit_where("a chain of binary operators");
	CHECK_EQ_INT(sqlsize(s, o, 1 << 30, 1000, &z), 1);
	CHECK(z.depth > 1000);
	o = (size_t)sprintf(s, "select ");
	for (int i = 0; i < 2000; i++)
		o += (size_t)sprintf(s + o, "(");
	unit_where("2000 parentheses");
	CHECK_EQ_INT(sqlsize(s, o, 1 << 30, 1000, &z), 1);
	o = (size_t)sprintf(s, "select '");
	memset(s + o, 'x', n - o - 2);
	o = n - 2;
	s[o++] = '\'';
	unit_where("a megabyte in one literal");
	CHECK_EQ_INT(sqlsize(s, o, 30000, 1000, &z), 0);
	CHECK_EQ_INT(z.tokens, 2);
	unit_where("an unterminated string hides nothing it should not");
	CHECK_EQ_INT(sqlsize("select 'abc", 11, 1000, 1000, &z), 0);
	CHECK_EQ_INT(z.tokens, 2);
	free(s);
}

/* With standard_conforming_strings off '...' takes backslash escapes (sqlsize_ex): what a
 * standard-strings count would hide inside a string is code then, and counted. B'' and X''
 * end at their next quote either way (a doubled quote is no quote in them). A string's
 * continuation (a newline, then a quote) keeps the mode of its first part. */
static void test_escape_strings(void)
{
	static const struct {
		const char *sql;
		size_t on_tokens, off_tokens, off_depth;
	} c[] = {
	    {"select '\\'' , 1+1+1 --'", 2, 9, 2},
	    {"select 'a\\' || ' , 1+1 --'", 5, 7, 1},
	    {"select N'\\'' , 1+1", 3, 7, 1},
	    {"select E'\\'' , 1", 5, 5, 0},
	    {"select x'''' , 1", 6, 6, 0},
	    {"select b'01''x' , 1", 6, 6, 0},
	    /* a newline and a quote continue a string in its mode (scan.l's xqs) */
	    {"select E'\\''\n'\\'' , 1+1", 7, 7, 1},
	    {"select e'x' \n '\\' , 1+1 --'", 3, 3, 0},
	    {"select x'ab' \f\r \n'cd''+1'", 4, 4, 0},
	    {"select 'a' -- c\n'b''+1'", 4, 4, 0}, /* a comment ends it (libpg_query) */
	};

	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		struct sqlsize z;

		unit_where("%s", c[i].sql);
		CHECK_EQ_INT(sqlsize_ex(c[i].sql, strlen(c[i].sql), 0, 1000, 1000, &z), 0);
		CHECK_EQ_INT(z.tokens, c[i].on_tokens);
		CHECK_EQ_INT(sqlsize_ex(c[i].sql, strlen(c[i].sql), 1, 1000, 1000, &z), 0);
		CHECK_EQ_INT(z.tokens, c[i].off_tokens);
		CHECK_EQ_INT(z.depth, c[i].off_depth);
	}
}

int main(void)
{
	UNIT_RUN(test_escape_strings);
	UNIT_RUN(test_counts);
	UNIT_RUN(test_costly_texts_are_over);
	return unit_report();
}
