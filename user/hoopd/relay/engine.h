/*
 * The interface between the relay and the protocol engines (PostgreSQL now; MySQL and Redis
 * later, as peers). An engine turns the bytes of one session into events and verdicts. It sees
 * only buffers: `in` holds what arrived from one side; it appends what each side should receive
 * to s->a.out (to the agent) or s->s.out (to the database) and consumes what it handled. It may
 * leave an incomplete message in `in`; the relay calls it again when more arrives.
 */
#ifndef HOOP_ENGINE_H
#define HOOP_ENGINE_H

#include "json.h"
#include "session.h"
#include "verdict.h"

struct ev_session_end;

struct engine_ops {
	const char *name;
	/* Per-session state; NULL on failure (the session closes). */
	void *(*open)(struct session *s);
	void (*close)(void *st, const char *why);
	/* The protocol has a login: the engine calls sess_set_login and sess_record_start when it
	 * has it, and the session_start record waits for that. 0: the relay writes it at accept
	 * (an opaque relay has no login to wait for). */
	int login;
	/* The session ends: add what the engine knows to its session_end record (statements,
	 * a more precise reason than the relay's). Called before close. May be NULL. */
	void (*end_info)(void *st, struct ev_session_end *e);
	/* Bytes from the agent / the database. Return 0, or -1 after sess_close(). */
	int (*agent_data)(void *st, struct buf *in);
	int (*server_data)(void *st, struct buf *in);
	/* The upstream TCP connection is up (before any TLS). */
	void (*server_connected)(void *st);
	/* A TLS handshake the engine asked for finished (ok = 1) or failed. */
	void (*tls_done)(void *st, int agent_side, int ok);
	/* The agent's first byte is 0x16 (a TLS ClientHello, no negotiation first): return 0 to
	 * have the relay start TLS right away, -1 to leave it to agent_data. May be NULL. */
	int (*direct_tls)(void *st);
	/* Lines for `hoopctl status` about this session (may be NULL). */
	void (*status)(void *st, struct jbuf *j);
	/* The most the relay may hold of the agent's unconsumed bytes now (e.g. before login:
	 * what authentication needs); 0 for the relay's own bound. May be NULL. */
	size_t (*agent_cap)(void *st);
	/* Does in (what agent_data / server_data left) begin with an unfinished message? When
	 * its sender has hung up it never will be finished: the relay ends the session. May be
	 * NULL (the engine always consumes everything). */
	int (*partial)(void *st, const struct buf *in, int agent_side);
	/* A connection refused before any session began (its cgroup has too many open): append
	 * to out what a client of this protocol reads as the server's refusal to start, with
	 * sqlstate and message. 0, or -1. May be NULL (the connection is closed unanswered). */
	int (*refuse_conn)(struct buf *out, const char *sqlstate, const char *message);

	/*
	 * Statements held for approval (hold_ops in verdict.h: the engine parked them when the
	 * gate said hold). approvals.c decides them through these, knowing no engine. NULL in an
	 * engine that never holds. Each returns 0, or -1 when there is no held statement or the
	 * session failed.
	 */
	/* Decided: run it (VERDICT_ALLOW, through the engine's own replay) or refuse it with
	 * message (VERDICT_DENY). */
	int (*resume_held)(void *st, enum verdict v, const char *message);
	/* Refuse it with sqlstate and message (no decision in time: 57014; hoopd stops: 57P01). */
	int (*fail_held)(void *st, const char *sqlstate, const char *message);
	/* The client cancelled it: refuse it as the server would (57014) and close its request. */
	int (*cancel_held)(void *st);
	/* What the held text runs that its own words do not show (an EXECUTE's prepared text, a
	 * FETCH's cursor), as this session recorded it: a JSON array of {"what","name","text"} for
	 * the approver (malloc'd), or NULL when there is none. */
	char *(*held_runs)(void *st, const char *text, size_t len);
};

extern const struct engine_ops tcp_engine;
extern const struct engine_ops pg_engine;
extern const struct engine_ops mysql_engine;

/* The engine for a target's protocol (enum hoop_protocol); engines.c is the table. */
const struct engine_ops *engine_for(int protocol);

#endif
