/*
 * The audit store: the open segment, the hash chain, HMAC checkpoints, recovery at start,
 * retention; and its two workers, the compressor of closed segments and the group-commit
 * syncer. The format itself (names, record head, chain hash, checkpoint MAC, key, line reader)
 * is trail.h's, shared with hoopctl's readers.
 */
#include "audit.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>
#include <libdeflate.h>

#include "isotime.h"
#include "json.h"
#include "log.h"
#include "thread.h"
#include "trail.h"

/* The trail being written (the event loop's alone). */
static struct {
	char dir[4096];
	int dfd; /* dir, opened once: every file in it is made and opened through it */
	struct audit_cfg cfg;
	int fd;			    /* open segment */
	uint32_t segno;		    /* its number */
	uint64_t size;		    /* its size */
	uint64_t seq;		    /* last sequence number written */
	char prev[TRAIL_HASH_HEX];  /* chain hash of the last record */
	uint8_t key[TRAIL_KEY_LEN]; /* checkpoint HMAC key */
	uint32_t since_cp;	    /* records since the last checkpoint */
	int failing; /* the last append failed: say so once, and again when it recovers */
	FILE *stream;
	time_t last_retention;
	/* the next checkpoint closes a recovered segment whose records from this seq on no
	 * checkpoint covered before the unclean stop */
	uint64_t unvouched_from;
} store = {.fd = -1, .dfd = -1};

/* A segment's file name, relative to store.dfd (gz: the compressed one). */
static void seg_name(uint32_t n, int gz, char *out, size_t len)
{
	trail_seg_name(out, len, n, gz ? TRAIL_SEG_GZ : TRAIL_SEG_PLAIN);
}

/*
 * The state directory is writable by whoever escaped into it, so no file there is opened
 * through a symbolic link (a planted one would make root write wherever it points) and none
 * is created except new: O_NOFOLLOW | O_EXCL, relative to a directory fd that was itself
 * opened without following one.
 */
