/*
 * What the two MySQL engine fuzz targets (fuzz_mysql_agent.c, fuzz_mysql_server.c) share: the
 * relay reduced to the sess_* and tls_* calls the engine makes, the audit trail reduced to a
 * check of every record (statement records kept for the targets to match against what reaches
 * the server), approvals as switches, a session fixture, the framing check of every byte the
 * engine queues for either peer, a MySQL client's reading of everything the agent gets, the
 * masking policy of the targets, and the reader that splits one input into data and
 * decisions.
 */
#ifndef HOOP_MY_FUZZ_H
#define HOOP_MY_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "fuzz_require.h"
#include "mysqllex.h"
#include "mywire.h"
#include "session.h"
#include "tls.h"
#include "verdict.h"

/*
 * Bugs in user/hoopd/engines/mysql these targets found; their reproducers are the crash-*
 * seeds of fuzz/corpus/mysql_agent and mysql_server.
 * Fixed (613ca52), checked as any other property now:
 *  1. An OK packet hoopd could not read was passed on to the agent (the answer to a command,
 *     the OK ending rows under CLIENT_DEPRECATE_EOF, the login's OK).
 *  2. An ERR packet that does not read was passed on: the server's refusal in place of the
 *     greeting whatever its length, an ERR whose '#' promises a SQLSTATE it does not hold.
 *  3. hoopd's own ERR refusing the login or an authentication packet was misnumbered (0 from
 *     my_violation before the first command, 1 from refuse_errno whatever it answered): a
 *     client reads "packets out of order" in place of hoopd's message.
 *  4. The answer to COM_SET_OPTION was passed on unread (any one packet).
 *  5. Where hoopd counted definitions without reading them (a result's column definitions
 *     while masking is off, COM_STMT_PREPARE's), an ERR passed as one: the client's answer
 *     ended there, hoopd's did not, and the server's next packets reached the agent as the
 *     answer to nothing.
 * Fixed (666b924, 3f475f3); `make fuzz FUZZ_KNOWN_BUGS=1` steers around these, for bisecting
 * older trees (the default, 0, fuzzes straight at them):
 *  6. Masking matched the rules against org_table/org_name as the server spells them: a
 *     column declared SSN went unmasked. Steer: the marker check names patients.ssn in lower
 *     case only.
 *  7. hoopd's ERR for a packet it cannot take (too large, a continuation out of sequence)
 *     was numbered as the last answer left m->out_seq. Steer: no ERR ending a session has
 *     its number checked.
 *  8. COM_FIELD_LIST's closing OK (CLIENT_DEPRECATE_EOF) was passed on unread. Steer: the
 *     client does not read it.
 *  9. An ERR from the server during authentication was passed on unread, a one-byte "\xff"
 *     too. Steer: an ERR during authentication is not checked.
 */
#ifndef FZ_KNOWN_BUGS
#define FZ_KNOWN_BUGS 0
#endif

/*
 * One input, read from both ends (as fuzz/pg_fuzz.h's): protocol bytes from the front,
 * decisions one byte at a time from the back, 0 once used up.
 */
struct mf_in {
	const uint8_t *p;
	size_t n;
};

uint8_t mf_pick(struct mf_in *in);
/* How many bytes the next chunk takes, by one decision: 1-8, 1-64, up to 4 KiB, or all. */
size_t mf_chunk(struct mf_in *in);
/* Up to max bytes from the front; returns how many, *out points at them. */
size_t mf_take(struct mf_in *in, size_t max, const uint8_t **out);

/* The relay and the approvals around the engine, steered by the targets. */
struct mf_stubs {
	int agent_tls;		    /* tls_agent_enabled() */
	int agent_tls_result;	    /* what sess_tls_agent returns */
	enum upstream_tls upstream; /* tls_upstream_mode() */
	int server_tls_result;	    /* what sess_tls_server returns */
	int audit_fail;		    /* audit_append fails, as on a full disk */
	int hold_open_result;	    /* what hold_ops->open returns (no approval request) */
	int holds_forgotten;	    /* hold_ops->forget calls */
	int agent_tls_started;	    /* sess_tls_agent calls that returned 0, not yet followed */
	int server_tls_started;	    /* sess_tls_server calls that returned 0, not yet followed */
	int server_tls_refused;	    /* sess_tls_server calls that failed */
};
extern struct mf_stubs mf;

/* The relay would hold a real SSL object; the engine only tests the pointer for NULL. */
extern SSL *const mf_fake_ssl;

/* One session and its engine state. */
struct mf_sess {
	struct session s;
	void *e;
};

/* The session on the fake sockets: s.s.fd is where hoopd writes its own SSLRequest to the
 * server (mf_server_socket_drain reads it). */
void mf_open(struct mf_sess *f, const char *id);
void mf_close(struct mf_sess *f);

/* The bytes hoopd sent on the server socket itself (its SSLRequest before TLS): into out, up
 * to cap; how many. */
size_t mf_server_socket_drain(uint8_t *out, size_t cap);

/*
 * What the engine queued for one peer: whole packets (3-byte length, sequence id; a frame of
 * 0xffffff bytes continues in the next, numbered one more), nothing partial at the end. Each
 * logical packet (its frames joined) goes to fn with the first frame's sequence id. Drains b;
 * returns the number of packets.
 */
int mf_packets(struct buf *b, void (*fn)(void *arg, const uint8_t *p, size_t len, uint8_t seq),
	       void *arg);

/* ---- a MySQL client's reading of what the agent gets ---- */

#define MF_MARKER "123-45-6789" /* the ssn of patients' rows: masked, never seen */

