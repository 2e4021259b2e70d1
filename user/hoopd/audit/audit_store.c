/*
 * The audit store: the open segment, the hash chain, signed checkpoints, recovery at start,
 * retention. Its workers are apart: the compressor of closed segments (audit_compress.c) and
 * the fsync durability syncer (audit_sync.c). The format itself (names, record head, chain
 * hash, checkpoint signature, keys, line reader) is trail.h's, shared with hoopctl's readers.
 */
#include "audit_store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audit_int.h"
#include "isotime.h"
#include "json.h"
#include "log.h"
#include "trail.h"

/* The trail being written (the event loop's alone). */
static struct {
	char dir[4096];
	int dfd; /* dir, opened once: every file in it is made and opened through it */
	struct audit_cfg cfg;
	int fd;			   /* open segment */
	uint32_t segno;		   /* its number */
	uint64_t size;		   /* its size */
	uint64_t seq;		   /* last sequence number written */
	char prev[TRAIL_HASH_HEX]; /* chain hash of the last record */
	EVP_PKEY *sign;		   /* the checkpoint signing key (audit.ed25519) */
	char key_id[TRAIL_KEYID_HEX];
	/* audit.key, when there is one: the HMAC of checkpoints written before hoopd signed them,
	 * which a start's and retention's checks still meet */
	uint8_t hmac_key[TRAIL_KEY_LEN];
	int have_hmac_key;
	uint32_t since_cp; /* records since the last checkpoint */
	int failing;	   /* the last append failed: say so once, and again when it recovers */
	FILE *stream;
	time_t last_retention;
	/* the next checkpoint closes a recovered segment whose records from this seq on no
	 * checkpoint covered before the unclean stop */
	uint64_t unvouched_from;
} store = {.fd = -1, .dfd = -1};

/* Another writer of this process's records (audit_remote.c), or NULL: this store. */
static const struct audit_ops *other;

void audit_use_ops(const struct audit_ops *ops)
{
	other = ops;
}

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
	int r = trail_sign_key_load(state_dir, 1, &store.sign, err, sizeof(err));

	if (r < 0) {
		log_error("%s; refusing to start the audit trail", err);
		return r;
	}
	if (err[0])
		log_warn("audit: %s", err);
	trail_key_id(store.sign, store.key_id);
	if (r == 1)
		log_info("generated the audit checkpoint signing key %s/audit.ed25519 (mode 0400: "
			 "keep agents away from it), key id %s; its public key, for auditors, is "
			 "%s/audit.pub",
			 state_dir, store.key_id, state_dir);
	/* Never made any more; read when an older hoopd left one, for its checkpoints. */
	r = trail_key_load(state_dir, 0, store.hmac_key, err, sizeof(err));
	store.have_hmac_key = r == 0;
	if (r < 0 && r != -ENOENT)
		log_warn("audit: %s: checkpoints written before hoopd signed them cannot be "
			 "checked at start",
			 err);
	return 0;
}

/*
 * A batch (audit_batch_begin/_end): the lines formatted and chained but not written yet, one
 * write for all of them. Each line keeps the store's state from before it, so that a write
 * that takes only part of the batch (disk full) leaves the whole lines it took and the store
 * goes on from there, as if the rest had never been appended.
 */
#define BATCH_MAX (1u << 20)
struct bline {
	size_t end; /* where the line ends in batch.buf */
	uint64_t seq, size, unvouched_from;
	uint32_t since_cp;
	char prev[TRAIL_HASH_HEX];
};
static struct {
	int on;
	char *buf;
	size_t len, cap;
	struct bline *l;
	size_t n, lcap;
	uint64_t written; /* the last seq written to the segment (== store.seq outside a batch) */
	/* a write inside this batch failed (it held 1 MiB, or a rollover came): the records after
	 * it are refused too, so that no later record takes the seq of one that was dropped and
	 * is acknowledged in its place; audit_batch_end fails with this errno */
	int failed;
} batch;

