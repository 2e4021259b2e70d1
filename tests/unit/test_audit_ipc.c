/*
 * Unit tests of the audit channel (user/hoopd/audit/audit_ipc.h): a broker process runs the real
 * store (audit_store.c) on a fresh state directory and serves forked worker processes
 * (audit_serve.c) from its event loop; each worker attaches its end of a socketpair
 * (audit_remote.c) and writes records through audit_store.h's API. Then `hoopctl verify` checks
 * the one chain, and the trail is read back: every worker's records present exactly once, in
 * its order. Also: a worker killed mid-stream, one killed with an acknowledgement unread (what it
 * had sent is recorded all the same), workers that send bad frames (cut off, others go on), and
 * a broker that does not read (audit_append refuses beyond the queue bound, without blocking,
 * and everything queued arrives once it reads).
 *
 * The broker forks its workers before it opens the store (audit_ipc.h: a child forked while the
 * store's threads run can block forever on a lock one of them held), and no case leaves a
 * process behind: workers die with their broker (PR_SET_PDEATHSIG), the broker kills and reaps
 * its workers by pid on every way out, a watchdog of its own included (SIGALRM), and the test
 * kills a broker that overruns even that, and reaps what was its (a child subreaper).
 *
 * Usage: test_audit_ipc STATE_BASE HOOPCTL
 */
#include <errno.h>
#include <json-c/json.h>
#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "audit_ipc.h"
#include "audit_store.h"
#include "harness.h"
#include "isotime.h"
#include "loop.h"

#define MAXW 8

/* Bounds on a case, past which it fails instead of hanging: the broker's loop stops itself
 * after LOOP_MS, its watchdog kills its workers after BROKER_S seconds, and the test's kills
 * the broker after CASE_S. */
#define LOOP_MS	 90000
#define BROKER_S 110
#define CASE_S	 130

enum wmode {
	W_NORMAL,      /* n records, then wait until all are acknowledged */
	W_FSYNC_WAIT,  /* n records, waiting for acknowledgements every 10 */
	W_ENDLESS,     /* records until killed */
	W_BAD_NEWLINE, /* 5 records, then a frame with a newline inside a record */
	W_BAD_NOTOBJ,  /* 5 records, then "[1,2]" */
	W_BAD_FORGED,  /* 5 records, then one with the store's "seq" key */
	W_BAD_KIND,    /* 5 records, then a "checkpoint" of its own */
	W_BAD_JSON,    /* 5 records, then {...} that is not JSON */
	W_BAD_BATCH_NL,	    /* 5 records, then a batch that ends with a newline */
	W_BAD_BATCH_FORGED, /* 5 records, then a batch whose second record has "seq" */
	W_BAD_BATCH_EMPTY,  /* 5 records, then an empty batch */
	W_BAD_FRAME,   /* 5 records, then a frame over AUDIT_IPC_FRAME_MAX */
	W_BAD_BIGREC,  /* 5 records, then one over the broker's record bound, in pieces */
	W_FILL,	       /* against a broker that does not read yet: until -ENOBUFS */
	W_LAZY,	       /* fsync: a record nobody asks a sync for is not acknowledged early */
	W_UNTIL_DEL,   /* 5 records, then until the broker stops serving it */
	W_DIE_UNREAD,  /* n records, reading no acknowledgement, then until killed */
};

struct tcase {
	const char *name;
	enum audit_durability dur;
	int nw, n;
	enum wmode mode[MAXW];
	int kill_idx, kill_ms; /* kill_ms 0: nobody is killed */
	int del_ms;	       /* the last worker is deleted (audit_serve_del) after del_ms */
	size_t record_max;
};

static const char *g_base, *g_hoopctl;

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- a worker ------------------------------------------------------------------------- */

static int g_lost;

static void worker_lost(void)
{
	g_lost = 1;
}

static int rec(char *out, size_t n, int w, int i, size_t pad)
{
	char ts[TS_ISO_US_LEN];
	int l;

	ts_iso_us(ts);
	l = snprintf(out, n, "{\"ts\":\"%s\",\"kind\":\"ipc_test\",\"w\":%d,\"i\":%d,\"pad\":\"",
		     ts, w, i);
	while (pad-- && (size_t)l < n - 3)
		out[l++] = 'x';
	out[l++] = '"';
	out[l++] = '}';
	out[l] = '\0';
	return l;
}

/* Read acknowledgements for up to ms, asking for a sync. */
static void pump(int ms)
{
	struct pollfd p = {.fd = audit_sync_fd(), .events = POLLIN};

	audit_sync_start(1);
	if (p.fd >= 0 && poll(&p, 1, ms) > 0)
		audit_sync_done();
}