enum mf_want {
	MW_OK = 1, /* OK or ERR */
	MW_ONE,	   /* any one packet (COM_STATISTICS) */
	MW_EOF,	   /* EOF (or its OK form) or ERR (COM_SET_OPTION) */
	MW_RESULT, /* OK, ERR or result sets, more results while the status says so */
	MW_PREPARE,
	MW_FIELDS,
	MW_FETCH, /* COM_STMT_FETCH: binary rows of the statement's cursor, EOF (or its OK form) */
};

struct mf_answer {
	uint8_t want;
	uint8_t binary; /* rows in the binary protocol (COM_STMT_EXECUTE) */
	/* the statement reads patients: no value of a column that says it is patients.ssn, or
	 * that is computed, may carry the marker */
	uint8_t reads_phi;
	uint32_t stmt; /* COM_STMT_EXECUTE, COM_STMT_FETCH: the statement id */
};

/* A cursor the client saw the server open (a binary result whose column definitions' EOF, or
 * the OK in its place, says SERVER_STATUS_CURSOR_EXISTS): its columns, for its fetches. */
struct mf_cursor {
	uint32_t id;
	uint64_t ncols;
	uint8_t *types, *phi;
	uint16_t *flags;
};

#define MF_MAX_PENDING 256
#define MF_MAX_COLS    4096

enum mf_client_phase { MC_GREETING = 0, MC_LOGIN, MC_AUTH, MC_READY, MC_GONE };

struct mf_client {
	enum mf_client_phase phase;
	uint32_t srv_caps, caps;
	int deprecate_eof;
	int tls;      /* the agent's leg is TLS: its login is numbered after the SSLRequest */
	int seq_sane; /* the agent numbered its login and authentication packets as clients do */
	/* trusted: the server is the harness's model, so what hoopd relays as it came (the
	 * greeting, authentication, COM_FIELD_LIST's and COM_STMT_PREPARE's definitions) is
	 * well-formed and numbered right too; strict: a result's column definitions and rows
	 * must be well-formed (they are when the server is the model, or when masking reads
	 * them); marker: check rows for MF_MARKER (masking is on) */
	int trusted, strict, marker;
	struct mf_answer q[MF_MAX_PENDING];
	unsigned qh, qn;
	/* the answer being read */
	int in_answer;
	uint8_t next_seq;
	int rs; /* enum: first, column definitions, their EOF, rows */
	uint64_t ncols, coli;
	uint32_t prep_left; /* definitions after a PREPARE's OK still to come */
	uint32_t prep_k;    /* ...and already come */
	uint16_t prep_np, prep_nc;
	uint8_t *types; /* the result's column types (ncols) */
	uint16_t *flags;
	uint8_t *phi;		   /* the column is patients.ssn by its definition, or computed */
	struct mf_cursor *cursors; /* open, as the client reads them */
	int ncursors;
	/* what the last PREPARE's OK said */
	uint32_t stmt_id;
	uint16_t stmt_params;
	int have_stmt;
	/* counts */
	unsigned answers, rows, errs;
	int got_greeting, logged_in;
	int quit; /* COM_QUIT sent */
	/* hoopd refused a command it could not take: its ERR is the session's last packet,
	 * numbered refused_seq when the agent numbered the command as clients do */
	int refused, refused_sane;
	uint8_t refused_seq;
	unsigned auth_turns; /* authentication packets that ask the agent for one */
};

/* A fresh client; trusted, strict and marker as above. */
void mf_client_init(struct mf_client *c, int trusted, int strict, int marker);
void mf_client_free(struct mf_client *c);
/* A packet the agent sent that hoopd took (consumed from its buffer). */
void mf_client_sent(struct mf_client *c, const uint8_t *p, size_t len, uint8_t seq);
/* Everything hoopd queued for the agent: framed, then read as the client reads it. closing:
 * the session is closing (a last ERR may come with no command in flight). Drains b. */
void mf_client_read(struct mf_client *c, struct buf *b, int closing);
/* Every answer the client waits for has come in full. */
int mf_client_idle(const struct mf_client *c);

/* The bytes of consumed agent input, fed to mf_client_sent: call mf_agent_mark before
 * agent_data and mf_agent_taken after it. */
struct mf_taken {
	uint8_t *copy;
	size_t len;
};
void mf_agent_mark(struct mf_taken *t, const struct buf *in);
void mf_agent_taken(struct mf_taken *t, const struct buf *in, struct mf_client *c, int closing);

/* ---- the audit trail ---- */

/* Every statement record appended (and accepted) since the last mf_records_clear. */
struct mf_record {
	char verdict[12];
	char *text; /* as the record says it (JSON-decoded) */
	size_t len;
	char *prepared; /* or NULL */
};
struct mf_events {
	int records, failed; /* appended; of those, refused because of mf.audit_fail */
	int protocol_error_agent, protocol_error_database;
	int sessions_started;
	struct mf_record *st;
	int nst, capst;
};
extern struct mf_events mf_events;
void mf_records_clear(void);

/* What a statement record says as its "text" for these bytes: cut at a NUL, written as a JSON
 * string and read back (malloc'd, *n its length). */
char *mf_as_recorded(const char *p, size_t len, size_t *n);

/* ---- policy ---- */

/* Masking on (the rule: patients.ssn partial, keep the last 4; unknown provenance redacted;
 * no detectors) or off. */
void mf_masking(int on);

/* The engine's lexing settings for a server version string and an sql_mode, as hoopd reads
 * them (mysql.c server_version, my_settings_row). */
void mf_settings(struct myl_settings *st, const char *version, const char *sql_mode,
		 const char *charset);

/* MF_TRACE in the environment: every packet printed (mf_dump), for reading an input. */
extern int mf_trace;
void mf_dump(const char *what, const uint8_t *p, size_t len, uint8_t seq);

/* One-time setup: limits, logging, JSON checker, sockets, approvals. */
void mf_init(void);

#endif