static int batch_flush(void);

static int batch_add(const char *line, size_t n)
{
	struct bline *b;

	if (batch.len && batch.len + n > BATCH_MAX) {
		int r = batch_flush();

		if (r)
			return r;
	}
	if (batch.len + n > batch.cap) {
		size_t nc = batch.cap ? batch.cap : 64 << 10;
		char *x;

		while (nc < batch.len + n)
			nc *= 2;
		if (!(x = realloc(batch.buf, nc)))
			return -ENOMEM;
		batch.buf = x;
		batch.cap = nc;
	}
	if (batch.n == batch.lcap) {
		size_t nc = batch.lcap ? batch.lcap * 2 : 256;

		if (!(b = realloc(batch.l, nc * sizeof(*b))))
			return -ENOMEM;
		batch.l = b;
		batch.lcap = nc;
	}
	b = &batch.l[batch.n++];
	memcpy(batch.buf + batch.len, line, n);
	batch.len += n;
	b->end = batch.len;
	b->seq = store.seq;
	b->size = store.size;
	b->unvouched_from = store.unvouched_from;
	b->since_cp = store.since_cp;
	memcpy(b->prev, store.prev, sizeof(b->prev));
	return 0;
}

/* Write the batch's lines. 0, or a negative errno: the lines from the first one not written
 * whole are taken back (a torn line is cut off the segment) and the store's state is as it
 * was before that line. */
static int batch_flush(void)
{
	size_t done = 0, k = 0;
	int e = 0;

	while (done < batch.len) {
		ssize_t w = write(store.fd, batch.buf + done, batch.len - done);

		if (w <= 0) {
			e = w < 0 ? errno : ENOSPC;
			if (e == EINTR)
				continue;
			break;
		}
		done += (size_t)w;
	}
	if (store.stream && done) {
		while (k < batch.n && batch.l[k].end <= done)
			k++;
		if (k) {
			fwrite(batch.buf, 1, batch.l[k - 1].end, store.stream);
			fflush(store.stream);
		}
	}
	if (e) {
		const struct bline *b;

		for (k = 0; k < batch.n && batch.l[k].end <= done; k++)
			;
		b = &batch.l[k]; /* the first line not written whole: back to before it */
		if (done > (k ? batch.l[k - 1].end : 0) && ftruncate(store.fd, (off_t)b->size))
			log_error("audit: cannot take back a partial record: %s", strerror(errno));
		lseek(store.fd, (off_t)b->size, SEEK_SET);
		store.seq = b->seq;
		store.size = b->size;
		store.unvouched_from = b->unvouched_from;
		store.since_cp = b->since_cp;
		memcpy(store.prev, b->prev, sizeof(store.prev));
	}
	batch.written = store.seq;
	batch.len = batch.n = 0;
	if (e && batch.on)
		batch.failed = e;
	return -e;
}

void audit_batch_begin(void)
{
	if (other)
		return;
	batch.on = 1;
	batch.failed = 0;
}

int audit_batch_end(void)
{
	int r;

	if (other || !batch.on)
		return 0;
	batch.on = 0;
	r = store.fd >= 0 ? batch_flush() : 0;
	if (!r && batch.failed)
		r = -batch.failed;
	if (r) {
		if (!store.failing)
			log_error("AUDIT TRAIL CANNOT BE WRITTEN (%s): statements are refused until "
				  "records can be written again",
				  strerror(-r));
		store.failing = 1;
	} else if (store.failing && store.fd >= 0) {
		log_warn("audit trail writable again: statements flow again");
		store.failing = 0;
	}
	if (batch.cap > (4u << 20)) { /* after huge records, do not keep their room */
		free(batch.buf);
		batch.buf = NULL;
		batch.cap = 0;
	}
	return r;
}