static int wait_durable(uint64_t n, int ms)
{
	int64_t until = now_ms() + ms;

	while (audit_durable() < n && !g_lost && now_ms() < until)
		pump(20);
	return audit_durable() >= n;
}

static int append_retry(const char *r, size_t len)
{
	int e;

	while ((e = audit_append(r, len)) == -ENOBUFS)
		pump(10);
	return e;
}

#define WFAIL(code, ...)                                                                           \
	do {                                                                                       \
		fprintf(stderr, "worker %d: ", id);                                                \
		fprintf(stderr, __VA_ARGS__);                                                      \
		fprintf(stderr, "\n");                                                             \
		return code;                                                                       \
	} while (0)

static int bad_frame(int fd, int id, enum wmode m)
{
	static char big[100 << 10];
	const char *f = NULL;
	size_t fl = 0;

	if (m == W_BAD_NEWLINE) {
		f = "R{\"kind\":\"x\",\n\"y\":1}";
		/* The worker's own side refuses it too, without sending. */
		if (audit_append(f + 1, strlen(f + 1)) != -EINVAL)
			WFAIL(20, "a record with a newline was not refused locally");
	} else if (m == W_BAD_NOTOBJ) {
		f = "R[1,2]";
	} else if (m == W_BAD_FORGED) {
		f = "R{\"ts\":\"2026-01-01T00:00:00.000000Z\",\"kind\":\"statement\",\"seq\":1}";
	} else if (m == W_BAD_KIND) {
		f = "R{\"ts\":\"2026-01-01T00:00:00.000000Z\",\"kind\":\"checkpoint\","
		    "\"reason\":\"interval\"}";
	} else if (m == W_BAD_JSON) {
		f = "R{\"ts\":\"2026-01-01T00:00:00.000000Z\",\"kind\":\"x\",\"y\":}";
	} else if (m == W_BAD_BATCH_NL) {
		f = "B{\"ts\":\"2026-01-01T00:00:00.000000Z\",\"kind\":\"x\"}\n";
	} else if (m == W_BAD_BATCH_FORGED) {
		f = "B{\"ts\":\"2026-01-01T00:00:00.000000Z\",\"kind\":\"x\"}\n"
		    "{\"ts\":\"2026-01-01T00:00:00.000000Z\",\"kind\":\"x\",\"prev\":\"00\"}";
	} else if (m == W_BAD_BATCH_EMPTY) {
		f = "B";
	} else if (m == W_BAD_FRAME) {
		big[0] = 'R';
		fl = (size_t)rec(big + 1, sizeof(big) - 1, id, 6, sizeof(big) - 200) + 1;
		f = big;
		if (fl <= AUDIT_IPC_FRAME_MAX)
			WFAIL(21, "the big frame is not big");
	} else {
		size_t n = 300 << 10;
		char *r = malloc(n);
		int e;

		if (!r)
			WFAIL(22, "malloc");
		e = audit_append(r, (size_t)rec(r, n, id, 6, n - 200));
		free(r);
		if (e)
			WFAIL(23, "a big record was refused locally: %s", strerror(-e));
	}
	if (f && send(fd, f, fl ? fl : strlen(f), MSG_NOSIGNAL) < 0)
		WFAIL(24, "send: %s", strerror(errno));
	/* The broker cuts this worker off: its channel closes. */
	for (int64_t until = now_ms() + 10000; !g_lost && now_ms() < until;)
		pump(20);
	if (!g_lost)
		WFAIL(25, "not cut off");
	if (audit_append("{\"a\":1}", 7) != -EPIPE || audit_healthy())
		WFAIL(26, "appends after the channel closed are not refused");
	return 0;
}

static int fill(int id, int go_fd)
{
	char r[1100];
	int len, e = 0, ok = 0;
	int64_t t0 = now_ms();

	while (ok < 1000000 &&
	       (e = audit_append(r, (size_t)(len = rec(r, sizeof(r), id, ok + 1, 1000)))) == 0)
		ok++;
	if (e != -ENOBUFS)
		WFAIL(30, "the append after %d records returned %d, not -ENOBUFS", ok, e);
	if (now_ms() - t0 > 5000)
		WFAIL(31, "filling took %lld ms: appends block", (long long)(now_ms() - t0));
	if ((size_t)ok * (size_t)len < AUDIT_IPC_QUEUE_MAX)
		WFAIL(32, "only %d records were taken before -ENOBUFS", ok);
	if ((uint64_t)ok != audit_last_seq() || audit_healthy())
		WFAIL(33, "last_seq %llu for %d records, healthy %d",
		      (unsigned long long)audit_last_seq(), ok, audit_healthy());
	if (audit_durable() != 0)
		WFAIL(34, "records are durable before the broker read any");
	if (write(go_fd, "g", 1) != 1)
		WFAIL(35, "write: %s", strerror(errno));
	if (!wait_durable((uint64_t)ok, 60000))
		WFAIL(36, "%llu of %d records acknowledged", (unsigned long long)audit_durable(),
		      ok);
	/* Room again: taken, and acknowledged. */
	len = rec(r, sizeof(r), id, ok + 1, 10);
	if (audit_append(r, (size_t)len) || !wait_durable((uint64_t)ok + 1, 10000) ||
	    !audit_healthy())
		WFAIL(37, "no append after the queue emptied");
	return 0;
}

/* With fsync durability an acknowledgement means "on disk": a record is not acknowledged when
 * the broker writes it, only when a sync covers it, and with nobody asking for one the store
 * waits up to a second since the last. */
static int lazy(int id)
{
	char r[512];
	int64_t t0;

	if (audit_append(r, (size_t)rec(r, sizeof(r), id, 1, 10)) || !wait_durable(1, 10000))
		WFAIL(40, "record 1 not acknowledged");
	if (audit_append(r, (size_t)rec(r, sizeof(r), id, 2, 10)))
		WFAIL(41, "record 2 refused");
	for (t0 = now_ms(); now_ms() - t0 < 300;) {
		struct pollfd p = {.fd = audit_sync_fd(), .events = POLLIN};

		audit_sync_start(0); /* nobody waits */
		if (poll(&p, 1, 20) > 0)
			audit_sync_done();
	}
	if (audit_durable() != 1)
		WFAIL(42, "record 2 acknowledged before any sync was asked for (durable %llu)",
		      (unsigned long long)audit_durable());
	if (!wait_durable(2, 10000))
		WFAIL(43, "record 2 not acknowledged after asking for a sync");
	audit_close();
	return 0;
}

/* Records into the socket, none of the broker's acknowledgements read (not even its first, in
 * the socket since audit_serve_add): the broker kills this worker once it says so. */
static int die_unread(int id, int n, int go_fd)
{
	char r[512];

	for (int i = 1; i <= n; i++)
		if (audit_append(r, (size_t)rec(r, sizeof(r), id, i, 100)))
			WFAIL(60, "append %d refused", i);
	audit_remote_flush(); /* what a worker's loop does after each round */
	if (write(go_fd, "g", 1) != 1)
		WFAIL(61, "write: %s", strerror(errno));
	for (;;)
		pause();
}

static int worker(int fd, int id, const struct tcase *c, enum wmode m, int go_fd)
{
	char r[512];
	int n = c->n;

	if (loop_init()) /* its own, not the broker's inherited epoll set */
		WFAIL(2, "loop_init");
	if (audit_remote_attach(fd, worker_lost))
		WFAIL(3, "attach");
	if (m == W_FILL)
		return fill(id, go_fd);
	if (m == W_LAZY)
		return lazy(id);
	if (m == W_DIE_UNREAD)
		return die_unread(id, n, go_fd);
	if (m >= W_BAD_NEWLINE || m == W_UNTIL_DEL)
		n = 5;
	for (int i = 1; m == W_ENDLESS || i <= n; i++) {
		int len = rec(r, sizeof(r), id, i, (size_t)(i * 7 % 200));

		if (append_retry(r, (size_t)len))
			WFAIL(4, "append %d refused", i);
		if (m == W_FSYNC_WAIT && i % 10 == 0 && !wait_durable((uint64_t)i, 20000))
			WFAIL(5, "record %d not durable", i);
		if (m == W_ENDLESS && i % 10 == 0)
			usleep(500);
		if (i % 50 == 0)
			pump(0);
	}
	if (!wait_durable((uint64_t)n, 30000))
		WFAIL(6, "%llu of %d records acknowledged", (unsigned long long)audit_durable(), n);
	if (audit_last_seq() != (uint64_t)n || audit_segment() == 0)
		WFAIL(7, "last_seq %llu, segment %u", (unsigned long long)audit_last_seq(),
		      audit_segment());
	if (m >= W_BAD_NEWLINE && m <= W_BAD_BIGREC)
		return bad_frame(fd, id, m);
	if (m == W_UNTIL_DEL) {
		for (int64_t until = now_ms() + 10000; !g_lost && now_ms() < until;)
			pump(20);
		if (!g_lost)
			WFAIL(50, "still served");
	}
	audit_close();
	return 0;
}

/* ---- the broker ----------------------------------------------------------------------- */

static struct {
	const struct tcase *c;
	volatile pid_t pid[MAXW]; /* 0 once reaped; the watchdog reads it */
	int status[MAXW], reaped, nlost, deleted;
	enum audit_lost_why why[MAXW];
	int64_t t0;
	struct loop_watch syncw;
} B;

