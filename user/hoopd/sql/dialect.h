/*
 * The SQL dialect seam: everything hoopd and hoopctl learn from a statement's text goes through
 * one `struct dialect`, so that an engine for another database brings its own parser and the
 * gate, the rules, masking and approvals stay as they are. PostgreSQL (dialect_pg.c, over
 * libpg_query and the modules sqlfacts, maskplan, sqlshape, sqlsize, grantkey) is the first
 * implementation; MySQL (issue 17: backticks, `#` and `-- ` comments, executable comments
 * (slash-star-bang), `LIMIT a,b`, quoting by sql_mode, no libpg_query) is the next.
 *
 * What a dialect gives back is dialect-neutral:
 * - struct sqlfacts (sqlfacts.h): statement kinds named in the policy's vocabulary, tables read
 *   and written (as the server folds names), functions, COPY, unbounded reads and writes. A
 *   dialect maps its statements onto those kinds; what it cannot classify is a parse error
 *   (policy: on_parse_error, deny or approve), never a guess.
 * - struct maskplan (maskplan.h): which result columns derive from masked columns; what cannot
 *   be established is MASK_RULE_UNKNOWN (masked).
 * - struct sqlshape (sqlshape.h): a key under which facts and plans are reused (stmtcache.h).
 * - a fingerprint for approvals' grants (GRANTKEY_LEN hex digits).
 * - struct sql_error: for text the grammar rejects, what the server itself would answer.
 *
 * Settings that change lexing are input to every call (struct dialect_settings): the engine
 * tracks them from what the server reports and says when it is not sure (a statement that may
 * change them is still in flight). A text never gets judged under a setting the server may not
 * be using: with `unsure`, text whose meaning depends on the setting is refused (split and facts
 * give a parse error) unless the engine waits for the server first (depends_on_settings).
 *
 * Every function is pure (no daemon state, no session) and runs on the calling thread; hoopctl,
 * the unit tests and the fuzz targets call the same ones. For PostgreSQL, libpg_query's lexer
 * settings are thread-local globals: each call sets them from ds and restores what was there.
 *
 * For the engine (what the PostgreSQL engine, engines/pg/, does; the statement gate takes it
 * over):
 * - Keep a struct dialect_settings per session. pg_escape_strings = 1 when the server's
 *   ParameterStatus says standard_conforming_strings is not "on" (the server reports it at
 *   login and after every change, before ReadyForQuery: pg_back.c param_status). Never take it
 *   from the agent's own SET statements: the server is the authority (a SET can fail, be
 *   rolled back, come from set_config, a trigger or a function; a Query is lexed whole before
 *   any of its statements runs, so a SET does not change how the rest of its own Query reads).
 * - Pass those settings to every dialect call for the session's text (split, facts, plan,
 *   shape, size, names, fingerprint, error). Until every call site takes them explicitly,
 *   the engine sets libpg_query's lexer settings for the duration of each entry point
 *   (pg.c pg_agent_data, pg_server_data; pg_held.c pg_resume_held: pglex_set/pglex_restore),
 *   so the modules that still parse directly (verdict.c's facts, judge.c's probes,
 *   mask_live.c's plans, approvals.c) read under the session's setting too. A call with
 *   explicit settings (NULL included: the defaults) overrides that for its own duration, so
 *   inside the engine pass &session settings, never NULL.
 * - A statement in flight may change the setting, and the server reports the new value only
 *   before its next ReadyForQuery. Before judging a Query or Parse while anything is in flight,
 *   call depends_on_settings(): if 1 and the last message forwarded is a Query or a Sync (the
 *   server will reach ReadyForQuery without more input), stop reading from the agent until
 *   nothing is in flight and judge then (pg.c settle_lexing); in the middle of an
 *   extended-protocol batch (no Sync yet: waiting could deadlock) judge with unsure = 1, which
 *   makes split and facts refuse the text as a parse error (fail closed).
 * - Texts kept for later (named prepared statements, cursors, what EXECUTE runs) were read by
 *   the server under the setting of their own Parse/PREPARE/DECLARE. A later re-parse (facts of
 *   a prepared text for EXECUTE, a plan rebuilt after a masking reload) must use the settings
 *   stored with the text, not the session's current ones: NOT DONE YET in engines/pg/ (it
 *   re-parses under the current setting; see the report of issue 16's dialect work).
 * - Grammar errors: when split says parse_error with err->kind == SQL_ERR_GRAMMAR, the fields
 *   of err are what the server would answer (message, sqlstate, position, detail, hint); for
 *   a single statement (Parse) error() gives the same.
 */
