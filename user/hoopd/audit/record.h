/*
 * Session events: what the protocol engines report, one struct per kind, each written as one
 * record of the audit trail (audit_store.h) with "ts" (RFC 3339, UTC, microseconds), "kind" and
 * "session". docs/events.md describes every field; docs/audit.md the trail around them.
 */
#ifndef HOOP_EVENTS_H
#define HOOP_EVENTS_H

#include <stddef.h>
#include <stdint.h>

#include "coldesc.h"

struct agent;

struct audit_cfg;
int events_open(const char *state_dir, const struct audit_cfg *cfg);
void events_close(void);
/* Write what waits to be recorded (a result's columns, see ev_columns): at the end of every
 * loop round, and before any record written other than through these events. */
void events_flush(void);

/*
 * kind "session_start", written by the relay for every session (sess_record_start): who the
 * agent is (the BPF stash, /proc, its attachment), where it went, the target and its protocol;
 * for an engine with a login, the login (the agent's user and database, from sess_set_login)
 * and what the engine adds here. e is NULL for engines without a login (opaque tcp).
 */
struct ev_session_start {
	const char *application_name;
	const char *params_json; /* every startup parameter as a JSON object */
	int agent_tls;		 /* the agent leg is TLS (terminated by hoopd) */
	int server_tls;
};
void ev_session_start(const struct agent *a, const struct ev_session_start *e);

/* kind "session_end", written by the relay for every session whose session_start was: the
 * engine may say more (engine_ops.end_info). */
struct ev_session_end {
	const char *reason;
	uint64_t statements;
	uint64_t bytes_agent_to_db, bytes_db_to_agent;
	int64_t duration_ms;
};
void ev_session_end(const struct agent *a, const struct ev_session_end *e);

/* kind "statement": emitted before the statement is forwarded. Returns 0, or a negative errno
 * when the record could not be written: then the statement must not be forwarded. The session's
 * first statement record in each audit segment also says who (its "who" object), with the
 * session's login (sess_set_login) where db_user and database are NULL. */
struct ev_statement {
	uint64_t seq;	      /* statement number within the session, from 1 */
	const char *protocol; /* simple | extended | function | prepare */
	const char *text;
	size_t text_len;
	const char *prepared; /* prepared statement name (Parse/Execute, SQL EXECUTE), or NULL */
	const char *prepared_text; /* SQL EXECUTE: the text its PREPARE recorded */
	const char *portal;
	const char *params_json; /* JSON array of parameters (strings, null, or {"binary": hex}) */
	const char *verdict;	 /* allow | deny | hold */
	const char *reason;	 /* why (rule name or message), or NULL */
	int parse_error;	 /* PostgreSQL's grammar could not parse it */
	/* "unparsed": refused with the grammar's own error (what the server would say), not
	 * judged by a rule; NULL otherwise */
	const char *refused;
	/* approval_mode: retry: the approval request the statement was refused for, or NULL */
	const char *approval;
	const char *db_user, *database; /* the session's, for "who" */
	/* text is only a prefix of a longer one (refused as too large): its whole length and
	 * SHA-256 (hex), so the record stays small and still names exactly what was sent */
	uint64_t text_bytes;
	const char *text_sha256;
};
int ev_statement(const struct agent *a, const struct ev_statement *e);


/* kind "change_user": the agent asks for a new login on its session (MySQL's
 * COM_CHANGE_USER), written before the request goes to the server: the user, database and
 * auth plugin asked for, and the login until then. The server's refusal follows as an
 * "error" record; after its OK, statement records carry "db_user" and "database". Returns 0,
 * or a negative errno (the request must not go). */
int ev_change_user(const struct agent *a, const char *user, const char *database,
		   const char *plugin);

/* The columns of a statement's result (PostgreSQL's RowDescription, MySQL's column
 * definitions): its "columns" go into the statement's complete record when that is recorded
 * next; otherwise into a record of kind "result_columns". */
void ev_columns(const struct agent *a, uint64_t seq, const struct col_desc *c, int n);

/* kind "complete": CommandComplete (or EmptyQuery / PortalSuspended) of a statement. */
struct ev_complete {
	uint64_t seq;
	const char *tag; /* e.g. "SELECT 3", "INSERT 0 1", "EMPTY", "SUSPENDED" */
	uint64_t rows, bytes;
	int64_t duration_us;
	/* masking: cells masked, as a JSON object {"columns": {"patients.ssn": N, ...},
	 * "detectors": {"us_ssn": N, ...}}; NULL when nothing was masked */
	const char *masked_json;
};
void ev_complete(const struct agent *a, const struct ev_complete *e);

/* kind "error": an ErrorResponse, from the server or synthesized by hoopd. */
struct ev_error {
	uint64_t seq; /* 0 when not tied to a statement */
	const char *severity, *sqlstate, *message;
	int from_hoopd;
};
void ev_error(const struct agent *a, const struct ev_error *e);

/* kind "connection_refused": an agent connection refused before any session began (e.g. its
 * cgroup is at limits.connections_per_cgroup); who it was, and why. */
void ev_conn_refused(const struct agent *a, const char *sqlstate, const char *message);

/* kind "protocol_error": malformed or oversized input; the session is closed. */
void ev_protocol_error(const struct agent *a, const char *direction, const char *message);

/* kind "cancel": a CancelRequest and where it went. */
void ev_cancel(const struct agent *a, const char *outcome, int backend_pid);

#endif
