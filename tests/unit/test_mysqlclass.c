/* Unit tests for the MySQL/MariaDB classifier (user/hoopd/sql/mysqlclass.c): the facts the
 * policy's rules match, for statements agents send and for the routes by which a table is
 * read without its name where a naive reader looks (subqueries in any clause, derived tables,
 * UNION, WITH, executable comments, prepared texts, TABLE, HANDLER, INTO OUTFILE, LOAD DATA),
 * and the refusals (fail closed): compound statements, what it does not read to the end.
 * Facts are written "K:kinds R:read W:written F:functions" (sorted, comma-separated; parts
 * with nothing are left out; "+nowhere" for an UPDATE or DELETE without WHERE, "+nolimit" for a
 * top-level SELECT without LIMIT, "+file" for a file read or written), or "ERR". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dialect.h"
#include "harness.h"
#include "maskplan.h"
#include "mysqlclass.h"
#include "sqlsize.h"

struct ccase {
	const char *text, *want;
};

static const struct ccase cases[] = {
    {"select 1", "K:select +nolimit"},
    {"select * from patients limit 10", "K:select R:patients"},
    {"SELECT name FROM `Clinic`.`Patients` p WHERE p.id = 1 LIMIT 1", "K:select R:clinic.patients"},
    {"select a from t1, t2 join t3 on t2.x = t3.x left join t4 using (y) limit 1",
     "K:select R:t1,t2,t3,t4"},
    {"select (select ssn from patients limit 1) limit 1", "K:select R:patients"},
    {"select 1 from t where x in (select id from patients) limit 1", "K:select R:patients,t"},
    {"select 1 from t where exists (select 1 from patients where patients.id = t.id) limit 1",
     "K:select R:patients,t"},
    {"select 1 from (select ssn from patients) as d limit 1", "K:select R:patients"},
    {"select 1 from ((select ssn from patients)) d limit 1", "K:select R:patients"},
    {"select 1 from (t1 join (t2, t3) on true) limit 1", "K:select R:t1,t2,t3"},
    {"select a from t1 union select ssn from patients limit 5", "K:select R:patients,t1"},
    {"(select a from t1) union all (select ssn from patients) limit 5", "K:select R:patients,t1"},
    {"with p as (select ssn from patients) select * from p limit 1", "K:select R:patients"},
    {"with recursive r (n) as (select 1 union all select n + 1 from r where n < 5) select * from r",
     "K:select +nolimit"},
    {"select * from visits /*!, patients */ limit 1", "K:select R:patients,visits"},
    {"select 1 /*!50100 , (select ssn from patients) */ limit 1", "K:select R:patients"},
    {"select 1 /*!99999 , (select ssn from patients) */ limit 1", "K:select"},
    {"select count(*), load_file('/etc/passwd'), db1.f(2) from t limit 1",
     "K:select R:t F:count,db1.f,load_file"},
    {"select a from t order by (select max(ssn) from patients) limit 1",
     "K:select R:patients,t F:max"},
    {"select a from t group by a having max(b) > (select 1 from patients) limit 1",
     "K:select R:patients,t F:max"},
    {"select a from t1 join t2 on t2.id = (select id from patients limit 1) limit 1",
     "K:select R:patients,t1,t2"},
    {"select a from t for update", "K:select R:t +nolimit"},
    {"select a from t lock in share mode", "K:select R:t +nolimit"},
    {"select ssn from patients into outfile '/tmp/x' fields terminated by ','",
     "K:copy_to,select R:patients +nolimit +file"},
    {"select ssn into @v from patients limit 1", "K:select,set R:patients"},
    {"select @v := ssn from patients limit 1", "K:select,set R:patients"},
    {"table patients", "ERR"}, /* MySQL 8's, not MariaDB's */
    {"values row(1, 2), row(3, 4)", "ERR"},
    {"values (1, 2), (3, 4)", "K:select +nolimit"},
    {"select * from t use index (i1) force key for join (primary) limit 1", "K:select R:t"},
    {"select * from json_table('[1]', '$[*]' columns (a int path '$')) j limit 1",
     "K:select F:json_table"},
    /* writes */
    {"insert into visits (id, note) values (1, 'x'), (2, 'y')", "K:insert R:visits W:visits"},
    {"insert visits set id = 1, note = (select ssn from patients limit 1)",
     "K:insert,select R:patients,visits W:visits"},
    {"insert into archive select * from patients", "K:insert,select R:archive,patients W:archive"},
    {"insert into t (a) values (1) on duplicate key update a = values(a) + 1",
     "K:insert,update R:t W:t"},
    {"replace into t values (1)", "K:delete,insert R:t W:t"},
    {"insert into t values (1) returning id", "K:insert,select R:t W:t"},
    {"update patients set ssn = 'x'", "K:update R:patients W:patients +nowhere"},
    {"update patients set ssn = 'x' where id = 1 limit 1", "K:update R:patients W:patients"},
    {"update t1 join t2 on t1.id = t2.id set t1.a = t2.b where t2.c = 1",
     "K:update R:t1,t2 W:t1,t2"},
    {"delete from patients", "K:delete R:patients W:patients +nowhere"},
    {"delete from patients where id in (select id from t)",
     "K:delete,select R:patients,t W:patients"},
    {"delete t1 from t1 join t2 on t1.id = t2.id where t2.x = 1", "K:delete R:t1,t2 W:t1"},
    {"delete from t1, t2 using t1 join t2 join t3 where t1.id = t3.id",
     "K:delete R:t1,t2,t3 W:t1,t2"},
    {"delete low_priority quick ignore from t where a = 1", "K:delete R:t W:t"},
    /* other statements */
    {"set names utf8mb4", "K:set"},
    {"set @v = (select ssn from patients limit 1)", "K:select,set R:patients"},
    {"set global max_connections = 10", "K:alter_system,set"},
    {"set @@global.general_log = 1", "K:alter_system,set"},
    {"set session transaction isolation level read committed", "K:transaction"},
    {"use clinic", "K:set"},
    {"show tables", "K:show"},
    {"show tables where (select count(*) from patients) > 0", "K:select,show R:patients F:count"},
    {"explain select * from patients", "K:explain,select R:patients +nolimit"},
    {"explain format=json delete from patients", "K:delete,explain R:patients W:patients +nowhere"},
    {"analyze select ssn from patients", "K:explain,select R:patients +nolimit"},
    {"begin", "K:transaction"},
    {"start transaction read only", "K:transaction"},
    {"commit", "K:transaction"},
    {"rollback to savepoint a", "K:transaction"},
    {"load data local infile '/tmp/x' into table patients fields terminated by ','",
     "K:copy_from R:patients W:patients +file"},
    {"handler patients open", "K:select R:patients"},
    {"handler patients read first where id > (select 1 from t)", "K:select R:patients,t"},
    {"do sleep(1)", "K:do F:sleep"},
    {"call p1(1, (select ssn from patients limit 1))", "K:call,select R:patients F:p1"},
    {"prepare s from 'select ssn from patients'", "K:prepare,select R:patients +nolimit"},
    {"prepare s from 'select ''a'' from patients where x = \\'b\\''",
     "K:prepare,select R:patients +nolimit"},
    {"prepare s from @q", "K:opaque_sql,prepare"},
    {"execute s using @a", "K:execute"},
    {"deallocate prepare s", "K:deallocate"},
    {"truncate table patients", "K:truncate R:patients W:patients"},
    {"drop table if exists a, b", "K:drop_table R:a,b W:a,b"},
    {"drop database clinic", "K:drop_database"},
    {"create table t2 as select * from patients", "K:create_table,select R:patients,t2 W:t2"},
    {"create table t3 (id int primary key, b text default 'x')", "K:create_table R:t3 W:t3"},
    {"create table t4 like patients", "K:create_table R:patients,t4 W:t4"},
    {"create view v as select ssn from patients", "K:create_view,select R:patients"},
    {"alter table patients drop column ssn",
     "K:alter_table,alter_table_drop_column R:patients W:patients"},
    {"alter table patients add index i (a)", "K:alter_table R:patients W:patients F:i"},
    {"rename table a to b", "K:rename R:a,b W:a,b"},
    {"lock tables patients read, t write", "K:lock R:patients,t"},
    {"grant select on clinic.* to u", "K:grant"},
    {"kill query 12", "K:other"},
    {"flush privileges", "K:alter_system"},
    {"select 1; select ssn from patients limit 1", "K:select R:patients +nolimit"},
    /* found by a hostile review, each checked on MariaDB 10.11 (a user granted only the
     * tables reported was denied patients) */
    {"set statement max_statement_time=100 for delete from patients returning *",
     "K:delete,select,set R:patients W:patients +nowhere"},
    {"set statement max_statement_time=100 for update patients set name = 1",
     "K:set,update R:patients W:patients +nowhere"},
    {"with patients as (select * from patients) select * from patients limit 1",
     "K:select R:patients"},
    {"with p as (select 1), patients as (select * from patients) select * from patients limit 1",
     "K:select R:patients"},
    {"with recursive patients as (select 1 union all select 1 from patients where 0) "
     "select * from patients",
     "K:select +nolimit"},
    {"prepare s from _swe7'select name as `x from patients -- `'", "ERR"},
    {"prepare s from _utf8mb4'select name from patients'", "K:prepare,select R:patients +nolimit"},
    {"prepare s from N'select name from patients'", "K:prepare,select R:patients +nolimit"},
    {"set sql_mode = 'ANSI_QUOTES'; select 1 as \"\\\", name from patients as \" -- \"", "ERR"},
    {"set names latin1; select 1", "ERR"},
    {"select 1; set names utf8mb4", "K:select,set +nolimit"},
    {"set @@session.sql_mode = ''; select 1", "ERR"},
    {"set @a = 1; select 1", "K:select,set +nolimit"},
    {"alter table m union = (pm)", "ERR"},
    {"alter table t2 add foreign key (id) references patients(id)",
     "K:alter_table R:patients,t2 W:t2"},
    {"create table t3 (a int, foreign key (a) references patients (id))",
     "K:create_table R:patients,t3 W:t3"},
    {"alter table t rename to t9", "K:alter_table,rename R:t,t9 W:t,t9"},
    {"select * from PATI\xc4\xb0"
     "ENTS limit 1",
     "ERR"},
    {"show columns from patients", "K:show R:patients"},
    {"show full columns from patients from clinic", "K:show R:clinic.patients"},
    {"show index from clinic.patients", "K:show R:clinic.patients"},
    {"show create table patients", "K:show R:patients"},
    {"describe patients", "K:show R:patients"},
    {"create index i on patients (id)", "K:create_index R:patients W:patients F:patients"},
    {"drop index i on patients", "K:drop_index R:patients W:patients"},
    /* refused */
    {"begin not atomic select 1; end", "ERR"},
    {"create procedure p() begin select ssn from patients; end", "ERR"},
    {"create trigger tr before insert on t for each row set @a = 1", "ERR"},
    {"if 1 then select 1; end if", "ERR"},
    /* found by the hostile corpus (tests/e2e/test_mysql_hostile.py): every assignment of a
     * SET list, CREATE OR REPLACE's drop, ALTER TABLE's destructive forms */
    {"set @a = 1, password = password('x')", "K:alter_role,set F:password"},
    {"set @a = 1, password for 'analyst'@'%' = password('x')", "K:alter_role,set F:password"},
    {"set @a = 1, global max_connections = 77", "K:alter_system,set"},
    {"set @@global . max_connections = 77", "K:alter_system,set"},
    {"set @@global/**/.max_connections = 77", "K:alter_system,set"},
    {"set statement sql_mode = 'NO_BACKSLASH_ESCAPES' for prepare s from 'select 1'", "ERR"},
    {"set statement character_set_client = latin1 for select 1", "ERR"},
    {"create or replace table labs (id int)", "K:create_table,drop_table R:labs W:labs"},
    {"create or replace database x", "K:create_database,drop_database"},
    {"alter table labs truncate partition all", "K:alter_table,truncate R:labs W:labs"},
    {"alter table labs drop partition p0", "K:alter_table,truncate R:labs W:labs"},
    {"alter table labs discard tablespace", "K:alter_table,truncate R:labs W:labs"},
    {"alter table labs exchange partition p0 with table t2", "ERR"}, /* not read: refused */
    {"alter table labs drop index ix_res", "K:alter_table,drop_index R:labs W:labs"},
    {"alter table labs drop foreign key fk", "K:alter_table,drop_index R:labs W:labs"},
    {"alter table labs change result r varchar(32)", "K:alter_table,rename R:labs W:labs F:varchar"},
    /* EXPLAIN FORMAT= took the next token whatever it was: here the ';', so the whole text
     * read as one statement that its pieces do not (found by fuzz_mysqlclass) */
    {"explain format=;json de", "ERR"},
    {"explain format=", "ERR"},
    {"select 1 +", "ERR"},
    {"select 1 from t where a and", "ERR"},
    {"select 1 from t where a = 1, b = 2", "ERR"},
    {"select 1 from", "ERR"},
    {"select 1 from t where", "ERR"},
    {"select a, from t", "ERR"},
    {"select (select 1", "ERR"},
    {"select 1)", "ERR"},
    {"select 1 1 select", "ERR"},
    {"frobnicate the database", "ERR"},
    {"prepare s from 'select 1' 'from patients'", "ERR"},
    {"prepare s from 'begin not atomic select 1; end'", "ERR"},
    {"select * from t where a = 'x", "ERR"},
    {NULL, NULL},
};

