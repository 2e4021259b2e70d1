/*
 * The statement gate: the one place where an engine's statements are shaped, judged and put on
 * record before they are forwarded, held or refused, whatever the protocol. An engine splits a
 * message into statements (a PostgreSQL Query or a MySQL COM_QUERY may carry several), hands
 * them to the gate as a batch, and acts on the outcome with its own wire: forward the message,
 * refuse it (gate_batch says with what), or park it for an approver (hold). The gate never
 * writes a byte to either side; the engine never calls the verdict or writes a statement record.
 *
 * The rules of the gate, for every engine:
 * - every statement of a batch is judged (verdict.h); deny beats hold beats allow over the
 *   batch, and a denied batch runs none of its statements (the others are on record as
 *   not_run);
 * - every statement is on record (ev_statement) before anything of its batch is forwarded; a
 *   record that cannot be written refuses the batch (58030);
 * - a hold opens an approval request (hold_ops) and puts the statements on record as held;
 *   when decided, the engine replays the parked message through gate_commit with the verdict
 *   already given (nothing is judged twice, and the records say "allow");
 * - what was worked out about a one-statement text is kept by its shape (stmtcache.h) only
 *   when it depends on the text alone.
 *
 * What a new engine implements for the gate: a struct gate per session (gate_init; the login
 * goes to the session once, sess_set_login, not to every statement), and for
 * each message that carries statements: split it, fill a gate_batch, gate_judge + gate_commit
 * (or gate_run), and act on GATE_FORWARD / GATE_REFUSE / GATE_HOLD. The gate_ops callbacks are
 * only for engines with named statements (SQL PREPARE/EXECUTE, a protocol's own prepared
 * statements); each may be NULL. tests/unit/fake_engine.c is the smallest engine there is.
 *
 * The loop thread's only.
 */
#ifndef HOOP_GATE_H
#define HOOP_GATE_H

#include <stddef.h>
#include <stdint.h>

#include "dialect.h"
#include "stmtcache.h"
#include "verdict.h"

struct session;
struct catalog;
struct masking;
struct mplan;
struct sqlfacts;

/* What the sessions' records say when a statement cannot be put on record. */
#define GATE_UNRECORDED_STATE "58030"
#define GATE_UNRECORDED_MSG "hoop: the audit trail cannot be written; the statement was not forwarded"

/* A session's relations hoop keeps by name (struct gate.made); past this, no plan is trusted. */
#define GATE_MAX_MADE 1024

/* The engine's answers about names the session defined (all may be NULL). i is a statement of
 * the batch being judged, name the prepared statement an EXECUTE in it runs. */
struct gate_ops {
	/* The text prepared statement name has in this session now, or NULL; in *escape the
	 * lexing the server read it under (dialect_settings.pg_escape_strings), when known. */
	const char *(*prepared_text)(void *ctx, const char *name, int *escape);
	/* The plan the verdict reads for pl: an EXECUTE's or FETCH's is that of what the name
	 * runs now (a reference; NULL without memory). NULL: pl itself. */
	struct mplan *(*resolve_plan)(void *ctx, struct masking *mk, struct mplan *pl);
	/* Every text name may have when statement i runs, besides the one it has now: sent and
	 * not yet answered, or defined earlier in the batch. Up to max strings, malloc'd into alt
	 * (an entry may be NULL without memory); the count. */
	int (*execute_texts)(void *ctx, int i, const char *name, char **alt, int max);
	/* The text an approver is shown for name (engine_ops.held_runs), or NULL. */
	const char *(*shown_text)(void *ctx, const char *name);
	/* For statement i's record: the text name will most likely run (malloc'd), or NULL. */
	char *(*prepared_ahead)(void *ctx, int i, const char *name);
};

/* Per session: what the gate knows of it. The engine embeds one and keeps it up to date. */
struct gate {
	struct session *s; /* its login (sess_set_login) is every statement's user and database */
	/* the session's SQL dialect and its lexing settings now (the engine follows what the
	 * server reports): every split and shape of this session's text is read under them.
	 * NULL dialect: the engine splits on its own and nothing is kept by shape */
	const struct dialect *dialect;
	const struct dialect_settings *ds;
	const struct catalog *cat;   /* masking: the session's catalog, or NULL */
	uint64_t seq;		     /* statements on record so far (the records' "seq") */
	/* relations this session created or renamed: never trusted to the catalog (a temp view
	 * shadows a table of the same name), and no shape is kept while there are any */
	char (*made)[64];
	int nmade;
	int made_overflow; /* more than GATE_MAX_MADE: every plan is unknown from then on */
	int retried;	   /* approval_mode: retry asked for requests (gate_free closes them) */
	const struct gate_ops *ops;
	void *ctx;
	/* EXECUTE's candidate text being judged (gate.c) */
	const char *cand_name, *cand_text;
};