static void on_lost(uint32_t id, enum audit_lost_why why, const char *detail, void *arg)
{
	if (id < 1 || id > MAXW || B.why[id - 1]) {
		unit_fail(__FILE__, __LINE__, "lost callback for worker %u twice or unknown", id);
		return;
	}
	B.why[id - 1] = why;
	B.nlost++;
}

/* Wait for worker i (flags 0 or WNOHANG), by its pid: 1 when it was reaped. SIGALRM waits
 * meanwhile, so that the watchdog never kills a pid already reaped (and perhaps reused). */
static int reap(int i, int flags)
{
	sigset_t alrm, old;
	int st, r = 0;

	if (B.pid[i] <= 0)
		return 0;
	sigemptyset(&alrm);
	sigaddset(&alrm, SIGALRM);
	sigprocmask(SIG_BLOCK, &alrm, &old);
	if (waitpid(B.pid[i], &st, flags) == B.pid[i]) {
		B.status[i] = st;
		B.pid[i] = 0;
		B.reaped++;
		r = 1;
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
	return r;
}

/* SIGALRM in the broker: a case that hangs (a worker that never ends, a loop that never stops,
 * a read that never returns) fails and leaves no worker behind. Async-signal-safe calls only. */
static void broker_watchdog(int sig)
{
	static const char m[] = "test_audit_ipc: the broker ran out of time: its workers killed\n";
	ssize_t w;

	for (int i = 0; i < MAXW; i++)
		if (B.pid[i] > 0) {
			kill(B.pid[i], SIGKILL);
			waitpid(B.pid[i], NULL, 0);
		}
	w = write(STDERR_FILENO, m, sizeof(m) - 1);
	(void)w;
	_exit(3);
}

/* Threads of this process, from /proc/self/status; -1 when unknown. */
static int threads(void)
{
	char line[256];
	FILE *f = fopen("/proc/self/status", "r");
	int n = -1;

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "Threads: %d", &n) == 1)
			break;
	if (f)
		fclose(f);
	return n;
}

static void on_synced(struct loop_watch *w, uint32_t events)
{
	if (audit_sync_done())
		audit_serve_synced();
}

static void broker_tick(void)
{
	const struct tcase *c = B.c;

	audit_serve_tick();
	audit_sync_start(audit_serve_waiting());
	for (int i = 0; i < c->nw; i++)
		reap(i, WNOHANG);
	if (c->kill_ms && B.pid[c->kill_idx] && now_ms() - B.t0 > c->kill_ms)
		kill(B.pid[c->kill_idx], SIGKILL);
	if (c->del_ms && !B.deleted && now_ms() - B.t0 > c->del_ms) {
		CHECK_EQ_INT(audit_serve_del((uint32_t)c->nw), 0);
		B.deleted = 1;
	}
	if ((B.reaped == c->nw && B.nlost == c->nw - B.deleted) || now_ms() - B.t0 > LOOP_MS)
		loop_stop();
}

