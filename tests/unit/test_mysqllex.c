/* Unit tests for the MySQL/MariaDB lexer (user/hoopd/sql/mysqllex.c): each text's tokens as the
 * server cuts them, written "K:text" (I name or keyword, Q quoted name, S string, H hex, B bit,
 * N number, V user variable, Y system variable, P placeholder, O operator), or the refusal.
 * The settings that change lexing (sql_mode's ANSI_QUOTES and NO_BACKSLASH_ESCAPES, the
 * server's version and kind for executable comments, the client character set) each have
 * cases. fuzz/fuzz_mysqllex.c checks the lexer's invariants on any input. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "mysqllex.h"

#define MARIA	  1
#define ANSI	  2
#define NOBS	  4
#define MYSQL80	  8
#define NOVERSION 16

struct lcase {
	int flags;
	const char *text;
	const char *want; /* tokens, or "ERR" */
};

static const struct lcase cases[] = {
    /* plain statements */
    {MARIA, "select 1", "I:select N:1"},
    {MARIA, "SELECT a,b FROM t WHERE x<=>y;",
     "I:SELECT I:a O:, I:b I:FROM I:t I:WHERE I:x O:<=> I:y O:;"},
    {MARIA, "select `a``b`, `t`.`c` from `d`.`t`",
     "I:select Q:`a``b` O:, Q:`t` O:. Q:`c` I:from Q:`d` O:. Q:`t`"},
    {MARIA, "select t.1a, t.5 from t", "I:select I:t O:. I:1a O:, I:t O:. I:5 I:from I:t"},
    {MARIA, "select .5, 1.5e3, 1e5, 1e+5, 12., 0x1F, 0b101, 0xZZ, 1abc",
     "I:select N:.5 O:, N:1.5e3 O:, N:1e5 O:, N:1e+5 O:, N:12. O:, H:0x1F O:, B:0b101 O:, I:0xZZ "
     "O:, I:1abc"},
    {MARIA, "select 1e5x", "ERR"},
    {MARIA, "select 1.5x", "ERR"},
    {MARIA, "select X'4a', b'01', N'abc', _utf8mb4'x', _latin1\"y\"",
     "I:select H:X'4a' O:, B:b'01' O:, S:N'abc' O:, S:_utf8mb4'x' O:, S:_latin1\"y\""},
    {MARIA, "select X'4g'", "ERR"},
    {MARIA, "select @a, @'b c', @`d`, @@version, @@session.sql_mode, ?",
     "I:select V:@a O:, V:@'b c' O:, V:@`d` O:, Y:@@version O:, Y:@@session.sql_mode O:, P:?"},
    {MARIA, "select a->'$.x', a->>'$.y', a:=1, a||b, a&&b, 1<<2, 3!=4, 5<>6",
     "I:select I:a O:-> S:'$.x' O:, I:a O:->> S:'$.y' O:, I:a O::= N:1 O:, I:a O:|| I:b O:, "
     "I:a O:&& I:b O:, N:1 O:<< N:2 O:, N:3 O:!= N:4 O:, N:5 O:<> N:6"},
    /* strings: doubled quotes, backslashes, and sql_mode */
    {MARIA, "select 'a''b', 'c\\'d', \"e\"\"f\"",
     "I:select S:'a''b' O:, S:'c\\'d' O:, S:\"e\"\"f\""},
    {MARIA, "select 'a\\' from patients -- '", "I:select S:'a\\' from patients -- '"},
    {MARIA | NOBS, "select 'a\\' from patients -- '", "I:select S:'a\\' I:from I:patients"},
    {MARIA, "select \"a\" from t", "I:select S:\"a\" I:from I:t"},
    {MARIA | ANSI, "select \"a\" from t", "I:select Q:\"a\" I:from I:t"},
    {MARIA | ANSI, "select \"a\"\"b\" from t", "I:select Q:\"a\"\"b\" I:from I:t"},
    {MARIA, "select 'abc", "ERR"},
    {MARIA, "select `abc", "ERR"},
    /* comments */
    {MARIA, "select 1 # a comment ; select 2\n, 3", "I:select N:1 O:, N:3"},
    {MARIA, "select 1 -- a comment\n, 2", "I:select N:1 O:, N:2"},
    {MARIA, "select 1 --\t\n, 2", "I:select N:1 O:, N:2"},
    {MARIA, "select 1 --", "I:select N:1"},
    {MARIA, "select 1--2", "I:select N:1 O:- O:- N:2"},
    {MARIA, "select 1 /* x */ , /**/ 2", "I:select N:1 O:, N:2"},
    {MARIA, "select 1 /* x /* y */ */", "ERR"},
    {MARIA, "select 1 /* x", "ERR"},
    {MARIA, "select /*+ no_index(t) */ a from t", "I:select I:a I:from I:t"},
    /* executable comments: the content is read */
    {MARIA, "select * from visits /*!, patients */", "I:select O:* I:from I:visits O:, I:patients"},
    {MARIA, "select 1 /*!50100 , ssn */ from patients", "I:select N:1 O:, I:ssn I:from I:patients"},
    {MARIA, "select 1 /*!999999 , ssn */ from patients", "I:select N:1 I:from I:patients"},
    /* MariaDB skips MySQL 5.7+ versions unless marked M */
    {MARIA, "select 1 /*!80000 , ssn */ from patients", "I:select N:1 I:from I:patients"},
    {MARIA, "select 1 /*M!80000 , ssn */ from patients",
     "I:select N:1 O:, I:ssn I:from I:patients"},
    {MARIA, "select 1 /*M!100100 , ssn */ from patients",
     "I:select N:1 O:, I:ssn I:from I:patients"},
    {MARIA, "select 1 /*M!110000 , ssn */ from patients", "I:select N:1 I:from I:patients"},
    /* MySQL: runs 5.7+ versions; slash-star-M-bang is a plain comment there */
    {MYSQL80, "select 1 /*!80000 , ssn */ from patients",
     "I:select N:1 O:, I:ssn I:from I:patients"},
    {MYSQL80, "select 1 /*M!80000 , ssn */ from patients", "I:select N:1 I:from I:patients"},
    {MYSQL80, "select 1 /*!800000 , ssn */ from patients", "ERR"},
    {MARIA | NOVERSION, "select 1 /*!50100 , ssn */ from patients", "ERR"},
    {MARIA | NOVERSION, "select 1 /*! , ssn */ from patients",
     "I:select N:1 O:, I:ssn I:from I:patients"},
    {MARIA, "select 1 /*! , '*/' */ from t", "I:select N:1 O:, S:'*/' I:from I:t"},
    {MARIA, "select 1 /*! # a */ , ssn */ from t", "ERR"},
    {MARIA, "select 1 /*! # a */\n , ssn */ from t", "I:select N:1 O:, I:ssn I:from I:t"},
    {MARIA, "select 1 /*! /* x */ */", "ERR"},
    {MARIA, "select 1 /*! /*!50000 x */ */", "ERR"},
    {MARIA, "select 1 /*!50000 x /* y */ */", "ERR"},
    {MARIA, "select 1 /*!99999 x /* y */ */", "ERR"},
    {MARIA, "select 1 /*! x", "ERR"},
    {MARIA, "select 1 */", "I:select N:1 O:* O:/"},
    /* under ANSI_QUOTES @"..." is a quoted name: no escapes (the server's reading) */
    {MARIA | ANSI, "select @\"\\\" as x, (select 1) as \" -- \"",
     "I:select V:@\"\\\" I:as I:x O:, O:( I:select N:1 O:) I:as Q:\" -- \""},
    {MARIA, "select @\"\\\" as x\"", "I:select V:@\"\\\" as x\""},
    /* after a quoted name ".5" is a number; after an unquoted one a name */
    {MARIA, "select `t`.5", "I:select Q:`t` N:.5"},
    {MARIA, "select @@ version", "ERR"},
    /* refused outright */
    {MARIA, "select \\N", "ERR"},
    {MARIA, "select 1\x01", "ERR"},
    {0, NULL, NULL},
};

