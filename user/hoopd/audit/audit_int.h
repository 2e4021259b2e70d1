/*
 * Inside the audit store (audit_store.c, the store and its recovery and retention), shared with its
 * two workers: the compressor of closed segments (audit_compress.c) and the fsync durability
 * syncer (audit_sync.c), and with the channel that replaces the store in an engine worker
 * (audit_remote.c). Not for other modules: audit_store.h is the store's interface.
 */
#ifndef HOOP_AUDIT_INT_H
#define HOOP_AUDIT_INT_H

#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "trail.h"

/* The compressor. Start it on the trail's directory (its path, and an fd it dups); say when
 * every segment below n is closed (it compresses each, oldest first); stop compresses what is
 * closed, then ends it. */
int audit_compressor_start(const char *dir, int dfd);
void audit_compressor_closed_below(uint32_t n);
void audit_compressor_stop(void);

/* The numbers of the segments of that kind in dir numbered below `below`, oldest first, into
 * *out (free it). How many, or -errno when dir cannot be listed. */
ssize_t audit_segments_below(const char *dir, enum trail_seg_kind kind, uint32_t below,
			     uint32_t **out);

/* The syncer (fsync durability). submit: sync the open segment (seg_fd, records up to seq)
 * unless a sync is running or all is durable; with nobody waiting, at most once a second. */
void audit_syncer_submit(int seg_fd, uint64_t seq, int waiting);
/* Every record up to this one is on disk. */
uint64_t audit_syncer_durable(void);
/* Records up to seq are on disk (synced by the store itself, when it closes a segment). */
void audit_syncer_synced_to(uint64_t seq);
void audit_syncer_stop(void);
/* audit_sync_fd and audit_sync_done of the local store. */
int audit_syncer_fd(void);
int audit_syncer_done(void);

/*
 * Where audit_store.h's calls go in this process: the local store (the default) or another
 * writer (audit_remote.c: the broker's, over a socket). Calls the table lacks (NULL) do nothing
 * (audit_tick, audit_configure: retention and settings are the store owner's).
 */
struct audit_ops {
	int (*append)(const char *obj, size_t len);
	uint64_t (*durable)(void);
	void (*sync_start)(int waiting);
	int (*sync_fd)(void);
	int (*sync_done)(void);
	uint64_t (*last_seq)(void);
	uint32_t (*segment)(void);
	int (*healthy)(void);
	void (*close)(void);
	int (*refused_in)(uint64_t after, uint64_t upto);
	void (*mark_critical)(void);
};
void audit_use_ops(const struct audit_ops *ops);

static inline int64_t audit_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif
