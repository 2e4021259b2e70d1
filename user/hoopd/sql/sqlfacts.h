/*
 * What one SQL text does, read from PostgreSQL's own parse tree (libpg_query): the kinds of
 * statement in it (nested ones too: DML inside a CTE, the query of EXPLAIN ANALYZE or PREPARE),
 * the tables read and written (case-folded as the server folds them), every function called
 * anywhere, COPY's direction and source, and unbounded writes and reads. Policy rules match on
 * these facts, never on raw text. No daemon state: hoopctl links it too.
 */
#ifndef HOOP_SQLFACTS_H
#define HOOP_SQLFACTS_H

#include <stddef.h>
#include <stdint.h>

/* Statement kinds: the names are the policy's vocabulary (sqlfacts_kind_name). */
enum sql_kind {
	SK_SELECT, SK_INSERT, SK_UPDATE, SK_DELETE, SK_MERGE, SK_COPY_TO, SK_COPY_FROM,
	SK_TRUNCATE, SK_DROP_TABLE, SK_DROP_SCHEMA, SK_DROP_DATABASE, SK_DROP_VIEW,
	SK_DROP_FUNCTION, SK_DROP_INDEX, SK_DROP_ROLE, SK_DROP_OTHER, SK_ALTER_SYSTEM,
	SK_CREATE_TABLE, SK_ALTER_TABLE, SK_CREATE_INDEX, SK_CREATE_VIEW, SK_CREATE_SCHEMA,
	SK_CREATE_DATABASE, SK_CREATE_FUNCTION, SK_CREATE_EXTENSION, SK_CREATE_ROLE,
	SK_ALTER_ROLE, SK_GRANT, SK_REVOKE, SK_SET_ROLE, SK_SET_SESSION_AUTHORIZATION, SK_SET,
	SK_SHOW, SK_DO, SK_CALL, SK_EXPLAIN, SK_PREPARE, SK_EXECUTE, SK_DEALLOCATE,
	SK_TRANSACTION, SK_VACUUM, SK_LISTEN, SK_NOTIFY, SK_LOCK, SK_FUNCTION_CALL,
	SK_ALTER_TABLE_DROP_COLUMN, /* ALTER TABLE ... DROP COLUMN (also alter_table) */
	SK_ALTER_OWNER,		    /* ALTER ... OWNER TO */
	SK_RENAME,		    /* ALTER ... RENAME (TO), of any object */
	SK_OTHER,
	SK_OPAQUE_SQL,		    /* a built-in that runs SQL from a string */
	SK_ALTER_DATABASE,
	SK_SEARCH_PATH_SHADOWS_CATALOG, /* SET search_path naming a schema before pg_catalog */
	SK_COUNT
};

enum sql_copy {
	SQL_COPY_STDIN = 1 << 0,
	SQL_COPY_STDOUT = 1 << 1,
	SQL_COPY_FILE = 1 << 2,
	SQL_COPY_PROGRAM = 1 << 3,
};

#define SQLFACTS_MAX_NAMES 64
#define SQLFACTS_NAME 130 /* schema.name, each part at most 63 bytes */

struct sqlfacts {
	uint64_t kinds; /* 1 << enum sql_kind */
	char read[SQLFACTS_MAX_NAMES][SQLFACTS_NAME];
	int nread;
	char written[SQLFACTS_MAX_NAMES][SQLFACTS_NAME];
	int nwritten;
	char functions[SQLFACTS_MAX_NAMES][SQLFACTS_NAME];
	int nfunctions;
	int copy;		  /* enum sql_copy */
	int write_without_where;  /* an UPDATE or DELETE without WHERE */
	int select_without_limit; /* the top-level SELECT has no LIMIT */
	/* a predicate reads a masked column (filled by the caller from maskplan.h, which knows
	 * the masking rules and the catalog; sqlfacts_analyze leaves it 0) */
	int probes_masked;
	char probe[SQLFACTS_NAME];
	int writes_masked; /* masked values are copied into a relation */
	int too_many;		  /* more names than fit: rules then see a partial list */
	int parse_error;	  /* the grammar rejected it, or a cap was exceeded */
	char error[256];
	char execute_name[64]; /* EXECUTE name: the prepared statement it runs */
};

#define SQLFACTS_MAX_TEXT (1 << 20) /* longer statements are not parsed: on_parse_error */
#define SQLFACTS_MAX_DEPTH 200	    /* deeper parse trees likewise */

/* Fill f from one SQL text (any number of statements; facts are merged). 0, or -1 with
 * f->parse_error set and f->error explaining. */
int sqlfacts_analyze(const char *sql, size_t len, struct sqlfacts *f);
const char *sqlfacts_kind_name(int kind);
/* Is this client_encoding one in which every byte below 0x80 is an ASCII character? The
 * client-only encodings (SJIS, BIG5, GBK, UHC, GB18030, JOHAB) can put a quote or a backslash
 * inside a multibyte character: the server, which converts first, and hoop, which parses the
 * bytes, would then see different statements. Names are compared as PostgreSQL does (letters
 * and digits only, any case). */
int sqlfacts_encoding_safe(const char *name);
int sqlfacts_kind_from_name(const char *name);

#endif
