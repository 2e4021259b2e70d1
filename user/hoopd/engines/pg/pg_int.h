/*
 * The PostgreSQL engine's private state and what its pieces share (pg.c and pg_*.c; other
 * modules see only pg.h): the session's struct pg, its queue of requests the server has yet to
 * answer (struct pend, with a struct track per statement whose results an entry carries), the
 * names the server has (struct named), and the functions one piece calls in another.
 */
#ifndef HOOP_PG_INT_H
#define HOOP_PG_INT_H

#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "gate.h"
#include "mask_live.h"
#include "pg.h"
#include "pgwire.h"

/* A Query or Parse this much over limits.statement_bytes is not buffered at all: its bytes
 * are hashed and dropped as they arrive (struct big), then it is refused. Below, it is framed
 * whole and refused by check_size (Parse carries a name and parameter types beside its text). */
#define PG_BIG_SLACK (300 * 1024)

enum phase {
	PH_STARTUP,
	PH_SERVER_TLS, /* waiting for the server's answer to our SSLRequest, then its handshake */
	PH_AUTH,
	PH_READY,
	PH_CANCEL, /* a CancelRequest was passed on; nothing more is expected */
};

struct big;
struct query;

struct track {
	uint64_t seq;
	int64_t start_us;
	uint64_t rows, bytes;
	/* masking: the statement's provenance plan and, once its columns are known, the plan
	 * per column (mr). rd: the RowDescription of the portal an Execute runs. */
	struct masking *mk;
	struct mplan *plan;
	struct mask_result *mr;
	uint8_t *rd;
	size_t rdlen;
	/* the plan and the portal's text are taken when the server answers (pg_cur_track_r) */
	int resolved;
	/* a statement that defines or drops a name (PREPARE, DECLARE, DEALLOCATE, CLOSE,
	 * DISCARD): its text, applied when its command tag says it ran, and (a Query's) what
	 * its parse tree says of names (struct dialect_names) */
	char *text;
	struct dialect_names *ns;
};

struct pend {
	char kind;	/* the frontend message: Q P B D E C S F */
	int poisoned;	/* hoopd replaced it: the server's error becomes `deny` */
	int err_seen;
	char sqlstate[6];
	char *deny;	/* message for the agent */
	/* ...and, for text the grammar rejects, what the server would have said besides */
	char *detail, *hint;
	int position;
	struct track *st; /* statements whose results this entry carries */
	int nst, cur;
	char dkind;    /* Describe and Close: 'S' or 'P' */
	char *name;    /* Parse: statement; Bind: portal; Describe, Execute, Close: the target */
	int internal;  /* hoopd sent it (a Describe for masking): the agent sees no answer */
	int copy_cand; /* may start COPY FROM STDIN (see copy_wait) */
	int may_copy;  /* Parse: its statement may be a COPY FROM STDIN (or EXECUTE one) */
	/* pending definitions, recorded when the server acknowledges this entry */
	char *stmt;	    /* Bind: the statement bound */
	char *text;	    /* Parse: the statement's text */
	char *params;	    /* Bind: parameters as JSON */
	struct mplan *plan; /* Parse: the statement's plan (built by the engine of plan_gen) */
	uint64_t plan_gen;
	struct pend *next;
};

struct named {
	char *name;
	char *text;   /* prepared: its text; portal: its statement's text; cursor: the DECLARE */
	char *params; /* portal: parameters as JSON */
	struct mplan *plan; /* masking: the statement's provenance (built when first needed) */
	uint64_t plan_gen;  /* the masking engine plan was built by: another one re-plans */
	uint8_t *rd;	    /* portal: its RowDescription, once a Describe answered */
	size_t rdlen;
	int holdable;	    /* cursor WITH HOLD: outlives its transaction */
	int lex_escape;	    /* standard_conforming_strings was off when the server read text:
			     * every later reading of text (plans, facts, names) lexes so */
	int this_xact;	    /* made in the transaction now open */
	struct named *next;
};

