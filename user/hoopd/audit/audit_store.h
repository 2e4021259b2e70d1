/*
 * The audit trail: an append-only, hash-chained, signed-checkpointed store of every event, in
 * <state dir>/audit/. Each record is one JSON line whose first fields are
 *   {"seq":N,"prev":"<SHA-256 of the previous record's line>", ...the event...}
 * The chain runs across segments. A checkpoint record carries an Ed25519 signature, by
 * <state dir>/audit.ed25519 (root only; its public key is audit.pub), over the hash it follows
 * and its sequence number; one is written every `checkpoint_every` records and as the last
 * record of every segment. (Checkpoints an older hoopd wrote carry an HMAC under audit.key.) Closed
 * segments are compressed (seg-NNNNNNNN.jsonl.gz). docs/audit.md has the full format.
 *
 * In an engine worker, which opens no files, audit_remote_attach (audit_ipc.h) sends these calls
 * to the broker's store instead: sequence numbers, durability and the segment are then the
 * worker's own records' (1..n), as the broker acknowledges them.
 */
#ifndef HOOP_AUDIT_H
#define HOOP_AUDIT_H

#include <stddef.h>
#include <stdint.h>

enum audit_durability { AUDIT_FLUSH = 0, AUDIT_FSYNC = 1 };

struct audit_cfg {
	enum audit_durability durability;
	uint32_t checkpoint_every;
	uint64_t segment_bytes;
	int64_t retention_s; /* 0: keep forever */
	const char *stream;  /* NULL, "stdout", or a file path: a copy of every record */
};

int audit_open(const char *state_dir, const struct audit_cfg *cfg);
void audit_configure(const struct audit_cfg *cfg); /* on policy reload */
void audit_close(void);

/*
 * Append one event, given as a JSON object text "{...}". Returns 0 once the record is written
 * to the OS (and, with fsync durability, queued for the next group sync), or a negative errno:
 * the caller must then not forward what the record describes.
 */
int audit_append(const char *obj, size_t len);

/*
 * fsync durability (with flush every record counts as durable once written): records up to
 * audit_durable() are on disk. What depends on a later record waits; audit_sync_start() has
 * a thread sync everything written so far (if none is running; when nobody waits, at most once
 * a second), and audit_sync_fd() becomes readable when it ends: then audit_sync_done() says
 * whether audit_durable() moved (1), and the caller resumes whoever waited.
 */
uint64_t audit_durable(void);
void audit_sync_start(int waiting);
int audit_sync_fd(void);
int audit_sync_done(void);

/* Housekeeping from the event loop: retention. */
void audit_tick(void);

uint64_t audit_last_seq(void);
/*
 * The broker's batches (audit_serve.c: the records a worker sent in one go): between
 * audit_batch_begin() and audit_batch_end(), audit_append() formats and chains each record
 * (audit_last_seq() counts it) but writes it with the others, in one write at the end (or
 * earlier, before a rollover, or when the batch holds 1 MiB). audit_batch_end() returns 0
 * when every record is written, or a negative errno when the store could not write them all:
 * the records after audit_last_seq() (as it is then) were not written and are dropped, the
 * chain going on from the last whole line on disk. Nothing counts as durable before it is
 * written. No batch in an engine worker (audit_remote.c batches itself).
 */
void audit_batch_begin(void);
int audit_batch_end(void);
/* The number of the segment records go into now (it changes when one fills). */
uint32_t audit_segment(void);
int audit_healthy(void);
/* The record just appended is one a statement must not go without (a statement record):
 * critical. Other records are kept as well as can be, as in a process with its own store,
 * where a record it cannot write is lost and said so, and only a statement is refused. */
void audit_mark_critical(void);
/* Was a critical record numbered in (after, upto] refused after audit_append took it? Only in
 * an engine worker (audit_ipc.h: the broker's store refused it, disk full): the bytes that
 * waited for it must not go. 0 in a process with its own store, where audit_append says so at
 * once. */
int audit_refused_in(uint64_t after, uint64_t upto);

#endif