static void broker(const struct tcase *c, const char *dir)
{
	struct audit_cfg cfg = {
	    .durability = c->dur, .checkpoint_every = 50, .segment_bytes = 48 << 10};
	int ends[MAXW], go[2] = {-1, -1};
	pid_t self = getpid();
	char b;

	B.c = c;
	signal(SIGALRM, broker_watchdog);
	alarm(BROKER_S);
	CHECK(pipe(go) == 0);
	/* Every worker first, while this process has one thread: audit_open starts the store's
	 * (the compressor at once), and a worker forked while one of them held an allocator lock
	 * blocked on it for good in its next malloc (ASan's allocator, GCC 12), so that it stopped
	 * sending and the case waited for it. */
	CHECK_EQ_INT(threads(), 1);
	for (int i = 0; i < c->nw; i++) {
		int sv[2];

		CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
		fflush(NULL);
		B.pid[i] = fork();
		if (B.pid[i] == 0) {
			/* it dies with the broker, whatever ends the broker */
			if (prctl(PR_SET_PDEATHSIG, SIGKILL) || getppid() != self)
				_exit(8);
			for (int j = 0; j < i; j++)
				close(ends[j]);
			close(sv[0]);
			close(go[0]);
			if (c->mode[i] != W_FILL && c->mode[i] != W_DIE_UNREAD)
				close(go[1]);
			_exit(worker(sv[1], i + 1, c, c->mode[i], go[1]));
		}
		CHECK(B.pid[i] > 0);
		close(sv[1]);
		ends[i] = sv[0];
	}
	close(go[1]); /* a worker that fails is an end of file, not a hang */
	CHECK_EQ_INT(audit_open(dir, &cfg), 0);
	CHECK_EQ_INT(loop_init(), 0);
	CHECK_EQ_INT(loop_add(&B.syncw, audit_sync_fd(), EPOLLIN, on_synced), 0);
	audit_serve_on_lost(on_lost, NULL);
	if (c->record_max)
		audit_serve_record_max(c->record_max);
	for (int i = 0; i < c->nw; i++) {
		/* A broker that does not read yet: the worker says when its queue is full. */
		if (c->mode[i] == W_FILL)
			CHECK(read(go[0], &b, 1) == 1);
		CHECK_EQ_INT(audit_serve_add(ends[i], (uint32_t)i + 1), 0);
		/* Its first acknowledgement is in its socket now, unread: once its records are
		 * there too, it dies, and its end of the channel reports a reset before them. */
		if (c->mode[i] == W_DIE_UNREAD) {
			CHECK(read(go[0], &b, 1) == 1);
			kill(B.pid[i], SIGKILL);
			CHECK(reap(i, 0));
		}
	}
	CHECK_EQ_INT(audit_serve_add(ends[0], 1), -EEXIST);
	CHECK_EQ_INT(audit_serve_del(99), -ENOENT);
	B.t0 = now_ms();
	loop_run(20, broker_tick);
	CHECK(now_ms() - B.t0 <= LOOP_MS);
	/* None outlives the case: a worker still running after the loop's bound is killed. */
	for (int i = 0; i < c->nw; i++)
		if (B.pid[i] > 0) {
			unit_fail(__FILE__, __LINE__, "%s: worker %d still runs: killed", c->name,
				  i + 1);
			kill(B.pid[i], SIGKILL);
			reap(i, 0);
		}
	alarm(0);
	audit_serve_close_all();
	audit_close();
	for (int i = 0; i < c->nw; i++) {
		enum wmode m = c->mode[i];
		int killed = (c->kill_ms && i == c->kill_idx) || m == W_DIE_UNREAD;

		unit_where("%s, worker %d", c->name, i + 1);
		if (killed) {
			CHECK(WIFSIGNALED(B.status[i]) && WTERMSIG(B.status[i]) == SIGKILL);
		} else {
			CHECK(WIFEXITED(B.status[i]));
			CHECK_EQ_INT(WEXITSTATUS(B.status[i]), 0);
		}
		CHECK_EQ_INT(B.why[i], m == W_UNTIL_DEL ? 0
				       : m >= W_BAD_NEWLINE && m <= W_BAD_BIGREC
					   ? AUDIT_LOST_BAD_FRAME
					   : AUDIT_LOST_CLOSED);
	}
}

/* ---- reading the trail back ------------------------------------------------------------ */

struct seen {
	int last[MAXW + 1], count[MAXW + 1], cuts[MAXW + 1], order_bad, records;
};

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

static int jint(struct json_object *o, const char *k)
{
	struct json_object *v;

	return json_object_object_get_ex(o, k, &v) ? json_object_get_int(v) : -1;
}

static const char *jstr(struct json_object *o, const char *k)
{
	struct json_object *v;

	return json_object_object_get_ex(o, k, &v) ? json_object_get_string(v) : "";
}

static void read_trail(const char *dir, struct seen *s)
{
	static char line[1 << 20];
	char path[1024];
	struct dirent **ents;
	int n;

	memset(s, 0, sizeof(*s));
	snprintf(path, sizeof(path), "%s/audit", dir);
	n = scandir(path, &ents, NULL, by_name);
	CHECK(n > 0);
	for (int i = 0; i < n; i++) {
		unsigned seg;
		gzFile f = NULL;

		if (sscanf(ents[i]->d_name, "seg-%8u.jsonl", &seg) == 1) {
			snprintf(path, sizeof(path), "%s/audit/%s", dir, ents[i]->d_name);
			f = gzopen(path, "rb");
			CHECK(f != NULL);
		}
		while (f && gzgets(f, line, sizeof(line))) {
			struct json_object *o = json_tokener_parse(line);
			int w = o ? jint(o, "w") : -1;

			CHECK(o != NULL);
			s->records++;
			if (o && !strcmp(jstr(o, "kind"), "ipc_test") && w >= 1 && w <= MAXW) {
				/* exactly once, in the worker's order */
				if (jint(o, "i") != s->last[w] + 1)
					s->order_bad++;
				s->last[w] = jint(o, "i");
				s->count[w]++;
			} else if (o && !strcmp(jstr(o, "kind"), "audit_channel_cut")) {
				w = jint(o, "worker");
				if (w >= 1 && w <= MAXW)
					s->cuts[w]++;
			}
			json_object_put(o);
		}
		if (f)
			gzclose(f);
		free(ents[i]);
	}
	free(ents);
}

static int verify(const char *dir)
{
	char cmd[2048];
	int st;

	snprintf(cmd, sizeof(cmd), "%s verify --state-dir %s >%s/verify.out 2>&1", g_hoopctl, dir,
		 dir);
	st = system(cmd);
	if (!WIFEXITED(st) || WEXITSTATUS(st)) {
		snprintf(cmd, sizeof(cmd), "cat %s/verify.out >&2", dir);
		if (system(cmd))
			fprintf(stderr, "(no verify output)\n");
		return -1;
	}
	return 0;
}

