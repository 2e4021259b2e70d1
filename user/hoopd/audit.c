/* The audit store: segments, the hash chain, HMAC checkpoints, compression, retention. */
#include "audit.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
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

#include "hex.h"
#include "json.h"
#include "log.h"
#include "thread.h"

static struct {
	char dir[4096];
	int dfd;	  /* dir, opened once: every file in it is made and opened through it */
	struct audit_cfg cfg;
	int fd;		  /* open segment */
	uint32_t segno;	  /* its number */
	uint64_t size;	  /* its size */
	uint64_t seq;	  /* last sequence number written */
	char prev[65];	  /* hex SHA-256 of the last record */
	uint8_t key[32];  /* checkpoint HMAC key */
	uint32_t since_cp; /* records since the last checkpoint */
	int failing; /* the last append failed: say so once, and again when it recovers */
	FILE *stream;
	time_t last_retention;
	/* the next checkpoint closes a recovered segment whose records from this seq on no
	 * checkpoint covered before the unclean stop */
	uint64_t unvouched_from;
} A = {.fd = -1, .dfd = -1};

static void seg_path(uint32_t n, int gz, char *out, size_t len)
{
	snprintf(out, len, "%s/seg-%08u.jsonl%s", A.dir, n, gz ? ".gz" : "");
}

