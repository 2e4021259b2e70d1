/*
 * The control channel between the broker and one engine worker (docs/architecture.md): a
 * SOCK_SEQPACKET socket pair, messages of a type and a body, a body of any length sent as frames
 * of at most WCHAN_FRAME bytes, descriptors (SCM_RIGHTS) with the one-frame messages that carry
 * them. Sends never block: what the socket has no room for waits in the channel's queue, in
 * order, and goes when the loop says the socket is writable. Both ends use this code; neither
 * trusts the other's lengths (the broker does not trust the worker at all: a message that
 * breaks the framing, or is larger than its type allows, ends the channel).
 */
#ifndef HOOP_WCHAN_H
#define HOOP_WCHAN_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "loop.h"

#define WCHAN_FRAME (64u << 10)	 /* one datagram, its header included */
#define WCHAN_MSG_MAX (64u << 20) /* the largest message either end assembles */
#define WCHAN_QUEUE_MAX (256u << 20) /* bytes waiting for a peer that does not read: it ends */
#define WCHAN_FDS 2		  /* descriptors one message carries at most */

struct wchan_hdr {
	uint8_t type;
	uint8_t more; /* 1: the message goes on in the next frame */
	uint8_t nfds;
	uint8_t pad;
	uint32_t token; /* the request a reply answers (the sender's choice), or 0 */
};
_Static_assert(sizeof(struct wchan_hdr) == 8, "wchan_hdr is 8 bytes on the wire");

struct wchan_out; /* a queued frame */

struct wchan;
/* One whole message: its type, token, body (valid during the call), and the descriptors it
 * carried (the callee owns them: it closes those it does not keep). Return -1 to end the
 * channel (a protocol error: the callback has said why). */
typedef int (*wchan_msg_cb)(struct wchan *c, uint8_t type, uint32_t token, const uint8_t *body,
			    size_t len, int *fds, int nfds);
/* The channel ended (the peer closed, an error, or a callback said so); the descriptor is
 * closed and out of the loop by then. */
typedef void (*wchan_end_cb)(struct wchan *c, const char *why);

struct wchan {
	int fd;
	struct loop_watch w;
	wchan_msg_cb on_msg;
	wchan_end_cb on_end;
	size_t max_msg; /* the largest message accepted from the peer */
	struct buf rx;	/* a message arriving in frames */
	uint8_t rx_type;
	uint32_t rx_token;
	int rx_open;
	struct wchan_out *q, *q_tail; /* frames waiting for room */
	size_t queued;
	int ended;
	void *owner;
};

/* Take fd (a connected SOCK_SEQPACKET socket: made non-blocking, owned from now on) into the
 * loop. 0 or a negative errno. */
int wchan_open(struct wchan *c, int fd, size_t max_msg, wchan_msg_cb on_msg, wchan_end_cb on_end,
	       void *owner);
/* Queue one message (fds only with a body of at most one frame; they are dup'ed: the caller
 * keeps its own). 0, or -1 when the channel has ended or memory ran out. */
int wchan_send(struct wchan *c, uint8_t type, uint32_t token, const void *body, size_t len,
	       const int *fds, int nfds);
/* Read every message waiting now (the peer is dead: what it said before it died). */
void wchan_pump(struct wchan *c);
/* Send what is queued now, without waiting (before a stop). */
void wchan_flush(struct wchan *c);
/* End it: out of the loop, closed, queue dropped; on_end is not called. */
void wchan_close(struct wchan *c);

#endif