#ifndef HOOP_DIALECT_H
#define HOOP_DIALECT_H

#include <stddef.h>

struct sqlfacts;
struct maskplan;
struct sqlshape;
struct sqlsize;
struct catalog;
struct mask_policy;

#define DIALECT_MAX_STMTS 4096 /* statements in one message; more is judged whole, unsplit */
#define DIALECT_NAME_LEN 64    /* prepared statement and cursor names (PostgreSQL NAMEDATALEN) */

/* What changes how a text is lexed, per session. All zero: the server defaults. */
struct dialect_settings {
	/* PostgreSQL: standard_conforming_strings is off, so '...' strings take backslash
	 * escapes ('a\'b' is one string) as E'...' always does. */
	int pg_escape_strings;
	/* The settings above may have changed since the server last reported them. */
	int unsure;
	/* MySQL (dialect_mysql.c; mysqllex.h's struct myl_settings, field for field): sql_mode
	 * has ANSI_QUOTES, NO_BACKSLASH_ESCAPES, MSSQL or ORACLE (unread); the server is
	 * MariaDB, its version as NNNNNN (which executable comments run); the client character
	 * set is one whose bytes hoop does not read exactly. */
	int my_ansi_quotes, my_no_backslash_escapes, my_unread_mode;
	int my_mariadb;
	unsigned my_version;
	int my_unsafe_charset;
};

/* Statements of one message, as the server will cut them. */
struct dialect_split {
	int n;
	/* The text was not cut (the grammar rejects it, more than DIALECT_MAX_STMTS statements,
	 * settings unsure): one statement, the whole text, which the verdict refuses as a parse
	 * error (policy on_parse_error). err says why. */
	int parse_error;
	int off[DIALECT_MAX_STMTS]; /* leading blanks (space, \t, \n, \r) skipped */
	int len[DIALECT_MAX_STMTS]; /* up to, not including, the terminating semicolon */
};

enum sql_error_kind {
	SQL_ERR_NONE = 0,
	/* The server's grammar rejects the text: the fields are what the server would send,
	 * so the engine may answer with them as the server would (issue 16 point 7). */
	SQL_ERR_GRAMMAR = 1,
	/* hoop's own refusal of text the server might accept (too many statements, too long or
	 * deep, out of memory): message is hoop's, sqlstate 54000 or 53200. */
	SQL_ERR_LIMIT = 2,
	/* The text means different things under settings hoop is not sure of (see above). */
	SQL_ERR_UNSURE = 3,
};

#define SQL_ERROR_MESSAGE 1024

/* An error as the server reports it (PostgreSQL's ErrorResponse fields). */
struct sql_error {
	int kind;		  /* enum sql_error_kind */
	char sqlstate[6];	  /* "42601" */
	char message[SQL_ERROR_MESSAGE]; /* primary message, as the server words it */
	char detail[256];	  /* "" when the server gives none */
	char hint[256];		  /* "" when the server gives none */
	/* 1-based position in characters (not bytes) of the whole text the engine passed, as
	 * the server's ErrorResponse 'P' field; 0 when there is none */
	int position;
};

/* What one statement does to the session's named objects (prepared statements, cursors). */
enum dialect_name_kind {
	DIALECT_NAME_NONE = 0,
	DIALECT_NAME_PREPARE,	 /* PREPARE name AS ...: body is where its statement starts */
	DIALECT_NAME_EXECUTE,	 /* EXECUTE name */
	DIALECT_NAME_DEALLOCATE, /* name "": DEALLOCATE ALL */
	DIALECT_NAME_DECLARE,	 /* DECLARE name CURSOR: holdable for WITH HOLD */
	DIALECT_NAME_CLOSE,	 /* name "": CLOSE ALL */
	DIALECT_NAME_DISCARD_ALL,
};

