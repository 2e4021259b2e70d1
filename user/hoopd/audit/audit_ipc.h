/*
 * The audit channel between processes: engine workers, which build records but open no files,
 * send them to the broker, which owns the one store of the node (audit_store.h: segments, hash
 * chain, checkpoints, fsync, retention) and appends them to its one chain.
 *
 * Worker side (audit_remote.c): audit_remote_attach(fd) switches audit_store.h's API in this
 * process to the channel. From then on audit_append() queues the record for the broker (in a
 * bounded queue; audit_remote_flush() sends what the socket has room for, the records of one
 * loop round in one frame: the event loop never blocks), and audit_last_seq(),
 * audit_durable(), audit_segment() and audit_healthy() speak of this worker's own records,
 * numbered 1..n here: the broker acknowledges "your records up to n are written" (flush
 * durability) or "... are on disk" (fsync), and audit_durable() is that n. audit_sync_fd() is
 * the channel (readable when an acknowledgement arrives) and audit_sync_done() reads them, so
 * the relay's durability barrier (relay/barrier.h) and main's loop work unchanged; with either
 * durability, bytes the records describe go on only once the broker has the records.
 *
 * Broker side (audit_serve.c): audit_serve_add(fd, id) reads each worker's records from the
 * event loop, checks only their framing (one JSON object text: starts with '{', ends with '}',
 * no newline byte, within the size limits; it never parses agent data), appends them with the
 * store's audit_append (global seq and prev: one chain), and acknowledges each worker's local
 * number once its record is written (flush) or once a group sync covers the record's global
 * seq (fsync). Records of one worker keep their order; those of different workers interleave
 * in the order the broker reads them. A worker whose channel closes, or which sends a bad
 * frame (it is cut off, and that is recorded in the trail), is reported to the lost callback.
 *
 * The wire (SOCK_SEQPACKET, from socketpair(AF_UNIX, SOCK_SEQPACKET)): each message is a frame
 * of at most AUDIT_IPC_FRAME_MAX bytes, its first byte its type.
 *   worker -> broker  'B' + bytes   whole records, joined by newline bytes (a batch: the
 *                                   records one round of the worker's loop made)
 *                     'M' + bytes   a piece of a record too long for a frame, more follows
 *                     'R' + bytes   the last (or only) piece of such a record
 *                     'S'           please sync: this worker waits for its records on disk
 *   broker -> worker  struct audit_ipc_ack
 * A record travels in pieces because a datagram on a Unix socket is bounded by the socket's
 * send buffer (a few hundred KiB), and a statement record can be far larger; a whole record is
 * bounded by TRAIL_RECORD_MAX (trail.h), the longest line hoopctl reads.
 */
#ifndef HOOP_AUDIT_IPC_H
#define HOOP_AUDIT_IPC_H

#include <stddef.h>
#include <stdint.h>

#define AUDIT_IPC_FRAME_MAX (64u << 10) /* one message, its type byte included */
/* The worker's queue of records the socket had no room for: beyond it, audit_append refuses
 * (-ENOBUFS), as when the trail cannot be written. A single record is always taken when the
 * queue is empty. */
#define AUDIT_IPC_QUEUE_MAX (16u << 20)

enum audit_ipc_type {
	AUDIT_IPC_BATCH = 'B',
	AUDIT_IPC_MORE = 'M',
	AUDIT_IPC_RECORD = 'R',
	AUDIT_IPC_SYNC = 'S',
	AUDIT_IPC_ACK = 'A',
};

/* Broker -> worker: this worker's records up to `durable` are written (flush durability) or on
 * disk (fsync), and records go into segment `segment` now. Records the store refused (disk
 * full) are dropped, never tried again: refused_lo..refused_hi (0..0: none since the last
 * acknowledgement) names them, and the worker refuses what waited for them. A range may cover
 * a record that was written after all (two refusals with a write between): a statement then
 * fails that could have gone, never the other way round. */
struct audit_ipc_ack {
	uint8_t type;	 /* AUDIT_IPC_ACK */
	uint8_t failing; /* 1: the broker cannot write the trail now (new records are refused) */
	uint8_t pad[2];
	uint32_t segment;
	uint64_t durable;
	uint64_t refused_lo, refused_hi;
};
_Static_assert(sizeof(struct audit_ipc_ack) == 32, "audit_ipc_ack is 32 bytes on the wire");

/* ---- worker ---------------------------------------------------------------------------- */

/*
 * A worker is forked before audit_open in its parent (or exec'd): the store runs threads (the
 * compressor, the syncer), and a child forked while one of them holds an allocator lock can
 * block on that lock forever (GCC 12's ASan allocator takes no fork handler).
 *
 * Send this process's records over fd (a connected SOCK_SEQPACKET socket; made non-blocking
 * here; owned from now on) instead of writing a store. Call it instead of audit_open (or
 * events_open), before the loop registers audit_sync_fd(). on_lost, if not NULL, is called
 * once when the broker's end closes: every later audit_append fails (-EPIPE), so statements
 * are refused; the worker should stop. 0, or a negative errno.
 */
int audit_remote_attach(int fd, void (*on_lost)(void));
/* Send the records appended so far (those the socket has room for; the rest go when it has).
 * audit_append only queues them: the worker calls this after each round of its loop, so the
 * records of one round travel in one frame, and before a control message that speaks of a
 * record (ENDED after a session's end), to keep their order. */
void audit_remote_flush(void);

/* ---- broker ---------------------------------------------------------------------------- */

enum audit_lost_why {
	AUDIT_LOST_CLOSED = 1, /* the worker's end closed: it exited or crashed */
	AUDIT_LOST_BAD_FRAME,  /* it sent something that is not a record: cut off */
	AUDIT_LOST_IO,	       /* the channel failed (an errno other than EAGAIN) */
};

/* A worker's channel is gone (its descriptor is closed and forgotten by then). The whole
 * records it sent before that (before the frame it was cut off for) are in the trail, a crashed
 * worker's too, unless the store refused them; a record it was still sending is not. */
typedef void (*audit_lost_cb)(uint32_t worker_id, enum audit_lost_why why, const char *detail,
			      void *arg);

void audit_serve_on_lost(audit_lost_cb cb, void *arg);
/* A worker's session_start record for session is in the chain now (written, not only sent):
 * the broker records that session's end itself if the worker is lost. arg is the lost
 * callback's. */
void audit_serve_on_started(void (*cb)(uint32_t worker_id, const char *session, void *arg));
/* Serve worker_id's records on fd (owned from now on; the loop must be up). -EEXIST when that
 * id is served already. */
int audit_serve_add(int fd, uint32_t worker_id);
/* Stop serving worker_id, without calling the lost callback (an orderly stop): what it sent
 * and the broker read is in the trail. 0, or -ENOENT. */
int audit_serve_del(uint32_t worker_id);
/* After audit_sync_done() returned 1 in the broker: tell each worker what is on disk now. */
void audit_serve_synced(void);
/* Does a worker wait for a sync? The broker's tick passes it to audit_sync_start(), and calls
 * audit_serve_tick() (acknowledgements the sockets had no room for; records the store could
 * not take, tried again). */
int audit_serve_waiting(void);
void audit_serve_tick(void);
/* Lower the bound on a whole record (default TRAIL_RECORD_MAX): a worker's limit follows from
 * its largest statement (--max-message). */
void audit_serve_record_max(size_t max);
/* Stop serving every worker (at shut-down, before audit_close). */
void audit_serve_close_all(void);

#endif