struct pg {
	struct session *s;
	enum phase phase;
	uint8_t tx; /* transaction status from the last ReadyForQuery */
	struct pend *head, *tail;
	int npend;
	struct named *preps, *portals;
	/* the statement gate's view of this session: statements on record (g.seq), relations
	 * it made, its catalog */
	struct gate g;
	struct query *q; /* the Query being judged, for the gate's callbacks */
	char user[128], database[128], app[128];
	char *params_json;
	uint8_t *startup; /* the startup message, held while we negotiate TLS upstream */
	size_t startup_len;
	int32_t backend_pid, backend_key;
	int agent_tls_requested;
	/* The server's input states (see the top of pg.c). skip: an extended-protocol
	 * message failed and no Sync has been sent since; copy_in: the server is in COPY FROM
	 * STDIN and the agent has not sent CopyDone or CopyFail yet; copy_wait: the entry of a
	 * statement that may start a COPY FROM STDIN, whose answer is awaited before hoopd reads
	 * more from the agent. */
	int skip;
	int copy_in;
	struct pend *copy_wait;
	int xact_failed; /* an error or ROLLBACK since the last ReadyForQuery 'I' */
	struct named *described; /* portals Described since their last Bind, as forwarded */
	int ndescribed;
	int sasl;	    /* the server asked for SASL */
	int sasl_client_first; /* the agent's SASLInitialResponse was looked at */
	/* a message parked for a verdict (hold) */
	uint8_t *held;
	size_t held_len;
	const char *end_reason;
	/* masking */
	struct catbox *cat;
	int withhold;	       /* a result could not be masked: drop all but Z, N, A, S until Z */
	struct big *big;       /* an oversized Query or Parse being read past (PG_BIG_SLACK) */
	/* how the server lexes this session's text (its ParameterStatus): every parse of the
	 * session's statements runs under it (the gate's dialect settings, and pglex_set
	 * around the engine's own parses) */
	struct dialect_settings lex;
};

/* One Query's statements as the gate sees them, and what the engine keeps of them. */
struct query {
	const char *sql;
	size_t len;
	struct dialect_split *sp;
	struct sql_error err; /* why it could not be split */
	struct gate_stmt *st;
	struct dialect_names *ns; /* what each does to the session's names */
	struct masking *mk;
	struct gate_shape sh;
	int copy_cand; /* one may start a COPY FROM STDIN */
};

/* The database's catalog that masking reads columns by: NULL until read (pg.c
 * pg_catalog_ready), and when it could not be read. */
static inline const struct catalog *pg_cat(const struct pg *p)
{
	return p->cat ? p->cat->cat : NULL;
}

/* What one piece calls in another, by the file that defines it. */

/* pg.c */
int64_t pg_now_us(void);
struct pend *pg_pend_push(struct pg *p, char kind, int nst);
void pg_pend_pop(struct pg *p);
struct track *pg_cur_track(struct pg *p);
int pg_protocol_violation(struct pg *p, const char *dir, const char *why);
int pg_fwd(struct buf *out, const struct pgw_msg *m);

/* pg_front.c */
int pg_refuse(struct pg *p, char kind, const char *stmt_name, const char *sqlstate, const char *msg,
	      struct pend **out);
const struct policy_limits *pg_limits(void);
void pg_big_free(struct big *b);
int pg_big_start(struct pg *p, struct buf *in, uint32_t len);
int pg_big_take(struct pg *p, struct buf *in);
int pg_run_held_query(struct pg *p, const struct pgw_msg *m);
int pg_agent_ready(struct pg *p, const struct pgw_msg *m);

/* pg_back.c */
int pg_server_auth(struct pg *p, const struct pgw_msg *m);
int pg_server_ready(struct pg *p, const struct pgw_msg *m);

/* pg_rows.c */
int pg_to_agent(struct pg *p, const struct pgw_msg *m);
struct track *pg_cur_track_r(struct pg *p);
int pg_server_rows(struct pg *p, const struct pgw_msg *m);
int pg_server_rowdesc(struct pg *p, const struct pgw_msg *m);
int pg_mask_notice(struct pg *p, const struct pgw_msg *m);
int pg_mask_notification(struct pg *p, const struct pgw_msg *m);

/* pg_names.c */
struct named *pg_named_find(struct named *l, const char *name);
void pg_named_free(struct named *n);
struct named *pg_named_set(struct named **l, const char *name, const char *text, char *params,
			   struct mplan *plan, uint64_t plan_gen);
void pg_named_drop(struct named **l, const char *name);
void pg_named_prune(struct named **l, int (*keep)(const struct named *n));
struct mplan *pg_named_plan(struct pg *p, struct masking *mk, struct named *n);
struct mplan *pg_plan_indirect(struct pg *p, struct masking *mk, struct mplan *pl, int depth);
int pg_may_name(const char *s, size_t n);
int pg_may_copy_in(const char *s, size_t n);
void pg_sql_names(const char *stmt, size_t len, struct dialect_names *ns);
void pg_names_done(struct pg *p, const char *text, const char *tag, struct mplan *plan,
		   uint64_t gen);
const char *pg_named_text(struct pg *p, int cursor, const char *name);
int pg_text_may_copy_in(struct pg *p, const char *text, size_t len, int depth);
extern const struct gate_ops pg_gate_ops;

/* pg_held.c */
int pg_fail_held(void *st, const char *sqlstate, const char *message);
int pg_cancel_held(void *st);
int pg_resume_held(void *st, enum verdict v, const char *message);
char *pg_held_runs(void *st, const char *text, size_t len);

#endif