static void join(char *out, size_t n, const char *tag, char (*list)[SQLFACTS_NAME], int cnt)
{
	char *sorted[SQLFACTS_MAX_NAMES];

	if (!cnt)
		return;
	for (int i = 0; i < cnt; i++)
		sorted[i] = list[i];
	for (int i = 1; i < cnt; i++)
		for (int j = i; j > 0 && strcmp(sorted[j - 1], sorted[j]) > 0; j--) {
			char *x = sorted[j];

			sorted[j] = sorted[j - 1];
			sorted[j - 1] = x;
		}
	snprintf(out + strlen(out), n - strlen(out), "%s%s:", out[0] ? " " : "", tag);
	for (int i = 0; i < cnt; i++)
		snprintf(out + strlen(out), n - strlen(out), "%s%s", i ? "," : "", sorted[i]);
}

static void render(const struct sqlfacts *f, char *out, size_t n)
{
	int first = 1;

	snprintf(out, n, "K:");
	for (int k = 0; k < SK_COUNT; k++) /* kinds by name, sorted */
		(void)k;
	{
		const char *names[SK_COUNT];
		int cnt = 0;

		for (int k = 0; k < SK_COUNT; k++)
			if (f->kinds & (1ULL << k))
				names[cnt++] = sqlfacts_kind_name(k);
		for (int i = 1; i < cnt; i++)
			for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
				const char *x = names[j];

				names[j] = names[j - 1];
				names[j - 1] = x;
			}
		for (int i = 0; i < cnt; i++) {
			snprintf(out + strlen(out), n - strlen(out), "%s%s", first ? "" : ",",
				 names[i]);
			first = 0;
		}
	}
	join(out, n, "R", (char(*)[SQLFACTS_NAME])f->read, f->nread);
	join(out, n, "W", (char(*)[SQLFACTS_NAME])f->written, f->nwritten);
	join(out, n, "F", (char(*)[SQLFACTS_NAME])f->functions, f->nfunctions);
	if (f->write_without_where)
		snprintf(out + strlen(out), n - strlen(out), " +nowhere");
	if (f->select_without_limit)
		snprintf(out + strlen(out), n - strlen(out), " +nolimit");
	if (f->copy & SQL_COPY_FILE)
		snprintf(out + strlen(out), n - strlen(out), " +file");
}