/* Write one line (obj without its leading '{' gets seq and prev in front); in a batch, into
 * the batch. */
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
	if (batch.on) {
		int r = batch.failed ? -batch.failed : batch_add(line, total + 1);

		if (r)
			return r;
		trail_chain_hash(line, total, store.prev);
		store.seq++;
		store.size += total + 1;
		return 0;
	}
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
	batch.written = store.seq;
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
	char sig[TRAIL_SIG_HEX], obj[512], ts[TS_ISO_US_LEN], unvouched[48] = "";

	/* The signature covers the hash of everything before it and its own sequence number.
	 * Signed only, no HMAC beside it: whoever holds audit.key (every verifier, until now)
	 * could otherwise make a checkpoint a verifier accepts. */
	if (trail_checkpoint_sign(store.sign, store.seq + 1, store.prev, sig)) {
		log_error("audit: cannot sign a checkpoint (OpenSSL failed); it is owed");
		return -EIO;
	}
	ts_iso_us(ts);
	if (store.unvouched_from)
		/* The signature below is made now, over whatever the records since the last
		 * checkpoint say: it cannot vouch for them (they may have been changed while hoopd
		 * was down), and says so for verify. */
		snprintf(unvouched, sizeof(unvouched), ",\"unvouched_from\":%llu",
			 (unsigned long long)store.unvouched_from);
	snprintf(obj, sizeof(obj),
		 "{\"ts\":\"%s\",\"kind\":\"checkpoint\",\"reason\":\"%s\",\"segment\":%u%s,"
		 "\"key\":\"%s\",\"sig\":\"%s\"}",
		 ts, why, store.segno, unvouched, store.key_id, sig);
	/* A checkpoint that could not be written (disk full) is owed: the next append retries. */
	if (write_record(obj, strlen(obj)))
		return -EIO;
	store.since_cp = 0;
	store.unvouched_from = 0;
	return 0;
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
 * compressor (audit_compress.c). A closed segment must end with its checkpoint (verify reads
 * anything else as a truncated segment), so when the checkpoint cannot be written the segment
 * stays open and the caller goes on writing to it, unless `force` (hoopd stopping): then it is
 * left uncompressed and without the checkpoint, which the next start treats as an unclean stop
 * and repairs.
 */
static int close_segment(const char *why, int force)
{
	int r;

	if (store.fd < 0)
		return 0;
	/* What a batch holds goes into this segment, before its closing checkpoint. */
	if (batch.len && (r = batch_flush()) && !force)
		return r;
	r = checkpoint(why);
	if (!r && batch.len)
		r = batch_flush();
	if (r && !force)
		return r;
	if (fsync(store.fd))
		log_warn("audit: fsync of segment %u: %s", store.segno, strerror(errno));
	else
		audit_syncer_synced_to(store.seq);
	close(store.fd);
	store.fd = -1;
	if (r == 0)
		audit_compressor_closed_below(store.segno + 1);
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
	int signed_cp;	      /* a signed checkpoint was met: no HMAC one may follow */
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

/* Does the checkpoint at this line hold: signed with this hoopd's key, or (written before hoopd
 * signed them, so never after a signed one) with the HMAC under audit.key? 0, or 1 with why. */
static int scan_checkpoint(struct seg_scan *sc, const char *line, size_t len, uint64_t seq,
			   const char *prev, char *why, size_t whyn)
{
	char sig[TRAIL_SIG_HEX + 1], key[TRAIL_KEYID_HEX + 1];
	char mac_hex[TRAIL_HASH_HEX], want[TRAIL_HASH_HEX];

	rec_str(line, len, "sig", sig, sizeof(sig));
	if (sig[0]) {
		sc->signed_cp = 1;
		rec_str(line, len, "key", key, sizeof(key));
		if (strcmp(key, store.key_id)) {
			snprintf(why, whyn, "is signed by key %.32s, not this hoopd's %s",
				 key[0] ? key : "(none)", store.key_id);
			return 1;
		}
		if (!trail_checkpoint_verify(store.sign, seq, prev, sig)) {
			snprintf(why, whyn, "does not verify");
			return 1;
		}
		return 0;
	}
	rec_str(line, len, "hmac", mac_hex, sizeof(mac_hex));
	if (!mac_hex[0]) {
		snprintf(why, whyn, "carries neither a signature nor an HMAC");
		return 1;
	}
	if (sc->signed_cp) {
		snprintf(why, whyn,
			 "carries an HMAC after signed checkpoints (hoopd signs every "
			 "checkpoint once it has begun)");
		return 1;
	}
	if (!store.have_hmac_key) {
		snprintf(why, whyn, "carries an HMAC and audit.key cannot be read");
		return 1;
	}
	trail_checkpoint_mac(store.hmac_key, seq, prev, want);
	if (strcmp(mac_hex, want)) {
		snprintf(why, whyn, "does not verify");
		return 1;
	}
	return 0;
}

/* One record's chain link and, for a checkpoint, its signature; sc->bad with why at the first
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
		char why[160];

		if (scan_checkpoint(sc, line, len, seq, prev, why, sizeof(why))) {
			snprintf(sc->why, sizeof(sc->why),
				 "the checkpoint at line %u (seq %llu) %s", lineno,
				 (unsigned long long)seq, why);
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
	store.seq = batch.written = sc.seq;
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
	audit_compressor_closed_below(store.segno);
	if ((r = audit_compressor_start(store.dir, store.dfd)))
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

	if (other)
		return; /* the broker's settings rule its store */

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

	if (other)
		return other->append(obj, len);

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
		if (!batch.on) { /* a batch says so once it is written */
			log_warn("audit trail writable again: statements flow again");
			store.failing = 0;
		}
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
	if (other)
		return other->durable();
	return store.cfg.durability == AUDIT_FSYNC ? audit_syncer_durable() : batch.written;
}

