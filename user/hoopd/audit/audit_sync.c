/*
 * The audit store's syncer: fsync durability's group commit on a worker thread of its own
 * (audit_int.h), and the event loop's side of it (audit_syncer_fd, audit_syncer_done: behind
 * audit_store.h's audit_sync_fd and audit_sync_done).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "audit_store.h"
#include "audit_int.h"
#include "log.h"
#include "thread.h"

/*
 * fsync durability: fdatasync runs on a thread of its own, so that the event loop goes on
 * reading, judging and recording while the disk works. The loop starts a sync (of a dup of the
 * open segment's descriptor) when sessions wait for their records to be on disk, at most one at
 * a time; everything written before it started is covered when it ends, and the sessions
 * waiting for those records go on (group commit: the more sessions wait, the more one sync
 * covers). Records nobody waits for are synced with the next such sync, or within a second.
 */
static struct {
	struct worker w;
	int job_fd;	  /* to sync; -1: no job */
	uint64_t job_seq; /* the last record it covers */
	int efd;	  /* eventfd: a sync finished */
	int result;	  /* its outcome: 0 or an errno */
	/* the loop's own: */
	int in_flight;
	uint64_t durable; /* every record up to this one is on disk */
	int64_t last_ms;  /* when the last sync started */
	int failing;
} syncer = {.w = WORKER_INIT, .job_fd = -1, .efd = -1};

void audit_syncer_synced_to(uint64_t seq)
{
	if (seq > syncer.durable)
		syncer.durable = seq;
}

static void *syncer_main(void *arg)
{
	pthread_mutex_lock(&syncer.w.mu);
	for (;;) {
		int fd, r;

		while (syncer.job_fd < 0 && !syncer.w.stop)
			pthread_cond_wait(&syncer.w.cv, &syncer.w.mu);
		if (syncer.job_fd < 0)
			break;
		fd = syncer.job_fd;
		pthread_mutex_unlock(&syncer.w.mu);
		r = fdatasync(fd) ? errno : 0;
		close(fd);
		pthread_mutex_lock(&syncer.w.mu);
		syncer.job_fd = -1;
		syncer.result = r;
		{
			uint64_t one = 1;
			ssize_t w = write(syncer.efd, &one, sizeof(one));

			(void)w; /* only fails at the counter's maximum: the loop looks anyway */
		}
	}
	pthread_mutex_unlock(&syncer.w.mu);
	return NULL;
}

static int syncer_start(void)
{
	int r;

	if (syncer.w.nthreads)
		return 0;
	if (syncer.efd < 0) {
		syncer.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (syncer.efd < 0)
			return -errno;
	}
	r = worker_start(&syncer.w, syncer_main, "hoop-fsync");
	if (r) {
		log_error("audit: cannot start the sync thread: %s", strerror(r));
		return -r;
	}
	return 0;
}

void audit_syncer_stop(void)
{
	if (!syncer.w.nthreads)
		return;
	worker_stop(&syncer.w);
	if (syncer.job_fd >= 0)
		close(syncer.job_fd);
	syncer.job_fd = -1;
	syncer.in_flight = 0;
}

uint64_t audit_syncer_durable(void)
{
	return syncer.durable;
}

void audit_syncer_submit(int seg_fd, uint64_t seq, int waiting)
{
	int64_t now;
	int fd;

	if (syncer.in_flight || syncer.durable >= seq)
		return;
	now = audit_mono_ms();
	/* Nobody waits: within a second. Failing: every 100 ms, not every loop round. */
	if ((!waiting && now - syncer.last_ms < 1000) ||
	    (syncer.failing && now - syncer.last_ms < 100))
		return;
	if (syncer_start())
		return;
	fd = dup(seg_fd);
	if (fd < 0) {
		log_error("audit: cannot sync: dup: %s", strerror(errno));
		return;
	}
	syncer.last_ms = now;
	syncer.in_flight = 1;
	pthread_mutex_lock(&syncer.w.mu);
	syncer.job_fd = fd;
	syncer.job_seq = seq;
	worker_wake(&syncer.w);
	pthread_mutex_unlock(&syncer.w.mu);
}

int audit_syncer_fd(void)
{
	if (syncer.efd < 0)
		syncer.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	return syncer.efd;
}

int audit_syncer_done(void)
{
	uint64_t n;
	int r;

	if (read(syncer.efd, &n, sizeof(n)) != sizeof(n) || !syncer.in_flight)
		return 0;
	pthread_mutex_lock(&syncer.w.mu);
	/* -1: a job not yet taken (cannot be: one at a time) */
	r = syncer.job_fd < 0 ? syncer.result : -1;
	pthread_mutex_unlock(&syncer.w.mu);
	if (r < 0)
		return 0;
	syncer.in_flight = 0;
	if (r) {
		if (!syncer.failing)
			log_error("audit: fdatasync: %s; statements wait until a sync succeeds",
				  strerror(r));
		syncer.failing = 1;
		return 0;
	}
	if (syncer.failing)
		log_warn("audit: fdatasync succeeds again");
	syncer.failing = 0;
	audit_syncer_synced_to(syncer.job_seq);
	return 1;
}