/* A segment's file name, relative to A.dfd. */
static void seg_name(uint32_t n, int gz, char *out, size_t len)
{
	snprintf(out, len, "seg-%08u.jsonl%s", n, gz ? ".gz" : "");
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
	char p[4200];
	int fd, sdfd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	snprintf(p, sizeof(p), "%s/audit.key", state_dir);
	if (sdfd < 0) {
		log_error("cannot open the state directory %s: %s", state_dir, strerror(errno));
		return -errno;
	}
	fd = openat(sdfd, "audit.key", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0) {
		uint8_t k[sizeof(A.key) + 1];
		ssize_t n = 0, got;
		struct stat st;

		/* exactly 32 bytes of a regular file: anything else is not the key hoopd made */
		while (!fstat(fd, &st) && S_ISREG(st.st_mode) && (size_t)n < sizeof(k) &&
		       (got = read(fd, k + n, sizeof(k) - (size_t)n)) > 0)
			n += got;
		close(fd);
		close(sdfd);
		if (n == (ssize_t)sizeof(A.key)) {
			memcpy(A.key, k, sizeof(A.key));
			return 0;
		}
		log_error("%s is not a 32-byte key (%s); refusing to start the audit trail", p,
			  n > (ssize_t)sizeof(A.key) ? "longer" : "shorter, or not a regular file");
		return -EINVAL;
	}
	if (errno != ENOENT) {
		log_error("cannot read %s: %s; refusing to start the audit trail", p,
			  errno == ELOOP ? "it is a symbolic link" : strerror(errno));
		close(sdfd);
		return -EINVAL;
	}
	if (RAND_bytes(A.key, sizeof(A.key)) != 1) {
		close(sdfd);
		return -EIO;
	}
	fd = openat(sdfd, "audit.key", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0400);
	close(sdfd);
	if (fd < 0 || write(fd, A.key, sizeof(A.key)) != (ssize_t)sizeof(A.key) || fsync(fd)) {
		log_error("cannot write %s: %s", p, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -EIO;
	}
	close(fd);
	log_info("generated the audit checkpoint key %s (mode 0400: keep agents away from it)", p);
	return 0;
}

/*
 * SHA-256 of a record. OpenSSL 3's one-shot SHA256() looks the algorithm up in its provider
 * tables on every call, which cost more than the hashing of a short record: fetch it once.
 */
static void sha256(const void *p, size_t n, uint8_t out[SHA256_DIGEST_LENGTH])
{
	static EVP_MD *md;
	static EVP_MD_CTX *ctx;

	if (!md)
		md = EVP_MD_fetch(NULL, "SHA256", NULL);
	if (!ctx)
		ctx = EVP_MD_CTX_new();
	if (!md || !ctx || !EVP_DigestInit_ex2(ctx, md, NULL) || !EVP_DigestUpdate(ctx, p, n) ||
	    !EVP_DigestFinal_ex(ctx, out, NULL))
		SHA256(p, n, out);
}

/* Write one line (obj without its leading '{' gets seq and prev in front). */
static int write_record(const char *obj, size_t len)
{
	static char *line; /* reused: records are written one at a time, by the loop */
	static size_t cap;
	char head[128];
	uint8_t digest[SHA256_DIGEST_LENGTH];
	int hl;
	size_t total;
	ssize_t w;

	if (len < 2 || obj[0] != '{')
		return -EINVAL;
	{
		/* {"seq":N,"prev":"<hash>", without snprintf: this runs for every record */
		char digits[24];
		int nd = 0;
		uint64_t v = A.seq + 1;

		do
			digits[nd++] = (char)('0' + v % 10);
		while ((v /= 10));
		memcpy(head, "{\"seq\":", 7);
		hl = 7;
		while (nd)
			head[hl++] = digits[--nd];
		memcpy(head + hl, ",\"prev\":\"", 9);
		hl += 9;
		memcpy(head + hl, A.prev, 64);
		hl += 64;
		memcpy(head + hl, "\",", 2);
		hl += 2;
	}
	total = (size_t)hl + len - 1;
	if (total + 1 > cap) {
		size_t nc = total + 1 > 4096 ? total + 1 : 4096;
		char *x = malloc(nc);

		if (!x)
			return -ENOMEM;
		free(line);
		line = x;
		cap = nc;
	}
	memcpy(line, head, (size_t)hl);
	memcpy(line + hl, obj + 1, len - 1);
	if (len == 2) /* "{}": no trailing comma before the brace */
		line[hl - 1] = '}', total = (size_t)hl;
	line[total] = '\n';
	w = write(A.fd, line, total + 1);
	if (w != (ssize_t)(total + 1)) {
		int e = w < 0 ? errno : ENOSPC;

		/* A torn line would break the chain for whoever reads it: take it back. */
		if (w > 0 && ftruncate(A.fd, (off_t)A.size))
			log_error("audit: cannot take back a partial record: %s", strerror(errno));
		if (w > 0)
			lseek(A.fd, (off_t)A.size, SEEK_SET);
		return -e;
	}
	sha256(line, total, digest);
	hex_encode(digest, sizeof(digest), A.prev);
	A.seq++;
	A.size += total + 1;
	if (A.stream) {
		fwrite(line, 1, total + 1, A.stream);
		fflush(A.stream);
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
	uint8_t mac[32];
	unsigned int ml = sizeof(mac);
	char msg[128], machex[65], obj[512];
	time_t now = time(NULL);
	struct tm tm;
	char ts[32];

	/* The HMAC covers the hash of everything before it and its own sequence number. */
	snprintf(msg, sizeof(msg), "%llu:%s", (unsigned long long)(A.seq + 1), A.prev);
	HMAC(EVP_sha256(), A.key, sizeof(A.key), (const uint8_t *)msg, strlen(msg), mac, &ml);
	hex_encode(mac, ml, machex);
	gmtime_r(&now, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (A.unvouched_from)
		/* The HMAC below is made now, over whatever the records since the last checkpoint
		 * say: it cannot vouch for them (they may have been changed while hoopd was down),
		 * and says so for verify. */
		snprintf(obj, sizeof(obj),
			 "{\"ts\":\"%s\",\"kind\":\"checkpoint\",\"reason\":\"%s\","
			 "\"segment\":%u,\"unvouched_from\":%llu,\"hmac\":\"%s\"}",
			 ts, why, A.segno, (unsigned long long)A.unvouched_from, machex);
	else
		snprintf(obj, sizeof(obj),
			 "{\"ts\":\"%s\",\"kind\":\"checkpoint\",\"reason\":\"%s\","
			 "\"segment\":%u,\"hmac\":\"%s\"}",
			 ts, why, A.segno, machex);
	/* A checkpoint that could not be written (disk full) is owed: the next append retries. */
	if (write_record(obj, strlen(obj)))
		return -EIO;
	A.since_cp = 0;
	A.unvouched_from = 0;
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
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t tid;
	int running;
	int stop;	       /* finish what is closed, then exit */
	uint32_t closed_below; /* set by the loop */
	uint32_t done_below;   /* set by the worker */
	pid_t ktid;	       /* the worker's kernel thread id, for its scheduling class */
	int urgent;	       /* it runs as a normal thread (nice 10), not SCHED_IDLE */
	char dir[4096];	       /* A.dir, the worker's own copy */
	int dfd;	       /* and its own fd of it */
} Z = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .dfd = -1};

/* Segments waiting to be compressed beyond which compression stops yielding to everything. */
#define COMPRESS_BACKLOG 2

/*
 * The worker's scheduling class (Z.mu held). Compression is housekeeping: it runs under
 * SCHED_IDLE, on CPU time nothing else wants, so that on a busy node it does not take CPU from
 * the agents and the databases. When closed segments pile up (a node busy for a long time),
 * it becomes a normal thread at nice 10 until it has caught up, so that the disk does not
 * fill with uncompressed segments; and at stop, so that hoopd's exit does not wait for an idle
 * CPU.
 */
static void compressor_class(int urgent)
{
	struct sched_param sp = {0};

	if (!Z.ktid || urgent == Z.urgent)
		return;
	if (sched_setscheduler(Z.ktid, urgent ? SCHED_OTHER : SCHED_IDLE, &sp)) {
		log_debug("audit: compressor scheduling class: %s", strerror(errno));
		return;
	}
	if (urgent)
		setpriority(PRIO_PROCESS, (id_t)Z.ktid, 10);
	Z.urgent = urgent;
}

/* Closed segments are gzip files of independent members, one per COMPRESS_CHUNK of the plain
 * file, each made by libdeflate in one call: at level 1 on these records it takes half of
 * zlib's level-1 CPU (0.66 s against 1.26 s for 116 MB of pgbench records, ~3 us against ~6 us
 * per statement recorded) and writes 11% fewer bytes. gzip readers (zlib's gzread, which
 * hoopctl uses, gzip -d, Python's gzip) read concatenated members as one stream. */
#define COMPRESS_CHUNK (1 << 20)

static int compress_segment(int dir, uint32_t n)
{
	char src[64], dst[64], tmp[80];
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
	snprintf(src, sizeof(src), "seg-%08u.jsonl", n);
	snprintf(dst, sizeof(dst), "%s.gz", src);
	snprintf(tmp, sizeof(tmp), "%s.tmp", dst);
	fd = openat(dir, src, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ofd = openat(dir, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (ofd < 0 && errno == EEXIST) {
		/* a .tmp left by a crash, or planted (a symlink): the name goes, not its target */
		log_warn("audit: %s/%s exists; removing it (not following it) and starting over",
			 Z.dir, tmp);
		if (!unlinkat(dir, tmp, 0))
			ofd = openat(dir, tmp,
				     O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
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

/* The numbers of the segments in dir named seg-N<suffix> with N below `below`, oldest first,
 * into *out (free it). How many, or -errno when dir cannot be listed. */
static ssize_t segments_below(const char *dir, const char *suffix, uint32_t below, uint32_t **out)
{
	uint32_t *ns = NULL;
	size_t n = 0, cap = 0, sl = strlen(suffix);
	DIR *d = opendir(dir);
	struct dirent *de;

	*out = NULL;
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		unsigned v;
		int end = 0;

		if (sscanf(de->d_name, "seg-%8u%n", &v, &end) != 1 || !end ||
		    strcmp(de->d_name + end, suffix) || v >= below || strlen(de->d_name) != end + sl)
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
	ssize_t got = segments_below(Z.dir, ".jsonl", below, &ns);
	size_t n;

	if (got < 0) {
		log_warn("audit: cannot list %s to compress closed segments: %s", Z.dir,
			 strerror((int)-got));
		return;
	}
	n = (size_t)got;
	for (size_t i = 0; i < n; i++) {
		int r = compress_segment(Z.dfd, ns[i]);

		if (r)
			log_warn("audit: segment %u stays uncompressed for now: %s", ns[i],
				 strerror(-r));
	}
	free(ns);
}

static void *compressor(void *arg)
{
	pthread_mutex_lock(&Z.mu);
	Z.ktid = (pid_t)syscall(SYS_gettid);
	Z.urgent = 1; /* as created */
	compressor_class(Z.stop || Z.closed_below - Z.done_below > COMPRESS_BACKLOG);
	for (;;) {
		uint32_t below;

		while (Z.done_below == Z.closed_below && !Z.stop) {
			compressor_class(0); /* caught up */
			pthread_cond_wait(&Z.cv, &Z.mu);
		}
		if (Z.done_below == Z.closed_below)
			break; /* stopping, and nothing is left */
		below = Z.closed_below;
		pthread_mutex_unlock(&Z.mu);
		compress_closed(below);
		pthread_mutex_lock(&Z.mu);
		Z.done_below = below;
	}
	pthread_mutex_unlock(&Z.mu);
	return NULL;
}

/* Every segment below n is closed: hand them to the worker. */
static void closed_below(uint32_t n)
{
	pthread_mutex_lock(&Z.mu);
	if (n > Z.closed_below) {
		Z.closed_below = n;
		if (Z.closed_below - Z.done_below > COMPRESS_BACKLOG)
			compressor_class(1);
		pthread_cond_signal(&Z.cv);
	}
	pthread_mutex_unlock(&Z.mu);
}

static int compressor_start(void)
{
	int r;

	snprintf(Z.dir, sizeof(Z.dir), "%s", A.dir);
	if (Z.dfd < 0 && (Z.dfd = fcntl(A.dfd, F_DUPFD_CLOEXEC, 0)) < 0)
		return -errno;
	Z.stop = 0;
	r = thread_start(&Z.tid, compressor, "hoop-compress"); /* the tests find it by name */
	if (r) {
		log_error("audit: cannot start the segment compressor thread: %s", strerror(r));
		return -r;
	}
	Z.running = 1;
	return 0;
}

/* Compress what is closed, then end the worker. */
static void compressor_stop(void)
{
	if (!Z.running)
		return;
	pthread_mutex_lock(&Z.mu);
	Z.stop = 1;
	compressor_class(1);
	pthread_cond_signal(&Z.cv);
	pthread_mutex_unlock(&Z.mu);
	pthread_join(Z.tid, NULL);
	Z.running = 0;
	Z.ktid = 0;
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
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t tid;
	int running, stop;
	int job_fd;	   /* to sync; -1: no job */
	uint64_t job_seq;  /* the last record it covers */
	int efd;	   /* eventfd: a sync finished */
	int result;	   /* its outcome: 0 or an errno */
	/* the loop's own: */
	int in_flight;
	uint64_t durable;  /* every record up to this one is on disk */
	int64_t last_ms;   /* when the last sync started */
	int failing;
} Y = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .job_fd = -1, .efd = -1};

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void synced_to(uint64_t seq)
{
	if (seq > Y.durable)
		Y.durable = seq;
}

static void *syncer(void *arg)
{
	pthread_mutex_lock(&Y.mu);
	for (;;) {
		int fd, r;

		while (Y.job_fd < 0 && !Y.stop)
			pthread_cond_wait(&Y.cv, &Y.mu);
		if (Y.job_fd < 0)
			break;
		fd = Y.job_fd;
		pthread_mutex_unlock(&Y.mu);
		r = fdatasync(fd) ? errno : 0;
		close(fd);
		pthread_mutex_lock(&Y.mu);
		Y.job_fd = -1;
		Y.result = r;
		{
			uint64_t one = 1;
			ssize_t w = write(Y.efd, &one, sizeof(one));

			(void)w; /* only fails at the counter's maximum: the loop looks anyway */
		}
	}
	pthread_mutex_unlock(&Y.mu);
	return NULL;
}

static int syncer_start(void)
{
	int r;

	if (Y.running)
		return 0;
	if (Y.efd < 0) {
		Y.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (Y.efd < 0)
			return -errno;
	}
	Y.stop = 0;
	r = thread_start(&Y.tid, syncer, "hoop-fsync");
	if (r) {
		log_error("audit: cannot start the sync thread: %s", strerror(r));
		return -r;
	}
	Y.running = 1;
	return 0;
}

static void syncer_stop(void)
{
	if (!Y.running)
		return;
	pthread_mutex_lock(&Y.mu);
	Y.stop = 1;
	pthread_cond_signal(&Y.cv);
	pthread_mutex_unlock(&Y.mu);
	pthread_join(Y.tid, NULL);
	Y.running = 0;
	if (Y.job_fd >= 0)
		close(Y.job_fd);
	Y.job_fd = -1;
	Y.in_flight = 0;
}

static int open_segment(uint32_t n)
{
	char p[4200];

	seg_name(n, 0, p, sizeof(p));
	A.fd = openat(A.dfd, p, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_NOFOLLOW | O_CLOEXEC,
		      0600);
	if (A.fd < 0) {
		log_error("audit: cannot create %s/%s: %s", A.dir, p, strerror(errno));
		return -errno;
	}
	A.segno = n;
	A.size = 0;
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

	if (A.fd < 0)
		return 0;
	r = checkpoint(why);
	if (r && !force)
		return r;
	if (fsync(A.fd))
		log_warn("audit: fsync of segment %u: %s", A.segno, strerror(errno));
	else
		synced_to(A.seq);
	close(A.fd);
	A.fd = -1;
	if (r == 0)
		closed_below(A.segno + 1);
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
	char prev[65];		  /* hash of the last whole record */
	char first_ts[40], last_ts[40];
	int bad;		  /* the chain does not hold */
	char why[256];		  /* where and how */
	uint64_t good_seq;	  /* the last record up to which it holds */
	uint64_t last_cp_seq;	  /* its last checkpoint (0: none) */
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

static void scan_line(struct seg_scan *sc, const char *line, size_t len, unsigned lineno)
{
	uint8_t d[SHA256_DIGEST_LENGTH];
	char prev[65], ts[40], kind[32];
	uint64_t seq;
	char *end;

	if (len < 80 || memcmp(line, "{\"seq\":", 7)) {
		if (!sc->bad)
			snprintf(sc->why, sizeof(sc->why), "line %u is not a record", lineno);
		sc->bad = 1;
		return;
	}
	seq = strtoull(line + 7, &end, 10);
	if ((size_t)(end - line) + 73 > len || memcmp(end, ",\"prev\":\"", 9)) {
		if (!sc->bad)
			snprintf(sc->why, sizeof(sc->why), "line %u has no prev hash", lineno);
		sc->bad = 1;
		return;
	}
	memcpy(prev, end + 9, 64);
	prev[64] = '\0';
	if (sc->records && !sc->bad && (seq != sc->seq + 1 || strcmp(prev, sc->prev))) {
		snprintf(sc->why, sizeof(sc->why),
			 "line %u (seq %llu) does not follow the record before it (%s)", lineno,
			 (unsigned long long)seq,
			 seq != sc->seq + 1 ? "sequence" : "hash: that record was changed");
		sc->bad = 1;
	}
	rec_str(line, len, "kind", kind, sizeof(kind));
	if (!strcmp(kind, "checkpoint") && !sc->bad) {
		char mac_hex[65], want[65], msg[128];
		uint8_t mac[32];
		unsigned int ml = sizeof(mac);

		rec_str(line, len, "hmac", mac_hex, sizeof(mac_hex));
		snprintf(msg, sizeof(msg), "%llu:%s", (unsigned long long)seq, prev);
		HMAC(EVP_sha256(), A.key, sizeof(A.key), (const uint8_t *)msg, strlen(msg), mac,
		     &ml);
		hex_encode(mac, ml, want);
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
	rec_str(line, len, "ts", ts, sizeof(ts));
	if (!sc->records) {
		sc->first_seq = seq;
		snprintf(sc->first_ts, sizeof(sc->first_ts), "%s", ts);
	}
	if (ts[0])
		snprintf(sc->last_ts, sizeof(sc->last_ts), "%s", ts);
	sha256(line, len, d);
	hex_encode(d, sizeof(d), sc->prev);
	sc->seq = seq;
	sc->records++;
}

/*
 * Read segment n (plain, or gzip'd when gz) through A.dfd into sc. Records may be far longer
 * than any fixed buffer, so lines are assembled whole. In a plain segment left by a crash,
 * bytes after the last newline are a record cut short (power loss): never acknowledged, not
 * part of the chain; with `repair` they are removed. 0, or a negative errno.
 */
static int scan_segment(uint32_t n, int gz, int repair, struct seg_scan *sc)
{
	char p[4200], name[64];
	gzFile f;
	char chunk[65536];
	char *cur = NULL;
	size_t curlen = 0, curcap = 0;
	off_t whole = 0; /* bytes up to and including the last newline */
	unsigned lineno = 0;
	int r = 0, got, fd;

	memset(sc, 0, sizeof(*sc));
	seg_path(n, gz, p, sizeof(p));
	seg_name(n, gz, name, sizeof(name));
	fd = openat(A.dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	f = gzdopen(fd, "rb");
	if (!f) {
		close(fd);
		return -ENOMEM;
	}
	while ((got = gzread(f, chunk, sizeof(chunk))) > 0) {
		for (int i = 0; i < got; i++) {
			if (chunk[i] == '\n') {
				scan_line(sc, cur ? cur : "", curlen, ++lineno);
				curlen = 0;
				whole = gztell(f) - (got - i - 1);
				continue;
			}
			if (curlen + 1 > curcap) {
				size_t nc = curcap ? curcap * 2 : 4096;
				char *x = realloc(cur, nc);

				if (!x) {
					gzclose(f);
					free(cur);
					return -ENOMEM;
				}
				cur = x;
				curcap = nc;
			}
			cur[curlen++] = chunk[i];
		}
	}
	if (got < 0)
		r = -EIO;
	gzclose(f);
	if (curlen && !gz && repair && !r) {
		int wfd = openat(A.dfd, name, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);

		log_warn("audit: %s ends with a torn record (%zu bytes); removed", p, curlen);
		if (wfd < 0 || ftruncate(wfd, whole)) {
			log_error("audit: cannot remove the torn record from %s: %s", p,
				  strerror(errno));
			r = -EIO;
		}
		if (wfd >= 0)
			close(wfd);
	}
	free(cur);
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
	memcpy(A.prev, sc.prev, sizeof(A.prev));
	A.seq = sc.seq;
	/* Records after the segment's last checkpoint are vouched for by nothing: anyone who
	 * could write the file could have rewritten them, chain and all. */
	if (!gz && sc.seq != sc.last_cp_seq)
		A.unvouched_from = sc.last_cp_seq ? sc.last_cp_seq + 1 : sc.first_seq;
	if (sc.bad) {
		*bad = 1;
		snprintf(why, whyn, "%s", sc.why);
	}
	return 1;
}

/* Does segment n exist, plain (gz 0) or compressed (gz 1)? */
static int seg_exists(uint32_t n, int gz)
{
	char p[4200];

	seg_path(n, gz, p, sizeof(p));
	return access(p, F_OK) == 0;
}

int audit_open(const char *state_dir, const struct audit_cfg *cfg)
{
	uint32_t maxseg = 0, bad_seg = 0;
	int open_seg = 0, r, bad = 0;
	char bad_why[256] = "";
	DIR *d;
	struct dirent *de;

	A.cfg = *cfg;
	snprintf(A.dir, sizeof(A.dir), "%s/audit", state_dir);
	memset(A.prev, '0', 64);
	A.prev[64] = '\0';
	if (mkdir(A.dir, 0700) && errno != EEXIST) {
		log_error("cannot create %s: %s", A.dir, strerror(errno));
		return -errno;
	}
	if (A.dfd < 0 && (A.dfd = open_dir_nofollow(A.dir)) < 0) {
		r = -errno;
		log_error("cannot open %s: %s%s", A.dir, strerror(errno),
			  errno == ELOOP || errno == ENOTDIR ? " (it must be a directory, not a "
							       "symbolic link)" : "");
		return r;
	}
	if ((r = load_key(state_dir)))
		return r;
	d = opendir(A.dir);
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		unsigned n;
		char tail[16] = "";

		if (sscanf(de->d_name, "seg-%8u.jsonl%15s", &n, tail) == 2 && !strcmp(tail, ".gz.tmp")) {
			/* A compression cut short by a crash: the plain segment is still there. */
			if (unlinkat(A.dfd, de->d_name, 0) && errno != ENOENT)
				log_warn("audit: cannot remove %s/%s: %s", A.dir, de->d_name,
					 strerror(errno));
			continue;
		}
		if (sscanf(de->d_name, "seg-%8u.jsonl%15s", &n, tail) >= 1 && n >= maxseg) {
			if (n > maxseg || !open_seg)
				open_seg = !strcmp(tail, "");
			maxseg = n;
		}
	}
	closedir(d);
	if (maxseg) {
		/*
		 * Continue the chain from where the last hoopd stopped (or crashed). A crash right
		 * after a segment was created leaves it empty: the chain then ends in the segment
		 * before it (or, with none left, nothing was ever written).
		 */
		uint32_t n = maxseg;
		int gz = !open_seg;

		while ((r = recover_tail(n, gz, &bad, bad_why, sizeof(bad_why))) == 0 && n > 1) {
			n--;
			gz = !seg_exists(n, 0);
			/* Removed by retention: the chain starts in its successor. */
			if (gz && !seg_exists(n, 1))
				break;
		}
		if (r < 0) {
			log_error("audit: cannot read the end of the trail in %s: %s; refusing to "
				  "start a chain that would not join it",
				  A.dir, strerror(-r));
			return r;
		}
		if (bad) {
			/* The tail was changed while hoopd was down. Sealing it with a checkpoint
			 * would vouch for the change: it stays as found (verify shows where), and
			 * the chain goes on in a new segment whose first records say so. */
			bad_seg = n;
			A.unvouched_from = 0; /* it is not sealed: no checkpoint speaks for it */
			log_error("audit: segment %u failed verification at start: %s; it is left "
				  "unsealed, and a new segment records the failure",
				  n, bad_why);
		}
		if (open_seg && !bad) {
			char p[4200], name[64];
			struct stat st;

			seg_path(maxseg, 0, p, sizeof(p));
			seg_name(maxseg, 0, name, sizeof(name));
			A.fd = openat(A.dfd, name, O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC);
			if (A.fd < 0 || fstat(A.fd, &st)) {
				log_error("audit: cannot reopen %s to close it: %s", p,
					  strerror(errno));
				return -errno;
			}
			A.segno = maxseg;
			A.size = (uint64_t)st.st_size;
			/* Stays open if its checkpoint cannot be written: records go on into it. */
			close_segment("recovered after an unclean stop", 0);
		}
	}
	if (A.fd < 0 && (r = open_segment(maxseg + 1)))
		return r;
	/* Segments an earlier hoopd closed but did not get to compress are compressed now. */
	closed_below(A.segno);
	if ((r = compressor_start()))
		return r;
	audit_configure(cfg);
	{
		char obj[256];
		time_t now = time(NULL);
		struct tm tm;
		char ts[32];

		gmtime_r(&now, &tm);
		strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
		snprintf(obj, sizeof(obj),
			 "{\"ts\":\"%s\",\"kind\":\"audit_open\",\"segment\":%u,\"pid\":%d}", ts,
			 A.segno, (int)getpid());
		if ((r = write_record(obj, strlen(obj))))
			return r;
	}
	if (bad_seg) {
		struct jbuf j;

		jb_init(&j);
		jb_obj_open(&j);
		{
			char ts[32];
			time_t now = time(NULL);
			struct tm tm;

			gmtime_r(&now, &tm);
			strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
			jb_kv_str(&j, "ts", ts);
		}
		jb_kv_str(&j, "kind", "audit_tail_unverified");
		jb_kv_int(&j, "segment", bad_seg);
		jb_kv_str(&j, "problem", bad_why);
		jb_kv_str(&j, "note",
			  "the end of the trail failed verification when hoopd started; it was "
			  "not sealed, and the chain continues from its last line as found");
		jb_obj_close(&j);
		r = j.oom ? -ENOMEM : write_record(jb_str(&j), j.len);
		jb_free(&j);
		if (r)
			return r;
	}
	log_info("audit trail in %s, segment %u, next record %llu, durability %s", A.dir,
		 A.segno, (unsigned long long)A.seq + 1,
		 A.cfg.durability == AUDIT_FSYNC ? "fsync" : "flush");
	return 0;
}

void audit_configure(const struct audit_cfg *cfg)
{
	const char *old = A.cfg.stream;

	A.cfg = *cfg;
	if (!A.cfg.checkpoint_every)
		A.cfg.checkpoint_every = 1000;
	if (!A.cfg.segment_bytes)
		A.cfg.segment_bytes = 64ULL << 20;
	if (A.stream && A.stream != stdout && (!cfg->stream || !old || strcmp(old, cfg->stream))) {
		fclose(A.stream);
		A.stream = NULL;
	}
	if (cfg->stream && !A.stream) {
		A.stream = !strcmp(cfg->stream, "stdout") ? stdout : fopen(cfg->stream, "ae");
		if (!A.stream)
			log_warn("audit: cannot open the stream %s: %s", cfg->stream, strerror(errno));
	}
}

int audit_append(const char *obj, size_t len)
{
	int r;

	/* A segment that could not be created at the last rollover (disk full): try again. */
	if (A.fd < 0)
		r = A.segno ? open_segment(A.segno + 1) : -EBADF;
	else
		r = 0;
	if (r == 0)
		r = write_record(obj, len);
	if (r) {
		if (!A.failing)
			log_error("AUDIT TRAIL CANNOT BE WRITTEN (%s): statements are refused until "
				  "records can be written again",
				  strerror(-r));
		A.failing = 1;
		return r;
	}
	if (A.failing) {
		log_warn("audit trail writable again: statements flow again");
		A.failing = 0;
	}
	if (++A.since_cp >= A.cfg.checkpoint_every)
		checkpoint("interval");
	/* Rolled over only once the closing checkpoint is written; until then records go on
	 * into this segment, and the next append tries again. */
	if (A.size >= A.cfg.segment_bytes) {
		close_segment("segment full", 0);
		if (A.fd < 0)
			open_segment(A.segno + 1);
	}
	return 0;
}

uint64_t audit_durable(void)
{
	return A.cfg.durability == AUDIT_FSYNC ? Y.durable : A.seq;
}

void audit_sync_start(int waiting)
{
	int64_t now;
	int fd;

	if (A.cfg.durability != AUDIT_FSYNC || Y.in_flight || A.fd < 0 || Y.durable >= A.seq)
		return;
	now = mono_ms();
	/* Nobody waits: within a second. Failing: every 100 ms, not every loop round. */
	if ((!waiting && now - Y.last_ms < 1000) || (Y.failing && now - Y.last_ms < 100))
		return;
	if (syncer_start())
		return;
	fd = dup(A.fd);
	if (fd < 0) {
		log_error("audit: cannot sync: dup: %s", strerror(errno));
		return;
	}
	Y.last_ms = now;
	Y.in_flight = 1;
	pthread_mutex_lock(&Y.mu);
	Y.job_fd = fd;
	Y.job_seq = A.seq;
	pthread_cond_signal(&Y.cv);
	pthread_mutex_unlock(&Y.mu);
}

int audit_sync_fd(void)
{
	if (Y.efd < 0)
		Y.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	return Y.efd;
}

int audit_sync_done(void)
{
	uint64_t n;
	int r;

	if (read(Y.efd, &n, sizeof(n)) != sizeof(n) || !Y.in_flight)
		return 0;
	pthread_mutex_lock(&Y.mu);
	r = Y.job_fd < 0 ? Y.result : -1; /* -1: a job not yet taken (cannot be: one at a time) */
	pthread_mutex_unlock(&Y.mu);
	if (r < 0)
		return 0;
	Y.in_flight = 0;
	if (r) {
		if (!Y.failing)
			log_error("audit: fdatasync: %s; statements wait until a sync succeeds",
				  strerror(r));
		Y.failing = 1;
		return 0;
	}
	if (Y.failing)
		log_warn("audit: fdatasync succeeds again");
	Y.failing = 0;
	synced_to(Y.job_seq);
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
	static uint32_t known_n;   /* the oldest segment read, and when its last record was */
	static time_t known_last;
	static int known_bad;
	time_t now = time(NULL);
	int64_t t0;
	uint32_t *ns;
	ssize_t got;
	size_t n;

	if (!A.cfg.retention_s || now - A.last_retention < 60)
		return;
	A.last_retention = now;
	got = segments_below(A.dir, ".jsonl.gz", A.segno, &ns);
	if (got < 0)
		return;
	n = (size_t)got;
	t0 = mono_ms();
	for (size_t i = 0, reads = 0; i < n; i++) {
		struct seg_scan sc;
		char obj[512], ts[32], name[64];
		struct tm tm;

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
		if (known_bad || known_last < 0 || now - known_last < A.cfg.retention_s)
			break; /* in trail order: nothing after it is older */
		/* Whole segments only, and the removal is itself on record. */
		gmtime_r(&now, &tm);
		strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
		snprintf(obj, sizeof(obj),
			 "{\"ts\":\"%s\",\"kind\":\"retention\",\"removed_segment\":%u,"
			 "\"last_record_at\":%lld,\"retention_s\":%lld}",
			 ts, ns[i], (long long)known_last, (long long)A.cfg.retention_s);
		seg_name(ns[i], 1, name, sizeof(name));
		if (audit_append(obj, strlen(obj)) || unlinkat(A.dfd, name, 0))
			break;
		log_info("audit retention: removed %s/%s (its last record is from %lld)", A.dir,
			 name, (long long)known_last);
	}
	free(ns);
}

void audit_close(void)
{
	syncer_stop();
	if (A.fd >= 0) {
		close_segment("hoopd stopped", 1);
	}
	compressor_stop();
	if (A.stream && A.stream != stdout)
		fclose(A.stream);
	A.stream = NULL;
}

uint64_t audit_last_seq(void)
{
	return A.seq;
}

uint32_t audit_segment(void)
{
	return A.segno;
}

int audit_healthy(void)
{
	return A.fd >= 0 && !A.failing;
}
