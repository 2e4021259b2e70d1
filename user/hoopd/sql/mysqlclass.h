/*
 * The MySQL/MariaDB classifier (issue 17): what a statement text does, read from its tokens
 * (mysqllex.h) by a recursive-descent reader of the statements agents send, and given back as
 * the dialect-neutral facts the policy's rules match (sqlfacts.h): statement kinds, tables read
 * and written, functions called, unbounded reads and writes, files read or written.
 *
 * Fail closed: a statement it does not read to its last token, by its grammar, is a parse
 * error (policy: on_parse_error), never a guess. Read: SELECT (WITH, UNION/EXCEPT/INTERSECT,
 * joins, derived tables, subqueries anywhere in expressions, INTO OUTFILE/DUMPFILE/@var),
 * TABLE, VALUES, INSERT/REPLACE (VALUES, SELECT, SET, ON DUPLICATE KEY UPDATE, RETURNING),
 * UPDATE and DELETE (one table or several), SET, USE, SHOW, DESCRIBE, EXPLAIN (of a statement
 * it reads), transaction control, LOAD DATA, HANDLER, DO, CALL, PREPARE/EXECUTE/DEALLOCATE,
 * TRUNCATE, DROP/CREATE/ALTER TABLE (simple forms), DROP/CREATE DATABASE, RENAME TABLE, LOCK/
 * UNLOCK TABLES, GRANT/REVOKE. Not read (a parse error): compound statements (BEGIN NOT
 * ATOMIC, IF, procedures, functions, triggers, events: their bodies run SQL hoop does not see
 * one statement at a time), and everything not listed.
 *
 * Names: `db`.`t`, db.t or t, folded to lower case (so a rule on a table matches however the
 * agent cases it, also where the server's lower_case_table_names would fold it).
 */
#ifndef HOOP_MYSQLCLASS_H
#define HOOP_MYSQLCLASS_H

#include <stddef.h>

#include "mysqllex.h"
#include "sqlfacts.h"

#define MYSQL_MAX_STMTS 4096

/* Where the server cuts a text into statements (with CLIENT_MULTI_STATEMENTS): n pieces, each
 * from its first token to its last (the ';' not included). 0, or -1 with why: a text the
 * lexer refuses, a ';' inside an executed comment, a compound statement (whose body holds
 * ';'), more than MYSQL_MAX_STMTS statements. */
struct mysql_split {
	int n;
	size_t off[MYSQL_MAX_STMTS], len[MYSQL_MAX_STMTS];
};
int mysql_split(const struct myl_settings *st, const char *text, size_t len,
		struct mysql_split *out, char *why, size_t whyn);

/* The dialect seam's settings (dialect.h; dialect_mysql.c) from the lexer's, with unsure set
 * while the engine does not know them. */
struct dialect_settings;
void mysql_dialect_settings(const struct myl_settings *st, int unsure, struct dialect_settings *ds);

/* Facts of a text (its statements merged). 0, or -1 with f->parse_error and f->error. */
int mysql_facts(const struct myl_settings *st, const char *text, size_t len, struct sqlfacts *f);

#endif