void audit_sync_start(int waiting)
{
	if (other) {
		other->sync_start(waiting);
		return;
	}
	if (store.cfg.durability == AUDIT_FSYNC && store.fd >= 0)
		audit_syncer_submit(store.fd, store.seq, waiting);
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

	if (other || !store.cfg.retention_s || now - store.last_retention < 60)
		return;
	store.last_retention = now;
	got = audit_segments_below(store.dir, TRAIL_SEG_GZ, store.segno, &ns);
	if (got < 0)
		return;
	n = (size_t)got;
	t0 = audit_mono_ms();
	for (size_t i = 0, reads = 0; i < n; i++) {
		struct seg_scan sc;
		char obj[512], ts[TS_ISO_US_LEN], name[40];

		if (ns[i] != known_n) {
			if ((reads++ && audit_mono_ms() - t0 > 100) ||
			    scan_segment(ns[i], 1, 0, &sc))
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
	if (other) {
		other->close();
		return;
	}
	audit_syncer_stop();
	if (store.fd >= 0) {
		close_segment("hoopd stopped", 1);
	}
	audit_compressor_stop();
	if (store.stream && store.stream != stdout)
		fclose(store.stream);
	store.stream = NULL;
	EVP_PKEY_free(store.sign);
	store.sign = NULL;
	OPENSSL_cleanse(store.hmac_key, sizeof(store.hmac_key));
}

int audit_sync_fd(void)
{
	return other ? other->sync_fd() : audit_syncer_fd();
}

int audit_sync_done(void)
{
	return other ? other->sync_done() : audit_syncer_done();
}

uint64_t audit_last_seq(void)
{
	return other ? other->last_seq() : store.seq;
}

uint32_t audit_segment(void)
{
	return other ? other->segment() : store.segno;
}

int audit_healthy(void)
{
	if (other)
		return other->healthy();
	return store.fd >= 0 && !store.failing;
}

void audit_mark_critical(void)
{
	if (other && other->mark_critical)
		other->mark_critical();
}

int audit_refused_in(uint64_t after, uint64_t upto)
{
	return other && other->refused_in ? other->refused_in(after, upto) : 0;
}