static void test_facts(void)
{
	static struct sqlfacts f;
	struct myl_settings st = {.mariadb = 1, .version = 101106};
	char got[4096];

	for (const struct ccase *c = cases; c->text; c++) {
		int rc = mysql_facts(&st, c->text, strlen(c->text), &f);

		unit_where("%s", c->text);
		if (!strcmp(c->want, "ERR")) {
			if (rc == 0) {
				render(&f, got, sizeof(got));
				unit_fail(__FILE__, __LINE__, "read, not refused: %s", got);
			}
			CHECK(f.parse_error && f.error[0]);
			continue;
		}
		if (rc) {
			unit_fail(__FILE__, __LINE__, "refused: %s", f.error);
			continue;
		}
		render(&f, got, sizeof(got));
		CHECK_STREQ(got, c->want);
	}
}

static void test_split(void)
{
	static struct mysql_split sp;
	struct myl_settings st = {.mariadb = 1, .version = 101106};
	char why[200];
	const char *t = "select 1; select 'a;b' ;select 2 -- ;\n";

	/* an empty statement before another is the server's syntax error from there (MariaDB
	 * 10.11: "select 1; ; select 2" runs select 1, then 1064), refused whole; empty ones at
	 * the end are skipped, as the server skips them */
	CHECK_EQ_INT(mysql_split(&st, "select 1; ; select 2", 20, &sp, why, sizeof(why)), -1);
	CHECK_EQ_INT(mysql_split(&st, ";select 1", 9, &sp, why, sizeof(why)), -1);
	CHECK_EQ_INT(mysql_split(&st, "select 1; /* c */ ;", 19, &sp, why, sizeof(why)), 0);
	CHECK_EQ_INT(sp.n, 1);
	CHECK_EQ_INT(mysql_split(&st, t, strlen(t), &sp, why, sizeof(why)), 0);
	CHECK_EQ_INT(sp.n, 3);
	if (sp.n == 3) {
		CHECK(sp.len[0] == 8 && !strncmp(t + sp.off[0], "select 1", 8));
		CHECK(sp.len[1] == 12 && !strncmp(t + sp.off[1], "select 'a;b'", 12));
		CHECK(sp.len[2] == 13 && !strncmp(t + sp.off[2], "select 2 -- ;", 13));
	}
	/* a SET that changes how the server reads the statements after it, in the same query */
	t = "/*!40101 SET NAMES utf8 */; select 1";
	CHECK_EQ_INT(mysql_split(&st, t, strlen(t), &sp, why, sizeof(why)), -1);
	t = "select 1; /*!40101 SET NAMES utf8 */;";
	CHECK_EQ_INT(mysql_split(&st, t, strlen(t), &sp, why, sizeof(why)), 0);
	t = "set @a = 1; select @a";
	CHECK_EQ_INT(mysql_split(&st, t, strlen(t), &sp, why, sizeof(why)), 0);
	CHECK_EQ_INT(sp.n, 2);
	/* a statement that reads differently out of its executable comment */
	/* executable comments around or inside one statement: the piece holds them whole */
	t = "/*! select 1 */ , ssn from patients; select 2 /*!50100 , 3 */";
	CHECK_EQ_INT(mysql_split(&st, t, strlen(t), &sp, why, sizeof(why)), 0);
	CHECK_EQ_INT(sp.n, 2);
	if (sp.n == 2) {
		CHECK(sp.off[0] == 0 && sp.len[0] == 35);
		CHECK(!strncmp(t + sp.off[1], "select 2 /*!50100 , 3 */", sp.len[1]) &&
		      sp.len[1] == 24);
	}
	t = "select 1 /*! , ssn */ from patients";
	CHECK_EQ_INT(mysql_split(&st, t, strlen(t), &sp, why, sizeof(why)), 0);
	/* one that spans two statements holds the ';' */
	t = "select 1 /*! ; select ssn from patients */";
	CHECK_EQ_INT(mysql_split(&st, t, strlen(t), &sp, why, sizeof(why)), -1);
	t = "/*! select 1; select ssn from patients */";
	CHECK_EQ_INT(mysql_split(&st, t, strlen(t), &sp, why, sizeof(why)), -1);
	t = "begin not atomic select 1; select 2; end";
	CHECK_EQ_INT(mysql_split(&st, t, strlen(t), &sp, why, sizeof(why)), -1);
	t = "begin; select 1; commit";
	CHECK_EQ_INT(mysql_split(&st, t, strlen(t), &sp, why, sizeof(why)), 0);
	CHECK_EQ_INT(sp.n, 3);
	t = "   ";
	CHECK_EQ_INT(mysql_split(&st, t, strlen(t), &sp, why, sizeof(why)), 0);
	CHECK_EQ_INT(sp.n, 0);
}

