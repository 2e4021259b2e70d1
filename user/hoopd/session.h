/*
 * One agent connection and its upstream leg, as the relay and the protocol engines see it.
 * The relay (relay.c) owns sockets, TLS and buffers; an engine (engine.h) only reads `in`
 * buffers and writes `out` buffers, and asks the relay for TLS, holds and closes through the
 * sess_* calls below.
 */
#ifndef HOOP_SESSION_H
#define HOOP_SESSION_H

#include <openssl/ssl.h>
#include <stdint.h>
#include <sys/socket.h>

#include "buf.h"
#include "hoop_bpf.h"
#include "loop.h"

struct listener;
struct engine_ops;

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
	char id[20];
	char peer[64]; /* the agent's address as hoopd sees it */
	char dst[64];  /* where the agent meant to go */
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
	uint64_t need_seq; /* ...until the records up to this one are durable */
	size_t out_seen;   /* s.out's length when the relay last looked (what is new since) */
	void *cat_wait; /* masking: waiting for this database's catalog (catalog_fetch.c) */
	const struct engine_ops *eng;
	void *est;
	struct hoop_origin o;
	char exe[256];
	char cgroup[512];
	char owner[256];
	/* The attached cgroup the connect-time cgroup falls under (0: none found, e.g. the leaf
	 * was removed before accept; such sessions share one budget). Per-cgroup caps count
	 * against it: the hook covers every descendant, which the agent can create at will. */
	uint64_t cap_cgid;
	char labels_json[512];
	char target[64];
	int protocol;
	int64_t started_ms;
	uint64_t bytes_up, bytes_down;
	uint64_t consumed, flushed; /* bytes engines took in and the relay sent: progress */
	uint32_t who_segment;	    /* events: the audit segment whose records last said who */
	struct cg_use *cgu;	    /* the attached cgroup (cap_cgid): sessions, buffered bytes */
	size_t counted;		    /* a.in + s.in bytes in cgu's and hoopd's buffered totals */
	int up_netns;		    /* enum netns_dial: whose namespace the database leg is in */
	struct session *prev, *next, *next_dead, *next_yield;
};

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

#endif