static char kind_letter(enum myl_kind k)
{
	static const char l[] = "?IQSHBNVYPO";

	return (unsigned)k < sizeof(l) - 1 ? l[k] : '?';
}

static void render(const char *text, const struct myl_result *r, char *out, size_t n)
{
	size_t o = 0;

	out[0] = '\0';
	for (size_t i = 0; i < r->n && o + 8 < n; i++) {
		const struct myl_token *t = &r->tok[i];
		int w = snprintf(out + o, n - o, "%s%c:%.*s", i ? " " : "", kind_letter(t->kind),
				 (int)t->len, text + t->off);

		if (w < 0)
			break;
		o += (size_t)w;
	}
}

static void test_cases(void)
{
	char got[2048];

	for (const struct lcase *c = cases; c->text; c++) {
		struct myl_settings st = {.mariadb = !!(c->flags & MARIA),
					  .ansi_quotes = !!(c->flags & ANSI),
					  .no_backslash_escapes = !!(c->flags & NOBS),
					  .version = c->flags & NOVERSION ? 0
						     : c->flags & MYSQL80 ? 80036
									  : 101106};
		struct myl_result r;
		int rc = myl_lex(&st, c->text, strlen(c->text), &r);

		unit_where("%s", c->text);
		if (!strcmp(c->want, "ERR")) {
			render(c->text, &r, got, sizeof(got));
			if (rc == 0)
				unit_fail(__FILE__, __LINE__, "lexed, not refused: %s", got);
			CHECK(r.error && r.why[0]);
		} else {
			if (rc) {
				unit_fail(__FILE__, __LINE__, "refused: %s (at %zu)", r.why, r.at);
			} else {
				render(c->text, &r, got, sizeof(got));
				CHECK_STREQ(got, c->want);
				CHECK(r.tok[r.n].kind == MYL_END);
			}
		}
		myl_free(&r);
	}
}