static int open_dir_nofollow(const char *path)
{
	return open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

static int load_key(const char *state_dir)
{
	char err[4400];
	int r = trail_key_load(state_dir, 1, store.key, err, sizeof(err));

	if (r == 1)
		log_info("generated the audit checkpoint key %s/audit.key (mode 0400: keep agents "
			 "away from it)",
			 state_dir);
	else if (r)
		log_error("%s; refusing to start the audit trail", err);
	return r < 0 ? r : 0;
}

/* Write one line (obj without its leading '{' gets seq and prev in front). */
static int write_record(const char *obj, size_t len)
{
	static char *line; /* reused: records are written one at a time, by the loop */
	static size_t cap;
	char head[TRAIL_HEAD_MAX];
	size_t hl, total;
	ssize_t w;

	if (len < 2 || obj[0] != '{')
		return -EINVAL;
	hl = trail_format_head(head, store.seq + 1, store.prev);
	total = hl + len - 1;
	if (total + 1 > cap) {
		size_t nc = total + 1 > 4096 ? total + 1 : 4096;
		char *x = malloc(nc);

		if (!x)
			return -ENOMEM;
		free(line);
		line = x;
		cap = nc;
	}
	memcpy(line, head, hl);
	memcpy(line + hl, obj + 1, len - 1);
	if (len == 2) /* "{}": no trailing comma before the brace */
		line[hl - 1] = '}', total = hl;
	line[total] = '\n';
	w = write(store.fd, line, total + 1);
	if (w != (ssize_t)(total + 1)) {
		int e = w < 0 ? errno : ENOSPC;

		/* A torn line would break the chain for whoever reads it: take it back. */
		if (w > 0 && ftruncate(store.fd, (off_t)store.size))
			log_error("audit: cannot take back a partial record: %s", strerror(errno));
		if (w > 0)
			lseek(store.fd, (off_t)store.size, SEEK_SET);
		return -e;
	}
	trail_chain_hash(line, total, store.prev);
	store.seq++;
	store.size += total + 1;
	if (store.stream) {
		fwrite(line, 1, total + 1, store.stream);
		fflush(store.stream);
	}
	if (cap > (1 << 20)) { /* after a huge record, do not keep its buffer */
		free(line);
		line = NULL;
		cap = 0;
	}
	return 0;
}

static int checkpoint(const char *why)
{
	char machex[TRAIL_HASH_HEX], obj[512], ts[TS_ISO_US_LEN];

	/* The HMAC covers the hash of everything before it and its own sequence number. */
	trail_checkpoint_mac(store.key, store.seq + 1, store.prev, machex);
	ts_iso_us(ts);
	if (store.unvouched_from)
		/* The HMAC below is made now, over whatever the records since the last checkpoint
		 * say: it cannot vouch for them (they may have been changed while hoopd was down),
		 * and says so for verify. */
		snprintf(obj, sizeof(obj),
			 "{\"ts\":\"%s\",\"kind\":\"checkpoint\",\"reason\":\"%s\","
			 "\"segment\":%u,\"unvouched_from\":%llu,\"hmac\":\"%s\"}",
			 ts, why, store.segno, (unsigned long long)store.unvouched_from, machex);
	else
		snprintf(obj, sizeof(obj),
			 "{\"ts\":\"%s\",\"kind\":\"checkpoint\",\"reason\":\"%s\","
			 "\"segment\":%u,\"hmac\":\"%s\"}",
			 ts, why, store.segno, machex);
	/* A checkpoint that could not be written (disk full) is owed: the next append retries. */
	if (write_record(obj, strlen(obj)))
		return -EIO;
	store.since_cp = 0;
	store.unvouched_from = 0;
	return 0;
}

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
	char dir[4096];	       /* store.dir, the worker's own copy */
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

/* The numbers of the segments of that kind in dir numbered below `below`, oldest first, into
 * *out (free it). How many, or -errno when dir cannot be listed. */
static ssize_t segments_below(const char *dir, enum trail_seg_kind kind, uint32_t below,
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
	ssize_t got = segments_below(compressor.dir, TRAIL_SEG_PLAIN, below, &ns);
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

/* Every segment below n is closed: hand them to the worker. */
static void closed_below(uint32_t n)
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

static int compressor_start(void)
{
	int r;

	snprintf(compressor.dir, sizeof(compressor.dir), "%s", store.dir);
	if (compressor.dfd < 0 && (compressor.dfd = fcntl(store.dfd, F_DUPFD_CLOEXEC, 0)) < 0)
		return -errno;
	r = worker_start(&compressor.w, compressor_main,
			 "hoop-compress"); /* the tests find it by name */
	if (r) {
		log_error("audit: cannot start the segment compressor thread: %s", strerror(r));
		return -r;
	}
	return 0;
}

/* Compress what is closed, then end the worker. */
static void compressor_stop(void)
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

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void synced_to(uint64_t seq)
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

static void syncer_stop(void)
{
	if (!syncer.w.nthreads)
		return;
	worker_stop(&syncer.w);
	if (syncer.job_fd >= 0)
		close(syncer.job_fd);
	syncer.job_fd = -1;
	syncer.in_flight = 0;
}

static int open_segment(uint32_t n)
{
	char p[4200];

	seg_name(n, 0, p, sizeof(p));
	store.fd = openat(store.dfd, p,
			  O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (store.fd < 0) {
		log_error("audit: cannot create %s/%s: %s", store.dir, p, strerror(errno));
		return -errno;
	}
	store.segno = n;
	store.size = 0;
	return 0;
}

/*
 * Close the open segment: a checkpoint as its last record, fsync, and hand it to the
 * compressor (above). A closed segment
 * must end with its checkpoint (verify reads anything else as a truncated segment), so when the
 * checkpoint cannot be written the segment stays open and the caller goes on writing to it,
 * unless `force` (hoopd stopping): then it is left uncompressed and without the checkpoint, which
 * the next start treats as an unclean stop and repairs.
 */
static int close_segment(const char *why, int force)
{
	int r;

	if (store.fd < 0)
		return 0;
	r = checkpoint(why);
	if (r && !force)
		return r;
	if (fsync(store.fd))
		log_warn("audit: fsync of segment %u: %s", store.segno, strerror(errno));
	else
		synced_to(store.seq);
	close(store.fd);
	store.fd = -1;
	if (r == 0)
		closed_below(store.segno + 1);
	return r;
}

/*
 * What reading a segment found: its last whole record (seq and hash continue the chain), the
 * times of its first and last records (retention goes by these, not by file times), and
 * whether its chain holds: every record names the hash of the one before it and the next seq,
 * and every checkpoint's HMAC is right. A segment is checked from its own start (its first
 * record's prev is taken on trust: it joins the segment before, which verify checks).
 */
struct seg_scan {
	int records;
	uint64_t seq, first_seq;
	char prev[TRAIL_HASH_HEX]; /* hash of the last whole record */
	char first_ts[40], last_ts[40];
	int bad;	      /* the chain does not hold */
	char why[256];	      /* where and how */
	uint64_t good_seq;    /* the last record up to which it holds */
	uint64_t last_cp_seq; /* its last checkpoint (0: none) */
};

/* The value of "key":"..." at the top of a record, into out (or ""). */
static void rec_str(const char *line, size_t len, const char *key, char *out, size_t n)
{
	char pat[48];
	const char *p, *e;
	size_t pl = (size_t)snprintf(pat, sizeof(pat), "\"%s\":\"", key);

	out[0] = '\0';
	p = memmem(line, len, pat, pl);
	if (!p)
		return;
	p += pl;
	e = memchr(p, '"', len - (size_t)(p - line));
	if (!e || (size_t)(e - p) >= n)
		return;
	memcpy(out, p, (size_t)(e - p));
	out[e - p] = '\0';
}

/* One record's chain link and, for a checkpoint, its MAC; sc->bad with why at the first
 * failure (later lines are still read: the last one continues the chain). */
static void scan_check(struct seg_scan *sc, const char *line, size_t len, unsigned lineno,
		       uint64_t seq, const char *prev)
{
	char kind[32];

	if (sc->records && !sc->bad && (seq != sc->seq + 1 || strcmp(prev, sc->prev))) {
		snprintf(sc->why, sizeof(sc->why),
			 "line %u (seq %llu) does not follow the record before it (%s)", lineno,
			 (unsigned long long)seq,
			 seq != sc->seq + 1 ? "sequence" : "hash: that record was changed");
		sc->bad = 1;
	}
	rec_str(line, len, "kind", kind, sizeof(kind));
	if (!strcmp(kind, "checkpoint") && !sc->bad) {
		char mac_hex[TRAIL_HASH_HEX], want[TRAIL_HASH_HEX];

		rec_str(line, len, "hmac", mac_hex, sizeof(mac_hex));
		trail_checkpoint_mac(store.key, seq, prev, want);
		if (strcmp(mac_hex, want)) {
			snprintf(sc->why, sizeof(sc->why),
				 "the checkpoint at line %u (seq %llu) does not verify", lineno,
				 (unsigned long long)seq);
			sc->bad = 1;
		} else {
			sc->last_cp_seq = seq;
		}
	}
	if (!sc->bad)
		sc->good_seq = seq;
}

static void scan_line(struct seg_scan *sc, const char *line, size_t len, unsigned lineno)
{
	char prev[TRAIL_HASH_HEX], ts[40];
	uint64_t seq;

	if (trail_parse_head(line, len, &seq, prev)) {
		if (!sc->bad)
			snprintf(sc->why, sizeof(sc->why),
				 "line %u is not a record (no seq and prev hash)", lineno);
		sc->bad = 1;
		return;
	}
	scan_check(sc, line, len, lineno, seq, prev);
	rec_str(line, len, "ts", ts, sizeof(ts));
	if (!sc->records) {
		sc->first_seq = seq;
		snprintf(sc->first_ts, sizeof(sc->first_ts), "%s", ts);
	}
	if (ts[0])
		snprintf(sc->last_ts, sizeof(sc->last_ts), "%s", ts);
	trail_chain_hash(line, len, sc->prev);
	sc->seq = seq;
	sc->records++;
}

/* Cut a plain segment back to its last newline: what a crash left after it was never
 * acknowledged, and is not part of the chain. */
static int drop_torn(const char *name, uint64_t whole, size_t torn)
{
	int r = 0, wfd = openat(store.dfd, name, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);

	log_warn("audit: %s/%s ends with a torn record (%zu bytes); removed", store.dir, name,
		 torn);
	if (wfd < 0 || ftruncate(wfd, (off_t)whole)) {
		log_error("audit: cannot remove the torn record from %s/%s: %s", store.dir, name,
			  strerror(errno));
		r = -EIO;
	}
	if (wfd >= 0)
		close(wfd);
	return r;
}

/*
 * Read segment n (plain, or gzip'd when gz) through store.dfd into sc, lines of any length
 * (hoopd wrote them: no limit but memory). In a plain segment left by a crash, bytes after the
 * last newline are a record cut short (power loss); with `repair` they are removed. 0, or a
 * negative errno.
 */
static int scan_segment(uint32_t n, int gz, int repair, struct seg_scan *sc)
{
	struct trail_lines l;
	char name[40];
	int r;

	memset(sc, 0, sizeof(*sc));
	seg_name(n, gz, name, sizeof(name));
	if (trail_lines_open(&l, store.dfd, name, SIZE_MAX)) {
		r = -errno;
		trail_lines_close(&l);
		return r;
	}
	while ((r = trail_lines_next(&l)) == 1 && !l.torn)
		scan_line(sc, l.line, l.len, l.lineno);
	if (r < 0)
		r = -EIO;
	else if (r == 1 && !gz && repair)
		r = drop_torn(name, l.whole, l.len);
	else
		r = 0;
	trail_lines_close(&l);
	return r;
}

/*
 * Find the last whole record of segment n and continue the chain from it: 1 when found, 0
 * when the segment holds no whole record, or a negative errno. *bad says whether the
 * segment's own chain failed verification (why in why).
 */
static int recover_tail(uint32_t n, int gz, int *bad, char *why, size_t whyn)
{
	struct seg_scan sc;
	int r = scan_segment(n, gz, 1, &sc);

	*bad = 0;
	if (r < 0)
		return r;
	if (!sc.records)
		return 0;
	memcpy(store.prev, sc.prev, sizeof(store.prev));
	store.seq = sc.seq;
	/* Records after the segment's last checkpoint are vouched for by nothing: anyone who
	 * could write the file could have rewritten them, chain and all. */
	if (!gz && sc.seq != sc.last_cp_seq)
		store.unvouched_from = sc.last_cp_seq ? sc.last_cp_seq + 1 : sc.first_seq;
	if (sc.bad) {
		*bad = 1;
		snprintf(why, whyn, "%s", sc.why);
	}
	return 1;
}

/* Does segment n exist, plain (gz 0) or compressed (gz 1)? */
static int seg_exists(uint32_t n, int gz)
{
	char name[40];

	seg_name(n, gz, name, sizeof(name));
	struct stat st;

	return fstatat(store.dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* <state dir>/audit, made if missing, and store.dfd on it. 0, or a negative errno. */
static int store_dir_open(const char *state_dir)
{
	int r;

	snprintf(store.dir, sizeof(store.dir), "%s/audit", state_dir);
	if (mkdir(store.dir, 0700) && errno != EEXIST) {
		r = -errno;
		log_error("cannot create %s: %s", store.dir, strerror(errno));
		return r;
	}
	if (store.dfd < 0 && (store.dfd = open_dir_nofollow(store.dir)) < 0) {
		r = -errno;
		log_error("cannot open %s: %s%s", store.dir, strerror(errno),
			  errno == ELOOP || errno == ENOTDIR ? " (it must be a directory, not a "
							       "symbolic link)"
							     : "");
		return r;
	}
	return 0;
}

/* The highest segment number (0: none) and whether that segment is plain (open when hoopd
 * stopped); compressions cut short by a crash are cleared away (their plain segment is
 * still there). 0, or a negative errno. */
static int last_segment(uint32_t *maxseg, int *open_seg)
{
	DIR *d = opendir(store.dir);
	struct dirent *de;

	*maxseg = 0;
	*open_seg = 0;
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		uint32_t n;
		enum trail_seg_kind kind;

		if (!trail_seg_parse(de->d_name, &n, &kind))
			continue;
		if (kind == TRAIL_SEG_GZ_TMP) {
			if (unlinkat(store.dfd, de->d_name, 0) && errno != ENOENT)
				log_warn("audit: cannot remove %s/%s: %s", store.dir, de->d_name,
					 strerror(errno));
			continue;
		}
		if (n >= *maxseg) {
			if (n > *maxseg || !*open_seg)
				*open_seg = kind == TRAIL_SEG_PLAIN;
			*maxseg = n;
		}
	}
	closedir(d);
	return 0;
}

/* Reopen the segment hoopd had open when it stopped uncleanly, and close it with a
 * checkpoint. 0, or a negative errno. */
static int close_recovered(uint32_t n)
{
	char name[40];
	struct stat st;
	int r;

	seg_name(n, 0, name, sizeof(name));
	store.fd = openat(store.dfd, name, O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC);
	if (store.fd < 0 || fstat(store.fd, &st)) {
		r = -errno;
		log_error("audit: cannot reopen %s/%s to close it: %s", store.dir, name,
			  strerror(errno));
		return r;
	}
	store.segno = n;
	store.size = (uint64_t)st.st_size;
	/* Stays open if its checkpoint cannot be written: records go on into it. */
	close_segment("recovered after an unclean stop", 0);
	return 0;
}

/*
 * Continue the chain from where the last hoopd stopped (or crashed). A crash right after a
 * segment was created leaves it empty: the chain then ends in the segment before it (or, with
 * none left, nothing was ever written). *bad_seg: the segment whose chain failed (why in
 * bad_why), else 0. 0, or a negative errno.
 */
static int recover(uint32_t maxseg, int open_seg, uint32_t *bad_seg, char *bad_why, size_t whyn)
{
	uint32_t n = maxseg;
	int gz = !open_seg, bad = 0, r;

	while ((r = recover_tail(n, gz, &bad, bad_why, whyn)) == 0 && n > 1) {
		n--;
		gz = !seg_exists(n, 0);
		/* Removed by retention: the chain starts in its successor. */
		if (gz && !seg_exists(n, 1))
			break;
	}
	if (r < 0) {
		log_error("audit: cannot read the end of the trail in %s: %s; refusing to start a "
			  "chain that would not join it",
			  store.dir, strerror(-r));
		return r;
	}
	if (bad) {
		/* The tail was changed while hoopd was down. Sealing it with a checkpoint would
		 * vouch for the change: it stays as found (verify shows where), and the chain goes
		 * on in a new segment whose first records say so. */
		*bad_seg = n;
		store.unvouched_from = 0; /* it is not sealed: no checkpoint speaks for it */
		log_error("audit: segment %u failed verification at start: %s; it is left "
			  "unsealed, and a new segment records the failure",
			  n, bad_why);
		return 0;
	}
	return open_seg ? close_recovered(maxseg) : 0;
}

/* The records a start begins with: audit_open, and audit_tail_unverified after a tail that
 * failed (bad_seg). 0, or a negative errno. */
static int write_start_records(uint32_t bad_seg, const char *bad_why)
{
	char ts[TS_ISO_US_LEN], obj[256];
	struct jbuf j;
	int r;

	ts_iso_us(ts);
	snprintf(obj, sizeof(obj),
		 "{\"ts\":\"%s\",\"kind\":\"audit_open\",\"segment\":%u,\"pid\":%d}", ts,
		 store.segno, (int)getpid());
	if ((r = write_record(obj, strlen(obj))) || !bad_seg)
		return r;
	jb_init(&j);
	jb_obj_open(&j);
	jb_kv_str(&j, "ts", ts);
	jb_kv_str(&j, "kind", "audit_tail_unverified");
	jb_kv_int(&j, "segment", bad_seg);
	jb_kv_str(&j, "problem", bad_why);
	jb_kv_str(&j, "note",
		  "the end of the trail failed verification when hoopd started; it was not "
		  "sealed, and the chain continues from its last line as found");
	jb_obj_close(&j);
	r = j.oom ? -ENOMEM : write_record(jb_str(&j), j.len);
	jb_free(&j);
	return r;
}

int audit_open(const char *state_dir, const struct audit_cfg *cfg)
{
	uint32_t maxseg, bad_seg = 0;
	int open_seg, r;
	char bad_why[256] = "";

	store.cfg = *cfg;
	memcpy(store.prev, TRAIL_ZERO_HASH, sizeof(store.prev));
	if ((r = store_dir_open(state_dir)) || (r = load_key(state_dir)) ||
	    (r = last_segment(&maxseg, &open_seg)))
		return r;
	if (maxseg && (r = recover(maxseg, open_seg, &bad_seg, bad_why, sizeof(bad_why))))
		return r;
	if (store.fd < 0 && (r = open_segment(maxseg + 1)))
		return r;
	/* Segments an earlier hoopd closed but did not get to compress are compressed now. */
	closed_below(store.segno);
	if ((r = compressor_start()))
		return r;
	audit_configure(cfg);
	if ((r = write_start_records(bad_seg, bad_why)))
		return r;
	log_info("audit trail in %s, segment %u, next record %llu, durability %s", store.dir,
		 store.segno, (unsigned long long)store.seq + 1,
		 store.cfg.durability == AUDIT_FSYNC ? "fsync" : "flush");
	return 0;
}

void audit_configure(const struct audit_cfg *cfg)
{
	const char *old = store.cfg.stream;

	store.cfg = *cfg;
	if (!store.cfg.checkpoint_every)
		store.cfg.checkpoint_every = 1000;
	if (!store.cfg.segment_bytes)
		store.cfg.segment_bytes = 64ULL << 20;
	if (store.stream && store.stream != stdout &&
	    (!cfg->stream || !old || strcmp(old, cfg->stream))) {
		fclose(store.stream);
		store.stream = NULL;
	}
	if (cfg->stream && !store.stream) {
		store.stream = !strcmp(cfg->stream, "stdout") ? stdout : fopen(cfg->stream, "ae");
		if (!store.stream)
			log_warn("audit: cannot open the stream %s: %s", cfg->stream,
				 strerror(errno));
	}
}

int audit_append(const char *obj, size_t len)
{
	int r;

	/* A segment that could not be created at the last rollover (disk full): try again. */
	if (store.fd < 0)
		r = store.segno ? open_segment(store.segno + 1) : -EBADF;
	else
		r = 0;
	if (r == 0)
		r = write_record(obj, len);
	if (r) {
		if (!store.failing)
			log_error(
			    "AUDIT TRAIL CANNOT BE WRITTEN (%s): statements are refused until "
			    "records can be written again",
			    strerror(-r));
		store.failing = 1;
		return r;
	}
	if (store.failing) {
		log_warn("audit trail writable again: statements flow again");
		store.failing = 0;
	}
	if (++store.since_cp >= store.cfg.checkpoint_every)
		checkpoint("interval");
	/* Rolled over only once the closing checkpoint is written; until then records go on
	 * into this segment, and the next append tries again. */
	if (store.size >= store.cfg.segment_bytes) {
		close_segment("segment full", 0);
		if (store.fd < 0)
			open_segment(store.segno + 1);
	}
	return 0;
}

uint64_t audit_durable(void)
{
	return store.cfg.durability == AUDIT_FSYNC ? syncer.durable : store.seq;
}

void audit_sync_start(int waiting)
{
	int64_t now;
	int fd;

	if (store.cfg.durability != AUDIT_FSYNC || syncer.in_flight || store.fd < 0 ||
	    syncer.durable >= store.seq)
		return;
	now = mono_ms();
	/* Nobody waits: within a second. Failing: every 100 ms, not every loop round. */
	if ((!waiting && now - syncer.last_ms < 1000) ||
	    (syncer.failing && now - syncer.last_ms < 100))
		return;
	if (syncer_start())
		return;
	fd = dup(store.fd);
	if (fd < 0) {
		log_error("audit: cannot sync: dup: %s", strerror(errno));
		return;
	}
	syncer.last_ms = now;
	syncer.in_flight = 1;
	pthread_mutex_lock(&syncer.w.mu);
	syncer.job_fd = fd;
	syncer.job_seq = store.seq;
	worker_wake(&syncer.w);
	pthread_mutex_unlock(&syncer.w.mu);
}

int audit_sync_fd(void)
{
	if (syncer.efd < 0)
		syncer.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	return syncer.efd;
}

int audit_sync_done(void)
{
	uint64_t n;
	int r;

	if (read(syncer.efd, &n, sizeof(n)) != sizeof(n) || !syncer.in_flight)
		return 0;
	pthread_mutex_lock(&syncer.w.mu);
	r = syncer.job_fd < 0 ? syncer.result
			      : -1; /* -1: a job not yet taken (cannot be: one at a time) */
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
	synced_to(syncer.job_seq);
	return 1;
}

/* "YYYY-MM-DDTHH:MM:SS..." (UTC, as records carry it) as a time, or -1. */
static time_t ts_time(const char *ts)
{
	struct tm tm;
	const char *e;

	memset(&tm, 0, sizeof(tm));
	e = strptime(ts, "%Y-%m-%dT%H:%M:%S", &tm);
	return e ? timegm(&tm) : (time_t)-1;
}

/*
 * Retention goes by the trail's own clock: a closed segment goes once its last record is older
 * than retention_s, oldest segment first, and only when its chain verifies (a segment made to
 * look old by editing it is kept, and said so). File times are not looked at: anyone who can
 * write the directory can set them. Reading a segment costs its decompression, so what was
 * found is kept (the oldest segment waits, usually, for a while), and a round reads one
 * segment, and more only while it has taken under 100 ms: this runs on the event loop (a
 * 64 MiB segment is a fraction of a second, once in its life).
 */
void audit_tick(void)
{
	static uint32_t known_n; /* the oldest segment read, and when its last record was */
	static time_t known_last;
	static int known_bad;
	time_t now = time(NULL);
	int64_t t0;
	uint32_t *ns;
	ssize_t got;
	size_t n;

	if (!store.cfg.retention_s || now - store.last_retention < 60)
		return;
	store.last_retention = now;
	got = segments_below(store.dir, TRAIL_SEG_GZ, store.segno, &ns);
	if (got < 0)
		return;
	n = (size_t)got;
	t0 = mono_ms();
	for (size_t i = 0, reads = 0; i < n; i++) {
		struct seg_scan sc;
		char obj[512], ts[TS_ISO_US_LEN], name[40];

		if (ns[i] != known_n) {
			if ((reads++ && mono_ms() - t0 > 100) || scan_segment(ns[i], 1, 0, &sc))
				break;
			known_n = ns[i];
			known_last = ts_time(sc.last_ts);
			known_bad = sc.bad;
			if (sc.bad)
				log_error("audit retention: segment %u fails verification (%s); "
					  "it is kept, and so is every segment after it",
					  ns[i], sc.why);
		}
		if (known_bad || known_last < 0 || now - known_last < store.cfg.retention_s)
			break; /* in trail order: nothing after it is older */
		/* Whole segments only, and the removal is itself on record. */
		ts_iso_us(ts);
		snprintf(obj, sizeof(obj),
			 "{\"ts\":\"%s\",\"kind\":\"retention\",\"removed_segment\":%u,"
			 "\"last_record_at\":%lld,\"retention_s\":%lld}",
			 ts, ns[i], (long long)known_last, (long long)store.cfg.retention_s);
		seg_name(ns[i], 1, name, sizeof(name));
		if (audit_append(obj, strlen(obj)) || unlinkat(store.dfd, name, 0))
			break;
		log_info("audit retention: removed %s/%s (its last record is from %lld)", store.dir,
			 name, (long long)known_last);
	}
	free(ns);
}

void audit_close(void)
{
	syncer_stop();
	if (store.fd >= 0) {
		close_segment("hoopd stopped", 1);
	}
	compressor_stop();
	if (store.stream && store.stream != stdout)
		fclose(store.stream);
	store.stream = NULL;
}

uint64_t audit_last_seq(void)
{
	return store.seq;
}

uint32_t audit_segment(void)
{
	return store.segno;
}

int audit_healthy(void)
{
	return store.fd >= 0 && !store.failing;
}