struct dialect_names {
	enum dialect_name_kind kind;
	char name[DIALECT_NAME_LEN]; /* as the server resolves it: folded, unquoted, truncated */
	int holdable;
	size_t body;
};

/*
 * One SQL dialect. Every function takes the session's settings (NULL: the defaults) and a text
 * that need not be NUL-terminated; a text with a NUL byte in it is a parse error.
 */
struct dialect {
	const char *name; /* "postgresql", "mysql" */

	/* Cut a message into statements as the server will: 0, or -1 with out->parse_error set
	 * (one statement, the whole text) and err (may be NULL) saying why. Blank text (only
	 * blanks and semicolons) has no statement. */
	int (*split)(const struct dialect_settings *ds, const char *sql, size_t len,
		     struct dialect_split *out, struct sql_error *err);
	/* Facts of one text (any number of statements: merged). 0, or -1 with f->parse_error
	 * and f->error set. probes_masked and writes_masked are left 0 (plan's, see judge.h). */
	int (*facts)(const struct dialect_settings *ds, const char *sql, size_t len,
		     struct sqlfacts *f);
	/* Masking provenance of one statement (maskplan_build_ex's contract: cat may be NULL,
	 * shadow names relations the session made). 0, or -1 with out->all_unknown set. */
	int (*plan)(const struct dialect_settings *ds, const char *sql, size_t len,
		    const struct catalog *cat, const struct mask_policy *mp,
		    const char (*shadow)[64], int nshadow, struct maskplan *out);
	/* Shape of a one-statement text (sqlshape.h): 0, or -1 "no shape" (parse as usual).
	 * May be NULL: nothing is cached by shape. */
	int (*shape)(const struct dialect_settings *ds, const char *sql, size_t len,
		     struct sqlshape *out);
	/* Fingerprint grant key (grantkey.h): 0 with key (GRANTKEY_LEN + 1 bytes), or -1 with
	 * why: no grant may cover this text. May be NULL: no fingerprint grants. */
	int (*fingerprint)(const struct dialect_settings *ds, const char *sql, size_t len,
			   char *key, char *why, size_t whyn);
	/* Cheap bound before any parse (sqlsize.h): 0 within both limits, 1 over one. */
	int (*size)(const struct dialect_settings *ds, const char *sql, size_t len,
		    size_t max_tokens, size_t max_depth, struct sqlsize *out);
	/* What the server would answer for text its grammar rejects: 1 with err filled
	 * (SQL_ERR_GRAMMAR), 0 when the grammar accepts it. position counts from sql[0].
	 * May be NULL: the dialect does not know what the server would answer. */
	int (*error)(const struct dialect_settings *ds, const char *sql, size_t len,
		     struct sql_error *err);
	/* What one statement does to named objects (engines that track them; may be NULL). */
	int (*names)(const struct dialect_settings *ds, const char *sql, size_t len,
		     struct dialect_names *out);
	/* Could the text define, use or drop a name at all? 0 only when it surely cannot: a cheap
	 * look at its first word, before names() parses it. NULL with names. */
	int (*may_name)(const char *sql, size_t len);
	/* 1 when the text would lex differently under another value of a setting that
	 * ds->unsure says may have changed (PostgreSQL: a backslash inside a '...' string). */
	int (*depends_on_settings)(const char *sql, size_t len);
	/* Is this client encoding one the lexer reads exactly (sqlfacts_encoding_safe)? */
	int (*encoding_safe)(const char *name);
};

extern const struct dialect dialect_pg;
/* MySQL and MariaDB (dialect_mysql.c: mysqllex and mysqlclass). Its masking provenance comes
 * from the server's column metadata in the engine (engines/mysql/mysql_mask.c), so plan says
 * all_unknown; it has no shapes (each statement is lexed and classified: no facts cache), no
 * fingerprint (no fingerprint grants: approvals.md), no error (what MariaDB would answer is
 * not modelled: unread text is refused with hoop's own 1064) and no names (the engine tracks
 * prepared statements by the server's ids). */
extern const struct dialect dialect_mysql;

/* The dialect of a target's protocol ("postgres", "mysql"), or NULL (dialect.c). */
const struct dialect *dialect_for(const char *protocol);

#endif
