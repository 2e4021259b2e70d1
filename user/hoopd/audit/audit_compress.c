/*
 * The audit store's compressor: closed segments are gzip'd by a worker thread of its own, off
 * the event loop (audit_int.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libdeflate.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "audit_int.h"
#include "log.h"
#include "thread.h"

/*
 * Closed segments are compressed by a worker thread, never on the event loop (gzip of a 64 MiB
 * segment is a second of CPU). The loop only says up to where segments are closed
 * (closed_below: every plain segment numbered below it ends with its checkpoint and is never
 * written again); the worker compresses each, oldest first:
 *   seg-N.jsonl -> seg-N.jsonl.gz.tmp, fsync, rename to seg-N.jsonl.gz, fsync the directory,
 *   unlink seg-N.jsonl.
 * At every moment the trail is whole: the plain file goes only once its compressed copy is
 * durable, readers take whichever exists (the plain one when both do), and a crash leaves at
 * most a stale .tmp (removed at the next start) and a plain segment the next start compresses.
 */
static struct {
	struct worker w;       /* w.stop: finish what is closed, then exit */
	uint32_t closed_below; /* set by the loop */
	uint32_t done_below;   /* set by the worker */
	pid_t ktid;	       /* the worker's kernel thread id, for its scheduling class */
	int urgent;	       /* it runs as a normal thread (nice 10), not SCHED_IDLE */
	char dir[4096];	       /* the store's, the worker's own copy */
	int dfd;	       /* and its own fd of it */
} compressor = {.w = WORKER_INIT, .dfd = -1};

/* Segments waiting to be compressed beyond which compression stops yielding to everything. */
#define COMPRESS_BACKLOG 2

/*
 * The worker's scheduling class (compressor.mu held). Compression is housekeeping: it runs under
 * SCHED_IDLE, on CPU time nothing else wants, so that on a busy node it does not take CPU from
 * the agents and the databases. When closed segments pile up (a node busy for a long time),
 * it becomes a normal thread at nice 10 until it has caught up, so that the disk does not
 * fill with uncompressed segments; and at stop, so that hoopd's exit does not wait for an idle
 * CPU.
 */
static void compressor_class(int urgent)
{
	struct sched_param sp = {0};

	if (!compressor.ktid || urgent == compressor.urgent)
		return;
	if (sched_setscheduler(compressor.ktid, urgent ? SCHED_OTHER : SCHED_IDLE, &sp)) {
		log_debug("audit: compressor scheduling class: %s", strerror(errno));
		return;
	}
	if (urgent)
		setpriority(PRIO_PROCESS, (id_t)compressor.ktid, 10);
	compressor.urgent = urgent;
}

/* Closed segments are gzip files of independent members, one per COMPRESS_CHUNK of the plain
 * file, each made by libdeflate in one call: at level 1 on these records it takes half of
 * zlib's level-1 CPU (0.66 s against 1.26 s for 116 MB of pgbench records, ~3 us against ~6 us
 * per statement recorded) and writes 11% fewer bytes. gzip readers (zlib's gzread, which
 * hoopctl uses, gzip -d, Python's gzip) read concatenated members as one stream. */
#define COMPRESS_CHUNK (1 << 20)

