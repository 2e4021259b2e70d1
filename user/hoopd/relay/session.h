/*
 * One agent connection and its upstream leg, as the relay and the protocol engines see it.
 *
 * A session is two parts. `struct agent` says who the agent is and where it meant to go: the
 * relay fills it once at accept (identity.c) and the engine adds the login once
 * (sess_set_login); after that it is read-only, and whoever only needs to know who (the
 * verdict, approvals, the records in record.c) reads it through a `const struct agent *`
 * (sess_agent). Everything else is the relay's (relay.c): sockets, TLS, buffers, back-pressure,
 * the durability barrier, the catalog wait. An engine (engine.h) only reads `in` buffers and
 * writes `out` buffers, and asks the relay for TLS, holds, closes and records through the
 * sess_* calls below.
 */
#ifndef HOOP_SESSION_H
#define HOOP_SESSION_H

#include <openssl/ssl.h>
#include <stdint.h>
#include <sys/socket.h>

#include "buf.h"
#include "catalog_fetch.h"
#include "hoop_bpf.h"
#include "identity.h"
#include "loop.h"

struct listener;
struct engine_ops;
struct catbox;
struct ev_session_start;

struct side {
	int fd;
	SSL *ssl;
	int handshaking; /* TLS handshake in progress */
	int ssl_wants_write;
	struct loop_watch w;
	struct buf in, out;
	int eof;  /* the peer closed its sending side */
	int shut; /* we passed EOF on with shutdown(SHUT_WR) */
	int readable; /* epoll said so, and no read since found the socket empty */
	int unwatched; /* done both ways (EOF read and passed on): out of epoll, whose HUP
			* would otherwise wake the loop for it again and again */
};

struct cg_use; /* relay.c: what one agent cgroup holds */

struct session {
	union {
		struct {
			AGENT_MEMBERS
		};
		struct agent agent;
	};
	struct listener *ln;
	struct side a; /* agent */
	struct side s; /* server (database) */
	int connecting;
	int dead;
	int closing; /* flush what is queued for the agent, then close */
	char close_why[128];
	int held;    /* the engine parked agent input */
	int more;    /* the engine stopped with complete messages left, its share of this loop
		      * round spent: the relay calls it again after the other sessions' turn */
	int yielded; /* ...and has it on its list for that */
	int starved; /* stopped reading the agent: its cgroup's or hoopd's buffer budget is spent */
	int accel;
	int peeked;    /* the agent's first byte was looked at (direct TLS detection) */
	int wait_sync; /* audit fsync durability: forwarding waits for the group sync */
	uint64_t need_seq; /* ...until the records up to this one are durable (barrier.h) */
	uint64_t passed_seq; /* the mark its last bytes to the database passed */
	size_t out_seen;   /* s.out's length when the relay last looked (what is new since) */
	struct cat_waiter cat_wait; /* masking: waiting for this database's catalog */
	int recorded;		    /* its session_start is in the trail: session_end goes too */
	const struct engine_ops *eng;
	void *est;
	uint64_t bytes_up, bytes_down;
	uint64_t consumed, flushed; /* bytes engines took in and the relay sent: progress */
	struct cg_use *cgu;	    /* the attached cgroup (cap_cgid): sessions, buffered bytes */
	size_t counted;		    /* a.in + s.in bytes in cgu's and hoopd's buffered totals */
	struct session *prev, *next, *next_dead, *next_yield;
};

/* Who the agent is, for readers. */
static inline const struct agent *sess_agent(const struct session *s)
{
	return &s->agent;
}

/* Close the session once what is queued for the agent is sent. why goes to the log. */
void sess_close(struct session *s, const char *why);
/* Begin a TLS handshake on the agent side (as server) or the database side (as client). */
int sess_tls_agent(struct session *s);
int sess_tls_server(struct session *s, SSL_CTX *ctx, const char *sni);
/* Held sessions read nothing more from the agent until resumed. */
void sess_hold(struct session *s);
void sess_resume(struct session *s);
/* Find a live session by predicate (for CancelRequest routing). */
struct session *sess_find(int (*pred)(struct session *s, void *arg), void *arg);

/* The engine's login: the database user and database the agent logs in as, for every record
 * after (a statement record's "who"). Once: later calls change nothing. */
void sess_set_login(struct session *s, const char *user, const char *database);
/* A new login on the same session (MySQL's COM_CHANGE_USER), asked for: its "change_user"
 * record, written before the request goes to the server (0, or a negative errno: then it must
 * not go). */
int sess_record_change_user(struct session *s, const char *user, const char *database,
			    const char *plugin);
/* ...and granted by the server: the one change to the login after sess_set_login. Every
 * statement record after it names the user and database it ran as. */
void sess_change_login(struct session *s, const char *user, const char *database);
/* The session begins for the record: the relay writes its session_start with the agent's
 * identity, the login, and what the engine adds in e (application name, parameters, TLS).
 * Engines with a login (engine_ops.login) call it when they have it; for the others the
 * relay writes it at accept. Once; its session_end follows when the session ends. */
void sess_record_start(struct session *s, const struct ev_session_start *e);


/* The catalog for the session's database (catalog_fetch.h's catalog_get, with the session's
 * destination): 0 with *out set (a reference, or NULL when there is none to be had), or 1
 * while the first load runs (the session is resumed with sess_resume() when it is done or the
 * wait deadline passes). */
int catalog_for(struct session *s, const char *db_user, const char *database,
		struct catbox **out);
/* A statement named a relation the session's catalog lacks: reload it soon. */
void catalog_stale(struct session *s, const char *database);

#endif