/* A shape lookup (stmtcache.h) for a one-statement text. */
struct gate_shape {
	int shaped; /* the text has a shape this session may use */
	int cached; /* and it was kept: hit is filled */
	size_t off, len; /* where the statement is in the text (the shape's, without blanks) */
	struct stmtcache_gens gens;
	struct stmtcache_hit hit;
};

struct gate_stmt {
	/* in */
	const char *text;
	size_t len;
	struct mplan *plan;  /* its provenance plan (the engine's reference), or NULL */
	const char *execute; /* SQL EXECUTE name: judged again by each text name may run */
	const char *prepared; /* the record's prepared statement name (a Parse's), or NULL */
	const char *portal, *params_json; /* the record's (an Execute's), or NULL */
	/* what the statement does, when the engine knows it without the dialect (a protocol's
	 * own commands: Redis, MySQL's COM_INIT_DB...); NULL: the verdict reads the text */
	const struct sqlfacts *facts;
	/* out */
	enum verdict v;
	char rule[64];
	uint64_t seq; /* its record's number */
};

enum gate_outcome {
	GATE_FORWARD = 0, /* on record: forward the message */
	GATE_REFUSE = 1,  /* refuse it: sqlstate and message (and, refused unparsed, pos) */
	GATE_HOLD = 2,	  /* an approval request is open (hold_id): park the message */
};

struct gate_batch {
	/* in */
	const char *protocol;  /* simple | extended | function: the record's and the verdict's */
	const char *text;      /* the whole message's text: what an approver is shown */
	size_t len;
	const char *what;      /* the refusal's noun: "statement" (default), "function call" */
	int parse_error;       /* the grammar could not split it: one statement, judged as such */
	int may_hold;	       /* a hold may park it; otherwise a hold is refused */
	int quiet_allow;       /* an allowed statement is recorded later (when it runs) */
	struct masking *mk;    /* the masking engine its plans are by, or NULL */
	struct gate_shape *shape; /* st[0]'s shape lookup, or NULL */
	/* settings the engine read the text under beyond the dialect's (MySQL: the session's
	 * whole sql_mode), or NULL: shown to an approver with a held text, and part of what an
	 * approval_mode: retry approval matches */
	const char *reading;
	/* the database the text's unqualified names resolve in (MySQL's DATABASE()), or NULL:
	 * shown with a held text, bound like reading */
	const char *schema;
	/* parse_error: why the text could not be split (gate_split's); kind SQL_ERR_GRAMMAR is
	 * what the server itself would answer */
	struct sql_error err;
	struct gate_stmt *st;
	int n;
	/* in for gate_commit, out of gate_judge */
	enum verdict v;	   /* the batch's: deny over hold over allow */
	char rule[64];	   /* the deciding statement's rule */
	char message[256]; /* what the agent is told on deny, or why it is held */
	/* out of gate_commit */
	const char *sqlstate; /* GATE_REFUSE */
	/* GATE_REFUSE of text the grammar rejects (the policy's on_parse_error: deny): answer
	 * with err's fields (sqlstate, message, detail, hint, position), as the server would; the
	 * records say "refused": "unparsed" */
	int unparsed;
	char hold_id[32];     /* GATE_HOLD */
};

void gate_init(struct gate *g, struct session *s, const struct gate_ops *ops, void *ctx);
void gate_free(struct gate *g);

/* Cut a message's text into statements with the session's dialect (dialect.h: split). 0, or
 * -1 with out->parse_error (one statement, the whole text) and err saying why. */
int gate_split(struct gate *g, const char *sql, size_t len, struct dialect_split *out,
	       struct sql_error *err);

/* Look sql's shape up (one Query's or Parse's text; protocol 'Q' or 'P'): 1 with sh filled,
 * 0 when it has none this session may use. */
int gate_shape_find(struct gate *g, const struct masking *mk, char protocol, const char *sql,
		    size_t len, struct gate_shape *sh);

/* The provenance plan of one statement, under the relations this session made (a reference,
 * NULL without memory). A statement that creates a relation adds it to g->made. */
struct mplan *gate_plan(struct gate *g, struct masking *mk, const char *sql, size_t len);

/* Judge every statement of b (their v and rule) and the batch (v, rule, message). */
void gate_judge(struct gate *g, struct gate_batch *b);
/* Act on b->v: open the hold, or put every statement on record; the outcome (< 0: out of
 * memory, the session should end). Between gate_judge and gate_commit an engine may make the
 * verdict stricter (e.g. deny what it cannot mask); a replay of an approved hold sets v to
 * VERDICT_ALLOW and calls gate_commit alone. */
int gate_commit(struct gate *g, struct gate_batch *b);
/* gate_judge, then gate_commit. */
int gate_run(struct gate *g, struct gate_batch *b);

/* Put a statement refused as too large on record: a prefix of its text, its whole length and
 * its SHA-256 (limit: the policy setting it broke). 0, or -1 when the record failed (it is
 * refused either way). */
int gate_record_oversized(struct gate *g, const char *protocol, const char *prepared,
			  const char *prefix, size_t plen, size_t total, const char *sha256,
			  const char *limit);

#endif