static volatile pid_t g_broker;

/* SIGALRM in the test: the broker overran even its own watchdog. Killed; its workers die with
 * it (PR_SET_PDEATHSIG) and are reaped here. */
static void case_watchdog(int sig)
{
	static const char m[] = "test_audit_ipc: the broker overran its own watchdog: killed\n";
	ssize_t w;

	if (g_broker > 0)
		kill(g_broker, SIGKILL);
	w = write(STDERR_FILENO, m, sizeof(m) - 1);
	(void)w;
}

/* Run the case: the broker in a process of its own (its store and loop are process-wide),
 * then the trail as hoopctl and a reader see it. */
static void run_case(const struct tcase *c, struct seen *s)
{
	char dir[1024];
	pid_t p, self = getpid();
	siginfo_t si;
	int st = 0;

	snprintf(dir, sizeof(dir), "%s/%s", g_base, c->name);
	mkdir(g_base, 0700);
	CHECK(mkdir(dir, 0700) == 0);
	fflush(NULL);
	p = fork();
	if (p == 0) {
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) || getppid() != self)
			_exit(8);
		broker(c, dir);
		fflush(NULL);
		_exit(unit_state.test_failed ? 1 : 0);
	}
	CHECK(p > 0);
	if (p < 0)
		return;
	g_broker = p;
	alarm(CASE_S);
	/* WNOWAIT: the broker stays a zombie, its pid not free for reuse, until the alarm that
	 * would kill it is off */
	while (waitid(P_PID, (id_t)p, &si, WEXITED | WNOWAIT) && errno == EINTR)
		;
	alarm(0);
	g_broker = 0;
	CHECK(waitpid(p, &st, 0) == p);
	/* What was the broker's and outlived it came here (a subreaper), killed by then: reaped. */
	while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
		;
	unit_where("%s", c->name);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CHECK_EQ_INT(verify(dir), 0);
	read_trail(dir, s);
	CHECK_EQ_INT(s->order_bad, 0);
	for (int w = 1; w <= c->nw; w++) {
		enum wmode m = c->mode[w - 1];

		unit_where("%s, worker %d", c->name, w);
		if (m == W_NORMAL || m == W_FSYNC_WAIT || m == W_DIE_UNREAD)
			CHECK_EQ_INT(s->count[w], c->n);
		else if ((m >= W_BAD_NEWLINE && m <= W_BAD_BIGREC) || m == W_UNTIL_DEL)
			CHECK_EQ_INT(s->count[w], 5);
		CHECK_EQ_INT(s->cuts[w], m >= W_BAD_NEWLINE && m <= W_BAD_BIGREC);
	}
}

static void test_three_workers_one_chain(void)
{
	static const struct tcase c = {.name = "flush",
				       .dur = AUDIT_FLUSH,
				       .nw = 3,
				       .n = 1500,
				       .mode = {W_NORMAL, W_NORMAL, W_NORMAL}};
	struct seen s;

	run_case(&c, &s);
	/* with checkpoints and rollovers between them: one chain across segments */
	CHECK(s.records > 3 * 1500 + 3 * 1500 / 50);
}

static void test_fsync_acks_after_sync(void)
{
	static const struct tcase c = {.name = "fsync",
				       .dur = AUDIT_FSYNC,
				       .nw = 2,
				       .n = 400,
				       .mode = {W_FSYNC_WAIT, W_FSYNC_WAIT}};
	struct seen s;

	run_case(&c, &s);
}

static void test_fsync_ack_waits_for_sync(void)
{
	static const struct tcase c = {
	    .name = "fsync-lazy", .dur = AUDIT_FSYNC, .nw = 1, .mode = {W_LAZY}};
	struct seen s;

	run_case(&c, &s);
	CHECK_EQ_INT(s.count[1], 2);
}

/* An orderly stop of a worker's channel: no lost callback, its records kept, others go on. */
static void test_serve_del(void)
{
	static const struct tcase c = {.name = "del",
				       .dur = AUDIT_FLUSH,
				       .nw = 2,
				       .n = 500,
				       .mode = {W_NORMAL, W_UNTIL_DEL},
				       .del_ms = 200};
	struct seen s;

	run_case(&c, &s);
}

static void test_killed_worker(void)
{
	static const struct tcase c = {.name = "kill",
				       .dur = AUDIT_FLUSH,
				       .nw = 3,
				       .n = 2000,
				       .mode = {W_NORMAL, W_ENDLESS, W_NORMAL},
				       .kill_idx = 1,
				       .kill_ms = 300};
	struct seen s;

	run_case(&c, &s);
	CHECK(s.count[2] > 0); /* what it sent before it died, in order (order_bad) */
}