static void test_settings(void)
{
	struct myl_settings st = {.mariadb = 1, .version = 101106, .unsafe_charset = 1};
	struct myl_result r;

	CHECK_EQ_INT(myl_lex(&st, "select 1", 8, &r), -1);
	CHECK(r.error);
	myl_free(&r);
	CHECK(myl_charset_unsafe("latin1"));
	CHECK(myl_charset_unsafe("latin1_swedish_ci"));
	CHECK(myl_charset_unsafe("swe7"));
	CHECK(myl_charset_unsafe("ucs2"));
	CHECK(myl_charset_unsafe("utf16"));
	CHECK(!myl_charset_unsafe("ascii"));
	CHECK(!myl_charset_unsafe("binary"));
	CHECK(!myl_charset_unsafe("utf8mb3_general_ci"));
	CHECK(!myl_charset_unsafe("utf8"));
	st.unsafe_charset = 0;
	st.unread_mode = 1;
	CHECK_EQ_INT(myl_lex(&st, "select 1", 8, &r), -1);
	myl_free(&r);
	CHECK(myl_charset_unsafe("gbk"));
	CHECK(myl_charset_unsafe("SJIS"));
	CHECK(myl_charset_unsafe("big5_chinese_ci"));
	CHECK(myl_charset_unsafe("gb18030"));
	CHECK(myl_charset_unsafe("cp932_japanese_ci"));
	CHECK(!myl_charset_unsafe("utf8mb4"));
	CHECK(!myl_charset_unsafe("utf8mb4_general_ci"));
	CHECK(myl_charset_unsafe("gbkx"));
	CHECK(myl_charset_unsafe("utf8mb4x"));
	/* a NUL byte inside */
	CHECK_EQ_INT(myl_lex(NULL, "select 1\0", 9, &r), -1);
	myl_free(&r);
	/* defaults (NULL settings): lexes */
	CHECK_EQ_INT(myl_lex(NULL, "select 1", 8, &r), 0);
	CHECK_EQ_INT((int)r.n, 2);
	CHECK(myl_is("select 1", &r.tok[0], "SELECT"));
	CHECK(!myl_is("select 1", &r.tok[0], "SELEC"));
	myl_free(&r);
}

int main(void)
{
	UNIT_RUN(test_cases);
	UNIT_RUN(test_settings);
	return unit_report();
}
