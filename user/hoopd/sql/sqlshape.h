/*
 * The shape of a one-statement SQL text: the text with each numeric literal replaced by a mark
 * of its class, so `SELECT abalance FROM pgbench_accounts WHERE aid = 41` and `... = 7` have
 * one shape. PostgreSQL's grammar builds the same tree for two texts of one shape, except for
 * the values of those constants, so what hoopd works out from the tree (policy facts, masking
 * provenance) can be kept by shape and reused without parsing again (stmtcache.h).
 *
 * The scanner is deliberately narrow: it accepts only what it can lex exactly as PostgreSQL 15
 * does, and everything else (comments, dollar quoting, backslashes in strings, a second
 * statement, control characters, numbers in any form but digits or digits.digits, positional
 * junk after a number) is "no shape": the caller then parses as it always does. Nothing about
 * a text is decided here; a wrong "no shape" costs a parse, never a verdict.
 *
 * No daemon state: unit tests and fuzz targets link it alone.
 */
#ifndef HOOP_SQLSHAPE_H
#define HOOP_SQLSHAPE_H

#include <stddef.h>

#define SQLSHAPE_MAX 4096 /* longer texts have no shape: parsing them dominates anyway */

/* The marks standing for a literal: an integer PostgreSQL reads as Integer (it fits in int32),
 * and any other number (Float: too large for int32, or with a decimal point). */
#define SQLSHAPE_INT '\x01'
#define SQLSHAPE_FLOAT '\x02'

struct sqlshape {
	char key[SQLSHAPE_MAX]; /* the shape; not NUL-terminated */
	size_t klen;
	/* the statement as pg_query_split_with_parser cuts it: leading blanks skipped, up to
	 * (not including) the terminating semicolon */
	size_t off, len;
	int nconst; /* numeric literals replaced */
};

/* 0 with *out filled, or -1: no shape (see above). */
int sqlshape(const char *sql, size_t len, struct sqlshape *out);

#endif
