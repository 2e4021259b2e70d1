/*
 * What the two PostgreSQL engine fuzz targets (fuzz_pg_agent.c, fuzz_pg_server.c) share: the
 * relay reduced to the sess_* and tls_* calls the engine makes, the audit trail and the
 * approvals reduced to checks and switches, a session fixture, the checks on every byte the
 * engine queues for either peer, the test verdict, and the reader that splits one input into
 * data and decisions.
 */
#ifndef HOOP_FUZZ_PG_H
#define HOOP_FUZZ_PG_H

#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "pgwire.h"
#include "session.h"
#include "tls.h"
#include "verdict.h"

/* A broken promise is a bug like a crash: stop so libFuzzer saves the input. */
#define REQUIRE(cond)                                                                              \
	do {                                                                                       \
		if (!(cond))                                                                       \
			fz_fail(__FILE__, __LINE__, #cond);                                        \
	} while (0)

void fz_fail(const char *file, int line, const char *what) __attribute__((noreturn));

/*
 * Bugs in user/hoopd these targets found, now fixed; the steers stay for bisecting old trees
 * (`make fuzz FUZZ_KNOWN_BUGS=1` steers around them; the default, 0, fuzzes straight at them).
 *  1. pg.c fwd() tells typed from untyped messages by type != 0, so a typed message with type
 *     byte 0x00 (relayed in the authentication phase, or from the database) is forwarded one
 *     byte late, with one byte from beyond its end. Steer: fz_steer_type0.
 *  2. pg.c pg_agent_data() relays every agent message unjudged until the database's
 *     ReadyForQuery, so a Query pipelined behind the startup packet (trust) or the password
 *     runs unjudged. Steer (fuzz_pg_agent.c): until then the database answers before the agent
 *     sends its next message.
 */
#ifndef FZ_KNOWN_BUGS
#define FZ_KNOWN_BUGS 0
#endif

/* Known bug 1: rewrite the type byte 0x00 of every typed message in b (from its head, which
 * is a message boundary) to 0x01, another type no peer knows. */
void fz_steer_type0(struct buf *b);

/*
 * One input, read from both ends: protocol bytes from the front, decisions (chunk sizes, when
 * the database answers, how a hold ends) one byte at a time from the back, 0 once used up. A
 * recorded session stays a valid seed (its front is real protocol), and a mutation of one byte
 * changes one decision instead of reshuffling every later one.
 */
struct fz_in {
	const uint8_t *p;
	size_t n;
};

uint8_t fz_pick(struct fz_in *in);
/* How many bytes the next chunk takes, by one decision: 1-8, 1-64, up to 4 KiB, or all. */
size_t fz_chunk(struct fz_in *in);
/* Up to max bytes from the front; returns how many, *out points at them. */
size_t fz_take(struct fz_in *in, size_t max, const uint8_t **out);

/* The relay, the audit trail and the approvals around the engine, steered by the targets. */
struct fz_stubs {
	int agent_tls;		    /* tls_agent_enabled() */
	int agent_tls_result;	    /* what sess_tls_agent returns */
	enum upstream_tls upstream; /* tls_upstream_mode() */
	int server_tls_result;	    /* what sess_tls_server returns */
	int reconnect_result;	    /* what sess_reconnect_server returns */
	int audit_fail;		    /* audit_append fails, as on a full disk */
	int hold_open_result;	    /* what hold_ops->open returns (no approval request) */
	int holds_forgotten;	    /* hold_ops->forget calls */
	int agent_tls_started;	    /* sess_tls_agent calls that returned 0 */
	int server_tls_started;	    /* sess_tls_server calls that returned 0 */
	int reconnects;		    /* sess_reconnect_server calls that returned 0 */
};
extern struct fz_stubs fz;

/* The relay would hold a real SSL object; the engine only tests the pointer for NULL. */
extern SSL *const fz_fake_ssl;

/* One session and its engine state. */
struct fz_sess {
	struct session s;
	void *e;
	int untyped_out; /* s.out starts in the untyped startup-phase form */
	int agent_ready; /* a ReadyForQuery reached the agent: authentication is over */
};

void fz_open(struct fz_sess *f, const char *id);
void fz_close(struct fz_sess *f);

/*
 * What the engine queued for the agent: whole messages, each within the size limit. An
 * SSLRequest/GSSENCRequest answer is one untyped byte 'N': up to *answers of those are allowed
 * at message boundaries (decremented). During authentication, R 10 (SASL) lists no -PLUS
 * mechanism (afterwards it means nothing to a client, and is relayed as is). trusted: the
 * database is the harness's model, so every error, notice and ReadyForQuery must be
 * well-formed too. Drains a.out; returns the number of messages.
 */
int fz_check_agent_out(struct fz_sess *f, int *answers, int trusted);

/* What the engine queued for the database: whole messages, each handed to fn (may be NULL).
 * Drains s.out; returns the number of messages. */
int fz_check_server_out(struct fz_sess *f, void (*fn)(void *arg, const struct pgw_msg *m),
			void *arg);

/* The bytes hoopd sent on the agent socket itself (the 'S' answer to an SSLRequest). */
int fz_agent_socket_fd(void);
size_t fz_agent_socket_drain(void);

/*
 * The audit trail is stubbed: every record the engine appends must be one strict JSON object in
 * valid UTF-8 with a "kind" and a "session"; they are counted here (reset per input).
 */
struct fz_events {
	int records, failed; /* appended; of those, refused because of fz.audit_fail */
	int protocol_error_agent, protocol_error_database;
};
extern struct fz_events fz_events;

/*
 * The test verdict, from the last byte of the judged text (c % 7): 0 deny, 1 hold, else allow.
 * Like the policy's, it judges "EXECUTE name" by what the PREPARE of that name recorded too,
 * the stronger verdict winning. A deny of text of odd length carries the text itself as rule
 * and message, so hostile bytes reach the ErrorResponse and the audit records.
 */
enum verdict fz_verdict(struct judgement *j);
enum verdict fz_verdict_of(const char *text, size_t len);

/* One-time setup for both targets: limits, logging, verdict, JSON checker, the agent socket. */
void fz_init(void);

#endif
