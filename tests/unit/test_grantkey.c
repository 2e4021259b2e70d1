/* Unit tests for the key of a fingerprint grant (grantkey.c): statements that differ only in
 * their constants share a key, everything else (DO bodies, function bodies, names, operators,
 * constant types) does not, and the statements whose meaning lives in a string or in a name
 * defined elsewhere get no key at all. */
#include <stdio.h>
#include <string.h>

#include "grantkey.h"
#include "harness.h"

static int key(const char *sql, char *k)
{
	char why[256];

	return grantkey_for(sql, strlen(sql), k, why, sizeof(why));
}

static void same(const char *a, const char *b, int want)
{
	char ka[GRANTKEY_LEN + 1], kb[GRANTKEY_LEN + 1];

	unit_where("%s | %s", a, b);
	CHECK_EQ_INT(key(a, ka), 0);
	CHECK_EQ_INT(key(b, kb), 0);
	CHECK_EQ_INT(!strcmp(ka, kb), want);
}

static void test_constants_only_are_ignored(void)
{
	same("select name from patients where name like 'P1%'",
	     "select name from patients where name like 'P2%'", 1);
	same("select * from t where id = 5 limit 10", "SELECT *\nFROM t WHERE id=7 LIMIT 99", 1);
	same("select * from t where id = 5", "select * from t where id = '5'", 0);
	same("select * from t where id = 5", "select * from t where id > 5", 0);
	same("select a from t", "select b from t", 0);
	same("select a from t", "select a from u", 0);
	same("insert into t values ('a', $1)", "insert into t values ('zzz', $1)", 1);
	same("copy t (a) to stdout", "copy t (b) to stdout", 0);
}

static void test_code_gets_no_key(void)
{
	static const char *const refused[] = {
	    "DO $$ begin perform 1; end $$",
	    "DO $$ begin create table x as select ssn from patients; end $$",
	    "create function f(t text) returns text language sql as 'select t'",
	    "create or replace procedure p() language plpgsql as $$ begin null; end $$",
	    "call p()",
	    "execute s1",
	    "execute s1(1, 'a')",
	    "fetch 10 from c",
	    "move next in c",
	    "create trigger tr after insert on t for each row execute function f()",
	    "copy t to program 'cat'",
	    "copy t from '/etc/passwd'",
	    "select query_to_xml('select ssn from patients', true, false, '')",
	    "select upper('x')",
	    "select f($1)",
	    "select * from t where a = lower($1)",
	    "select 1; DO $$ begin perform 1; end $$",
	    "select from",
	};
	char k[GRANTKEY_LEN + 1], why[256];

	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		unit_where("%s", refused[i]);
		CHECK_EQ_INT(grantkey_for(refused[i], strlen(refused[i]), k, why, sizeof(why)), -1);
		CHECK(why[0] != '\0');
		CHECK(k[0] == '\0');
	}
	unit_where("a NUL inside the text");
	CHECK_EQ_INT(grantkey_for("select 1\0;DO $$ $$", 18, k, why, sizeof(why)), -1);
}

int main(void)
{
	UNIT_RUN(test_constants_only_are_ignored);
	UNIT_RUN(test_code_gets_no_key);
	return unit_report();
}