/* Killed with the broker's acknowledgement unread, its records sent: its end of the channel
 * reports a reset before those records, and they are in the trail all the same (they were
 * lost when the broker took the reset for the end). */
static void test_killed_acks_unread(void)
{
	static const struct tcase c = {.name = "kill-unread",
				       .dur = AUDIT_FLUSH,
				       .nw = 2,
				       .n = 50,
				       .mode = {W_NORMAL, W_DIE_UNREAD}};
	struct seen s;

	run_case(&c, &s);
}

static void test_bad_frames_cut_off(void)
{
	static const struct tcase c = {
	    .name = "bad",
	    .dur = AUDIT_FLUSH,
	    .nw = 5,
	    .n = 1000,
	    .mode = {W_NORMAL, W_BAD_NEWLINE, W_BAD_NOTOBJ, W_BAD_FRAME, W_BAD_BIGREC},
	    .record_max = 256 << 10};
	struct seen s;

	run_case(&c, &s);
}

/* A compromised worker may not write what only the store writes (a line's seq and prev, a
 * checkpoint), nor a line that is not JSON (hoopctl verify would stop there for the whole
 * node): cut off, the others go on. */
static void test_forged_records_cut_off(void)
{
	static const struct tcase c = {
	    .name = "forged",
	    .dur = AUDIT_FLUSH,
	    .nw = 7,
	    .n = 500,
	    .mode = {W_NORMAL, W_BAD_FORGED, W_BAD_KIND, W_BAD_JSON, W_BAD_BATCH_NL,
		     W_BAD_BATCH_FORGED, W_BAD_BATCH_EMPTY}};
	struct seen s;

	run_case(&c, &s);
}

static void test_full_socket_refuses(void)
{
	static const struct tcase c = {
	    .name = "full", .dur = AUDIT_FSYNC, .nw = 1, .mode = {W_FILL}};
	struct seen s;

	run_case(&c, &s);
	CHECK(s.count[1] * 1200 >= (int)AUDIT_IPC_QUEUE_MAX); /* records of ~1100 bytes */
}

/* The broker writes what one wake-up read in one write (audit_batch_begin/_end). On a full
 * disk that write takes part of a batch: the whole lines it took stay, the torn one is cut
 * off, the records after it are dropped (audit_batch_end fails, audit_last_seq() is the last
 * line on disk), the trail verifies, and once there is room the chain goes on from there.
 * The store is on a 256 KiB tmpfs of the child's own mount namespace. */
static void batch_disk_full(const char *dir)
{
	struct audit_cfg cfg = {.durability = AUDIT_FLUSH, .checkpoint_every = 100,
				.segment_bytes = 1 << 20};
	char r[1100];
	struct seen s;
	uint64_t before;
	int failed = 0, i = 0;

	CHECK(unshare(CLONE_NEWNS) == 0);
	CHECK(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0);
	CHECK(mount("tmpfs", dir, "tmpfs", 0, "size=256k,mode=0700") == 0);
	CHECK_EQ_INT(audit_open(dir, &cfg), 0);
	while (!failed && i < 100000) {
		audit_batch_begin();
		for (int k = 0; k < 37; k++, i++) {
			int len = rec(r, sizeof(r), 1, i + 1, 1000);

			CHECK_EQ_INT(audit_append(r, (size_t)len), 0);
		}
		before = audit_last_seq();
		failed = audit_batch_end() != 0;
	}
	CHECK(failed);
	CHECK(!audit_healthy());
	CHECK(audit_last_seq() < before); /* part of the batch went, not all of it */
	CHECK_EQ_INT(audit_durable(), audit_last_seq());
	CHECK_EQ_INT(verify(dir), 0);
	read_trail(dir, &s);
	CHECK_EQ_INT(s.records, (int)audit_last_seq()); /* one chain from 1: every line counted */
	CHECK_EQ_INT(s.order_bad, 0);
	/* Room again: the chain goes on, from the last line on disk. */
	CHECK(mount("tmpfs", dir, "tmpfs", MS_REMOUNT, "size=4m,mode=0700") == 0);
	audit_batch_begin();
	for (int k = 0; k < 5; k++) {
		int len = rec(r, sizeof(r), 2, k + 1, 100);

		CHECK_EQ_INT(audit_append(r, (size_t)len), 0);
	}
	CHECK_EQ_INT(audit_batch_end(), 0);
	CHECK(audit_healthy());
	audit_close();
	CHECK_EQ_INT(verify(dir), 0);
	read_trail(dir, &s);
	CHECK_EQ_INT(s.count[2], 5);
	CHECK_EQ_INT(s.order_bad, 0);
	umount2(dir, MNT_DETACH);
}