static int compress_segment(int dir, uint32_t n)
{
	char src[40], dst[40], tmp[40];
	static char in[COMPRESS_CHUNK]; /* the worker's alone */
	static char *out;
	static size_t outcap;
	static struct libdeflate_compressor *c;
	int fd, ofd, r = 0;
	ssize_t got = 0;

	if (!c && !(c = libdeflate_alloc_compressor(1)))
		return -ENOMEM;
	if (!out) {
		outcap = libdeflate_gzip_compress_bound(c, sizeof(in));
		if (!(out = malloc(outcap)))
			return -ENOMEM;
	}
	trail_seg_name(src, sizeof(src), n, TRAIL_SEG_PLAIN);
	trail_seg_name(dst, sizeof(dst), n, TRAIL_SEG_GZ);
	trail_seg_name(tmp, sizeof(tmp), n, TRAIL_SEG_GZ_TMP);
	fd = openat(dir, src, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ofd = openat(dir, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (ofd < 0 && errno == EEXIST) {
		/* a .tmp left by a crash, or planted (a symlink): the name goes, not its target */
		log_warn("audit: %s/%s exists; removing it (not following it) and starting over",
			 compressor.dir, tmp);
		if (!unlinkat(dir, tmp, 0))
			ofd = openat(dir, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
				     0600);
	}
	if (ofd < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	for (int first = 1;; first = 0) {
		size_t have = 0, z;

		/* a whole chunk, or what is left */
		while (have < sizeof(in) && (got = read(fd, in + have, sizeof(in) - have)) > 0)
			have += (size_t)got;
		if (got < 0) {
			r = -errno;
			break;
		}
		if (!have && !first)
			break; /* (an empty segment still gets one, empty, member) */
		z = libdeflate_gzip_compress(c, in, have, out, outcap);
		if (!z) {
			r = -EIO;
			break;
		}
		for (size_t w = 0; w < z;) {
			ssize_t k = write(ofd, out + w, z - w);

			if (k < 0) {
				if (errno == EINTR)
					continue;
				r = -errno;
				break;
			}
			w += (size_t)k;
		}
		if (r || have < sizeof(in))
			break;
	}
	close(fd);
	/* The compressed copy is complete and durable before the original goes. */
	if (!r && fsync(ofd))
		r = -errno;
	if (close(ofd) && !r)
		r = -EIO;
	if (!r && renameat(dir, tmp, dir, dst))
		r = -errno;
	if (r) {
		unlinkat(dir, tmp, 0);
		return r;
	}
	if (fsync(dir))
		r = -errno;
	if (!r && unlinkat(dir, src, 0))
		r = -errno;
	return r;
}

static int u32_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

ssize_t audit_segments_below(const char *dir, enum trail_seg_kind kind, uint32_t below,
			     uint32_t **out)
{
	uint32_t *ns = NULL;
	size_t n = 0, cap = 0;
	DIR *d = opendir(dir);
	struct dirent *de;

	*out = NULL;
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		uint32_t v;
		enum trail_seg_kind k;

		if (!trail_seg_parse(de->d_name, &v, &k) || k != kind || v >= below)
			continue;
		if (n == cap) {
			uint32_t *x = realloc(ns, (cap = cap ? 2 * cap : 16) * sizeof(*ns));

			if (!x)
				break;
			ns = x;
		}
		ns[n++] = v;
	}
	closedir(d);
	if (n)
		qsort(ns, n, sizeof(*ns), u32_cmp);
	*out = ns;
	return (ssize_t)n;
}

/* Compress every plain segment numbered below `below`, oldest first. */
static void compress_closed(uint32_t below)
{
	uint32_t *ns;
	ssize_t got = audit_segments_below(compressor.dir, TRAIL_SEG_PLAIN, below, &ns);
	size_t n;

	if (got < 0) {
		log_warn("audit: cannot list %s to compress closed segments: %s", compressor.dir,
			 strerror((int)-got));
		return;
	}
	n = (size_t)got;
	for (size_t i = 0; i < n; i++) {
		int r = compress_segment(compressor.dfd, ns[i]);

		if (r)
			log_warn("audit: segment %u stays uncompressed for now: %s", ns[i],
				 strerror(-r));
	}
	free(ns);
}

static void *compressor_main(void *arg)
{
	pthread_mutex_lock(&compressor.w.mu);
	compressor.ktid = (pid_t)syscall(SYS_gettid);
	compressor.urgent = 1; /* as created */
	compressor_class(compressor.w.stop ||
			 compressor.closed_below - compressor.done_below > COMPRESS_BACKLOG);
	for (;;) {
		uint32_t below;

		while (compressor.done_below == compressor.closed_below && !compressor.w.stop) {
			compressor_class(0); /* caught up */
			pthread_cond_wait(&compressor.w.cv, &compressor.w.mu);
		}
		if (compressor.done_below == compressor.closed_below)
			break; /* stopping, and nothing is left */
		below = compressor.closed_below;
		pthread_mutex_unlock(&compressor.w.mu);
		compress_closed(below);
		pthread_mutex_lock(&compressor.w.mu);
		compressor.done_below = below;
	}
	pthread_mutex_unlock(&compressor.w.mu);
	return NULL;
}

void audit_compressor_closed_below(uint32_t n)
{
	pthread_mutex_lock(&compressor.w.mu);
	if (n > compressor.closed_below) {
		compressor.closed_below = n;
		if (compressor.closed_below - compressor.done_below > COMPRESS_BACKLOG)
			compressor_class(1);
		worker_wake(&compressor.w);
	}
	pthread_mutex_unlock(&compressor.w.mu);
}

int audit_compressor_start(const char *dir, int dfd)
{
	int r;

	snprintf(compressor.dir, sizeof(compressor.dir), "%s", dir);
	if (compressor.dfd < 0 && (compressor.dfd = fcntl(dfd, F_DUPFD_CLOEXEC, 0)) < 0)
		return -errno;
	/* the tests find it by its name */
	r = worker_start(&compressor.w, compressor_main, "hoop-compress");
	if (r) {
		log_error("audit: cannot start the segment compressor thread: %s", strerror(r));
		return -r;
	}
	return 0;
}

void audit_compressor_stop(void)
{
	if (!compressor.w.nthreads)
		return;
	pthread_mutex_lock(&compressor.w.mu);
	worker_stop_begin(&compressor.w);
	compressor_class(1);
	pthread_mutex_unlock(&compressor.w.mu);
	worker_join(&compressor.w);
	compressor.ktid = 0;
}