/* The same reader behind the dialect seam (dialect_mysql.c): settings in, split, facts, size. */
static void test_dialect(void)
{
	static struct dialect_split sp;
	struct dialect_settings dflt = {.my_mariadb = 1, .my_version = 101106}, nbe = dflt,
				unsure = dflt;
	struct sql_error err;
	struct sqlfacts *f = calloc(1, sizeof(*f));
	struct maskplan mp;
	struct sqlsize z;
	const char *t = "select 'a\\';' ; select 1";

	nbe.my_no_backslash_escapes = 1;
	unsure.unsure = 1;
	CHECK(f != NULL);
	if (!f)
		return;
	/* a backslash escapes the quote by default: one string, then a second statement */
	CHECK_EQ_INT(dialect_mysql.split(&dflt, t, strlen(t), &sp, &err), 0);
	CHECK_EQ_INT(sp.n, 2);
	/* under NO_BACKSLASH_ESCAPES the string ends at the backslash: the rest is unterminated */
	CHECK_EQ_INT(dialect_mysql.split(&nbe, t, strlen(t), &sp, &err), -1);
	CHECK_EQ_INT(sp.parse_error, 1);
	CHECK_EQ_INT(sp.n, 1);
	CHECK(err.message[0] != '\0');
	/* settings not known: nothing is read, whatever the text */
	CHECK_EQ_INT(dialect_mysql.split(&unsure, "select 1", 8, &sp, &err), -1);
	CHECK_EQ_INT(err.kind, SQL_ERR_UNSURE);
	CHECK_EQ_INT(dialect_mysql.facts(&unsure, "select 1", 8, f), -1);
	CHECK_EQ_INT(f->parse_error, 1);
	memset(f, 0, sizeof(*f));
	CHECK_EQ_INT(dialect_mysql.facts(&dflt, "delete from labs /*!50000 where 1 */", 36, f), 0);
	CHECK(f->kinds & (1ULL << SK_DELETE));
	/* no plan from the text: the engine masks by the server's metadata */
	CHECK_EQ_INT(dialect_mysql.plan(&dflt, "select 1", 8, NULL, NULL, NULL, 0, &mp), -1);
	CHECK_EQ_INT(mp.all_unknown, 1);
	CHECK_EQ_INT(dialect_mysql.size(&dflt, "select ((1)), 2", 15, 100, 100, &z), 0);
	CHECK_EQ_INT((int)z.depth, 2);
	CHECK_EQ_INT((int)z.tokens, 8);
	CHECK_EQ_INT(dialect_mysql.size(&dflt, "select ((1)), 2", 15, 100, 1, &z), 1);
	CHECK_EQ_INT(dialect_mysql.depends_on_settings("select 1", 8), 0);
	CHECK_EQ_INT(dialect_mysql.depends_on_settings("select \"a\"", 10), 1);
	CHECK_EQ_INT(dialect_mysql.encoding_safe("utf8mb4"), 1);
	CHECK_EQ_INT(dialect_mysql.encoding_safe("sjis"), 0);
	CHECK(dialect_mysql.fingerprint == NULL); /* no fingerprint grants for MySQL text */
	free(f);
}

int main(void)
{
	UNIT_RUN(test_facts);
	UNIT_RUN(test_split);
	UNIT_RUN(test_dialect);
	return unit_report();
}