/* A batch over 1 MiB is written in parts: when a part fails (here the file-size limit) and the
 * rollback leaves room, later records of the same batch must not be written into the seqs of
 * the dropped ones (they would be acknowledged in their place): the batch fails, the store's
 * last seq is the last line on disk, and the trail verifies. */
static void batch_part_fails(const char *dir)
{
	struct audit_cfg cfg = {.durability = AUDIT_FLUSH, .checkpoint_every = 100000,
				.segment_bytes = 64 << 20};
	char r[1200], seg[1200];
	struct stat sb;
	struct rlimit rl;
	struct seen s;
	int len;

	signal(SIGXFSZ, SIG_IGN);
	CHECK_EQ_INT(audit_open(dir, &cfg), 0);
	snprintf(seg, sizeof(seg), "%s/audit/seg-00000001.jsonl", dir);
	CHECK(stat(seg, &sb) == 0);
	/* room for one more line of ~1100 bytes and a bit: the first part of the batch takes it
	 * and is cut back to that line, leaving a few hundred bytes */
	CHECK(getrlimit(RLIMIT_FSIZE, &rl) == 0);
	rl.rlim_cur = (rlim_t)sb.st_size + 1500;
	CHECK(setrlimit(RLIMIT_FSIZE, &rl) == 0);
	audit_batch_begin();
	/* big records until a part of the batch has gone to the file (> 1 MiB), then one small */
	for (int i = 0; i < 2000; i++) {
		struct stat now;

		len = rec(r, sizeof(r), 1, i + 1, 1000);
		(void)audit_append(r, (size_t)len); /* the one whose part fails is refused */
		if (stat(seg, &now) == 0 && now.st_size != sb.st_size)
			break;
	}
	len = rec(r, sizeof(r), 2, 1, 0); /* small: would fit in what the rollback left */
	audit_append(r, (size_t)len);
	CHECK(audit_batch_end() != 0);
	CHECK(!audit_healthy());
	CHECK_EQ_INT(audit_durable(), audit_last_seq());
	read_trail(dir, &s);
	CHECK_EQ_INT(s.records, (int)audit_last_seq());
	CHECK_EQ_INT(s.count[2], 0);
	CHECK_EQ_INT(s.order_bad, 0);
	rl.rlim_cur = rl.rlim_max;
	CHECK(setrlimit(RLIMIT_FSIZE, &rl) == 0);
	audit_close();
	CHECK_EQ_INT(verify(dir), 0);
}

static void test_batch_part_fails(void)
{
	char dir[1024];
	pid_t p;
	int st = 0;

	snprintf(dir, sizeof(dir), "%s/batch-part", g_base);
	mkdir(g_base, 0700);
	CHECK(mkdir(dir, 0700) == 0);
	fflush(NULL);
	p = fork();
	if (p == 0) {
		batch_part_fails(dir);
		fflush(NULL);
		_exit(unit_state.test_failed ? 1 : 0);
	}
	CHECK(p > 0);
	CHECK(waitpid(p, &st, 0) == p);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void test_batch_disk_full(void)
{
	char dir[1024];
	pid_t p;
	int st = 0;

	snprintf(dir, sizeof(dir), "%s/batch-full", g_base);
	mkdir(g_base, 0700);
	CHECK(mkdir(dir, 0700) == 0);
	fflush(NULL);
	p = fork();
	if (p == 0) {
		batch_disk_full(dir);
		fflush(NULL);
		_exit(unit_state.test_failed ? 1 : 0);
	}
	CHECK(p > 0);
	CHECK(waitpid(p, &st, 0) == p);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s STATE_BASE HOOPCTL\n", argv[0]);
		return 2;
	}
	g_base = argv[1];
	g_hoopctl = argv[2];
	signal(SIGPIPE, SIG_IGN);
	signal(SIGALRM, case_watchdog);
	/* a broker's workers that outlive it are re-parented here, to be reaped */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1))
		fprintf(stderr, "test_audit_ipc: PR_SET_CHILD_SUBREAPER: %s\n", strerror(errno));
	UNIT_RUN(test_three_workers_one_chain);
	UNIT_RUN(test_fsync_acks_after_sync);
	UNIT_RUN(test_fsync_ack_waits_for_sync);
	UNIT_RUN(test_killed_worker);
	UNIT_RUN(test_killed_acks_unread);
	UNIT_RUN(test_serve_del);
	UNIT_RUN(test_bad_frames_cut_off);
	UNIT_RUN(test_forged_records_cut_off);
	UNIT_RUN(test_full_socket_refuses);
	UNIT_RUN(test_batch_disk_full);
	UNIT_RUN(test_batch_part_fails);
	return unit_report();
}
