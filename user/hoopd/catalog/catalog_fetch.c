/*
 * Catalog loading for masking (see catalog_fetch.h). The event loop hands jobs to a small pool
 * of threads and learns of results through an eventfd; each thread has a loader process of its
 * own (catalog_loader.c: libpq, as an unprivileged user, exec'd fresh), sends it the job and
 * rebuilds the catalog from its answer, checking every byte (catalog_wire.c). The destination
 * is the one the agent dialled, so an agent can point a job at a server of its own: hence the
 * loader's separate, unprivileged process, the deadline per job (a loader past it is killed),
 * one running job per destination, a deadline for every session that waits, catalogs only for
 * destinations hoopd dials from its own namespace, and a connection that picks up nothing from
 * anyone's home (.pgpass, client certificates) and is offered the password only for a server
 * the operator pinned (see pinned()), by SCRAM with channel binding. The CA file and the
 * password file are read here, by root, and sent with the job.
 */
#include "catalog_fetch.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <signal.h>
#include <unistd.h>

#include "catalog_wire.h"
#include "daemon.h"
#include "log.h"
#include "loop.h"
#include "policy.h"
#include "thread.h"

#define RETRY_FAILED_MS 10000 /* a failed load is tried again after this */
#define STALE_MIN_MS 1000     /* on-demand reloads at most this often */
#define IDLE_DROP_MS 600000   /* entries nobody used for this long are dropped */
#define WORKERS 3	      /* catalog loads that run at once */
#define WAIT_DEADLINE_MS 10000 /* a session waits this long for a first catalog, then has none */

struct centry {
	uint64_t ino;
	char dst[64];
	char database[128];
	char user[64];
	uint8_t family;
	uint8_t addr[16];
	uint16_t port; /* network order */
	int target_id;
	int agent_only; /* the destination exists only in the agent's namespace: never loaded */
	int64_t first_ms; /* the first load was asked for then: sessions wait for it, not for ever */
	struct catbox *box; /* current catalog (this entry's reference), NULL before the first */
	struct cat_waiter *waiters; /* for the first load */
	int loading;
	int64_t loaded_ms, used_ms, stale_ms;
	struct centry *next;
};

struct job {
	struct centry *e;
	uint64_t ino; /* with hostaddr and port: the destination, one running job each */
	char hostaddr[INET6_ADDRSTRLEN], host[256], port[8], dbname[128], user[64];
	char password_file[512], sslmode[16], sslrootcert[512];
	int target_id;
	char login_user[64]; /* the session's login (catalog.user, when set, wins in j->user) */
	int pinned; /* the password may be offered (pinned()) */
	int ca_system; /* verify against OpenSSL's default bundle */
	struct catalog *cat; /* result */
	char error[256];
	int64_t ms; /* how long the load took */
	struct job *next;
};

static struct {
	pthread_t th[WORKERS];
	int started, stop;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct job *todo, *done;
	struct job *running[WORKERS];
	int stopfd; /* written at stop: running loads give up */
	int nworkers;
	int efd;
	struct loop_watch w;
	struct centry *entries;
} loader = {.mu = PTHREAD_MUTEX_INITIALIZER,
       .cv = PTHREAD_COND_INITIALIZER,
       .efd = -1,
       .stopfd = -1};

void catbox_put(struct catbox *b)
{
	if (!b || --b->refs > 0)
		return;
	cat_free(b->cat);
	free(b);
}

static int ms_left(int64_t deadline)
{
	int64_t l = deadline - now_ms();

	return l < 0 ? 0 : l > 1000000 ? 1000000 : (int)l;
}

/* Wait for fd to be ready for events, up to the deadline, or until hoopd stops. 1 = ready,
 * 0 = deadline passed (or stopping), -1 = error. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	for (;;) {
		struct pollfd pf[2] = {{.fd = fd, .events = events},
				       {.fd = loader.stopfd, .events = POLLIN}};
		int ms = ms_left(deadline), r;

		if (ms == 0)
			return 0;
		r = poll(pf, 2, ms);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (pf[1].revents)
			return 0;
		if (r > 0)
			return 1;
	}
}

/* ---- the worker: one thread, one loader process ---- */

/* A file of root's (the CA, the password) read for the loader, which cannot. 0, or -1. */
static int read_file(const char *path, char *out, size_t n, size_t *len, char *err, size_t errn,
		     const char *what)
{
	FILE *f = fopen(path, "re");
	size_t l;

	if (!f) {
		snprintf(err, errn, "cannot read %s %s: %s", what, path, strerror(errno));
		return -1;
	}
	l = fread(out, 1, n, f);
	if (l == n && fgetc(f) != EOF) {
		fclose(f);
		snprintf(err, errn, "%s %s is over %zu bytes", what, path, n - 1);
		return -1;
	}
	fclose(f);
	*len = l;
	return 0;
}

static int fill_request(const struct job *j, struct catwire_req *q, char *err, size_t errn)
{
	size_t l = 0;

	memset(q, 0, sizeof(*q));
	snprintf(q->hostaddr, sizeof(q->hostaddr), "%s", j->hostaddr);
	snprintf(q->host, sizeof(q->host), "%s", j->host);
	snprintf(q->port, sizeof(q->port), "%s", j->port);
	snprintf(q->dbname, sizeof(q->dbname), "%s", j->dbname);
	snprintf(q->user, sizeof(q->user), "%s", j->user);
	snprintf(q->sslmode, sizeof(q->sslmode), "%s", j->sslmode);
	q->ca_system = (uint8_t)j->ca_system;
	if (j->sslrootcert[0]) {
		if (read_file(j->sslrootcert, q->ca_pem, sizeof(q->ca_pem), &l, err, errn,
			      "ca_file"))
			return -1;
		q->ca_len = (uint32_t)l;
	}
	q->pinned = (uint8_t)j->pinned;
	q->password_file_set = j->password_file[0] != 0;
	if (j->password_file[0] && j->pinned) {
		/* its first line; offered only to a pinned server */
		if (read_file(j->password_file, q->password, sizeof(q->password) - 1, &l,
			      q->password_error, sizeof(q->password_error),
			      "catalog.password_file")) {
			q->password[0] = 0;
		} else {
			q->password[l] = 0;
			q->password[strcspn(q->password, "\r\n")] = 0;
			q->has_password = 1;
		}
	}
	return 0;
}

struct loader_proc {
	pid_t pid;
	int fd;
};

static void loader_kill(struct loader_proc *lp)
{
	if (lp->fd >= 0)
		close(lp->fd);
	if (lp->pid > 0) {
		kill(lp->pid, SIGKILL);
		while (waitpid(lp->pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	lp->fd = -1;
	lp->pid = 0;
}

/* fork and exec `hoopd --catalog-loader UID:GID` with its end of a socket pair as descriptor
 * 3 and no other; between fork and exec only async-signal-safe calls (hoopd has threads). */
static int loader_spawn(struct loader_proc *lp, char *err, size_t errn)
{
	int sv[2];
	char ids[48];
	sigset_t none;
	char *argv[] = {"hoopd", "--catalog-loader", ids, NULL};
	struct rlimit rl;
	int maxfd = getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur > 1 << 20 ? 1 << 20
									   : (int)rl.rlim_cur;

	snprintf(ids, sizeof(ids), "%u:%u", (unsigned)hoopd.o.run_uid, (unsigned)hoopd.o.run_gid);
	sigemptyset(&none);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) {
		snprintf(err, errn, "catalog loader: socketpair: %s", strerror(errno));
		return -1;
	}
	lp->pid = fork();
	if (lp->pid < 0) {
		snprintf(err, errn, "catalog loader: fork: %s", strerror(errno));
		close(sv[0]);
		close(sv[1]);
		lp->pid = 0;
		return -1;
	}
	if (lp->pid == 0) {
		sigprocmask(SIG_SETMASK, &none, NULL);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (sv[1] == 3 ? fcntl(3, F_SETFD, 0) != 0 : dup2(sv[1], 3) != 3)
			_exit(127);
		if (close_range(4, ~0U, 0))
			/* an older kernel, or a runtime's filter: one by one, up to the limit */
			for (int fd = 4; fd < maxfd; fd++)
				close(fd);
		execv("/proc/self/exe", argv);
		_exit(127);
	}
	close(sv[1]);
	lp->fd = sv[0];
	return 0;
}

/* Read n bytes by the deadline, or until hoopd stops. 0; -1 (deadline, stop, error); -EPIPE
 * when the peer closed before the first byte. */
static int read_by(int fd, void *buf, size_t n, int64_t deadline)
{
	uint8_t *b = buf;
	size_t want = n;

	while (n) {
		ssize_t r;

		if (wait_fd(fd, POLLIN, deadline) <= 0)
			return -1;
		r = read(fd, b, n);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r <= 0)
			return r == 0 && n == want ? -EPIPE : -1;
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

/* The loader's answer on fd: 0 when it answered (a catalog in *cat, or its error in j), -1
 * when it broke (deadline, nonsense, hoopd stopping), -EPIPE when it was gone before
 * answering. */
static int read_answer(int fd, struct job *j, struct catalog **cat)
{
	struct catwire_ans_head h;
	int64_t deadline = now_ms() + CATWIRE_JOB_MS + 5000;
	uint32_t len;
	uint8_t *ops;
	int r;

	*cat = NULL;
	if ((r = read_by(fd, &len, 4, deadline)))
		return r;
	if (len < sizeof(h) || read_by(fd, &h, sizeof(h), deadline) ||
	    h.ops_len != len - sizeof(h) || h.ops_len > CATWIRE_MAX_FRAME ||
	    !memchr(h.error, 0, sizeof(h.error)))
		return -1;
	if (!h.ok) {
		snprintf(j->error, sizeof(j->error), "%s", h.error);
		return 0;
	}
	if (!(ops = malloc(h.ops_len ? h.ops_len : 1)))
		return -1;
	if (read_by(fd, ops, h.ops_len, deadline)) {
		free(ops);
		return -1;
	}
	*cat = catwire_build(ops, h.ops_len, j->error, sizeof(j->error));
	free(ops);
	return *cat ? 0 : -1; /* what is not a catalog: the loader is not trusted again */
}

/* One job through the loader: as read_answer, after sending it the job. */
static int exchange(struct loader_proc *lp, struct job *j, const struct catwire_req *q,
		    struct catalog **cat)
{
	int r;

	*cat = NULL;
	r = catwire_send(lp->fd, q, sizeof(*q), NULL, 0);
	if (r)
		return r == -EPIPE || r == -ECONNRESET ? -EPIPE : -1;
	return read_answer(lp->fd, j, cat);
}

int (*catalog_remote)(const struct catalog_remote_req *r, int *fd, char *err, size_t errn);

/* In a worker: the broker spawns the loader and sends the job; this reads the answer. */
static struct catalog *ask_broker(struct job *j)
{
	struct catalog_remote_req r = {.target_id = (uint32_t)j->target_id};
	struct catalog *cat = NULL;
	int fd;

	snprintf(r.hostaddr, sizeof(r.hostaddr), "%s", j->hostaddr);
	snprintf(r.port, sizeof(r.port), "%s", j->port);
	snprintf(r.dbname, sizeof(r.dbname), "%s", j->dbname);
	snprintf(r.user, sizeof(r.user), "%s", j->login_user);
	if (catalog_remote(&r, &fd, j->error, sizeof(j->error)))
		return NULL;
	if (read_answer(fd, j, &cat) && !j->error[0])
		snprintf(j->error, sizeof(j->error), "%s",
			 loader.stop ? "hoopd is stopping"
				     : "the catalog loader process failed or missed its deadline");
	close(fd);
	return cat;
}

/*
 * The job's catalog, from a loader process of its own (spawned for it; the caller kills it
 * after, whatever happened). One that was gone before it answered (it could not start) is
 * replaced and asked again, once.
 */
static struct catalog *ask_loader(struct loader_proc *lp, struct job *j)
{
	static _Thread_local struct catwire_req q; /* 64 KiB of CA: not on the stack */
	struct catalog *cat = NULL;

	if (fill_request(j, &q, j->error, sizeof(j->error)))
		return NULL;
	for (int tries = 0; tries < 2; tries++) {
		int fresh = lp->pid <= 0, r;

		if (fresh && loader_spawn(lp, j->error, sizeof(j->error)))
			break;
		r = exchange(lp, j, &q, &cat);
		if (r == 0)
			break;
		if (!j->error[0] || r == -EPIPE)
			snprintf(j->error, sizeof(j->error), "%s",
				 loader.stop ? "hoopd is stopping"
					     : "the catalog loader process failed or missed its "
					       "deadline");
		loader_kill(lp);
		if (r != -EPIPE || fresh || loader.stop)
			break;
		j->error[0] = '\0';
	}
	explicit_bzero(q.password, sizeof(q.password));
	return cat;
}

static struct job *pick(void);

static void *worker(void *arg)
{
	struct loader_proc lp = {.fd = -1};
	int me;

	(void)arg;
	pthread_mutex_lock(&loader.mu);
	me = loader.nworkers++; /* its slot in loader.running */
	pthread_mutex_unlock(&loader.mu);
	for (;;) {
		struct job *j;
		int64_t t0;
		uint64_t one = 1;

		pthread_mutex_lock(&loader.mu);
		while (!loader.stop && !(j = pick()))
			pthread_cond_wait(&loader.cv, &loader.mu);
		if (loader.stop) {
			pthread_mutex_unlock(&loader.mu);
			loader_kill(&lp);
			return NULL;
		}
		loader.running[me] = j;
		pthread_mutex_unlock(&loader.mu);
		t0 = now_ms();
		j->cat = catalog_remote ? ask_broker(j) : ask_loader(&lp, j);
		/* One process per job: a loader a server of the agent's has taken over must not
		 * serve the next job (another destination's catalog, a pinned target's password). */
		loader_kill(&lp);
		j->ms = now_ms() - t0;
		pthread_mutex_lock(&loader.mu);
		loader.running[me] = NULL;
		j->next = loader.done;
		loader.done = j;
		pthread_cond_broadcast(&loader.cv); /* a job for the same destination may go now */
		pthread_mutex_unlock(&loader.mu);
		if (write(loader.efd, &one, sizeof(one)) < 0) {
			/* the counter cannot overflow in practice; the loop reads it */
		}
	}
}

static int same_dst(const struct job *a, const struct job *b)
{
	return a->ino == b->ino && !strcmp(a->hostaddr, b->hostaddr) && !strcmp(a->port, b->port);
}

/* The oldest queued job whose destination has no job running (one server that never answers
 * holds at most one worker). Called with loader.mu held. */
static struct job *pick(void)
{
	for (struct job **pp = &loader.todo; *pp; pp = &(*pp)->next) {
		int busy = 0;

		for (int i = 0; i < WORKERS && !busy; i++)
			busy = loader.running[i] && same_dst(loader.running[i], *pp);
		if (!busy) {
			struct job *j = *pp;

			*pp = j->next;
			return j;
		}
	}
	return NULL;
}

/* ---- the event loop's side ---- */

/* The first load is done, or waited for long enough: its waiters go on. */
static void wake_waiters(struct centry *e)
{
	struct cat_waiter *w = e->waiters, *n;

	e->waiters = NULL;
	for (; w; w = n) {
		n = w->next;
		w->next = NULL;
		w->entry = NULL;
		w->ready(w);
	}
}

void catalog_unwait(struct cat_waiter *w)
{
	struct centry *e = w->entry;

	if (!e)
		return;
	for (struct cat_waiter **pp = &e->waiters; *pp; pp = &(*pp)->next)
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	w->entry = NULL;
	w->next = NULL;
}

static void publish(struct job *j)
{
	struct centry *e = j->e;
	struct catbox *b = calloc(1, sizeof(*b));

	e->loading = 0;
	e->loaded_ms = now_ms();
	if (!b) {
		cat_free(j->cat);
	} else {
		b->cat = j->cat;
		b->refs = 1;
		snprintf(b->error, sizeof(b->error), "%s", j->error);
		/* Rules follow a column's identity: the new catalog learns the names its
		 * relations and columns had before (a renamed masked column stays masked). */
		if (j->cat && e->box && e->box->cat && cat_inherit(j->cat, e->box->cat)) {
			snprintf(j->error, sizeof(j->error), "%s",
				 "out of memory carrying column identities");
			cat_free(j->cat);
			j->cat = NULL;
			b->cat = NULL;
			snprintf(b->error, sizeof(b->error), "%s", j->error);
		}
		if (!j->cat && e->box && e->box->cat) {
			/* Keep the last good catalog over a failed refresh. */
			log_warn("catalog refresh for %s/%s failed, keeping the previous one: %s",
				 e->dst, e->database, j->error);
			catbox_put(b);
		} else {
			catbox_put(e->box);
			e->box = b;
		}
	}
	if (j->cat)
		log_info("catalog of %s/%s read as %s: %d relations in %lld ms", e->dst,
			 e->database, j->user, cat_nrels(j->cat), (long long)j->ms);
	else
		log_warn("catalog of %s/%s cannot be read (%s): masking fails closed, every "
			 "column of unknown provenance is masked",
			 e->dst, e->database, j->error);
	wake_waiters(e);
}

static void on_done(struct loop_watch *w, uint32_t events)
{
	uint64_t v;
	struct job *list;

	if (read(loader.efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_warn("catalog eventfd: %s", strerror(errno));
	pthread_mutex_lock(&loader.mu);
	list = loader.done;
	loader.done = NULL;
	pthread_mutex_unlock(&loader.mu);
	while (list) {
		struct job *j = list;

		list = j->next;
		publish(j);
		free(j);
	}
}

int catalog_fetch_init(void)
{
	int e;

	loader.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	loader.stopfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (loader.efd < 0 || loader.stopfd < 0)
		return -errno;
	if (loop_add(&loader.w, loader.efd, EPOLLIN, on_done))
		return -errno;
	for (int i = 0; i < WORKERS; i++) {
		if ((e = thread_start(&loader.th[i], worker, "hoop-catalog"))) {
			catalog_fetch_stop();
			return -e;
		}
		loader.started++;
	}
	return 0;
}

void catalog_fetch_stop(void)
{
	uint64_t one = 1;

	if (loader.started) {
		pthread_mutex_lock(&loader.mu);
		loader.stop = 1;
		pthread_cond_broadcast(&loader.cv);
		pthread_mutex_unlock(&loader.mu);
		/* Running loads see it in their poll and give up at once. */
		if (write(loader.stopfd, &one, sizeof(one)) < 0)
			log_warn("catalog stop: %s", strerror(errno));
		for (int i = 0; i < loader.started; i++)
			pthread_join(loader.th[i], NULL);
		loader.started = 0;
	}
	while (loader.todo) {
		struct job *j = loader.todo;

		loader.todo = j->next;
		free(j);
	}
	while (loader.done) {
		struct job *j = loader.done;

		loader.done = j->next;
		cat_free(j->cat);
		free(j);
	}
	while (loader.entries) {
		struct centry *e = loader.entries;

		loader.entries = e->next;
		for (struct cat_waiter *w = e->waiters; w; w = w->next)
			w->entry = NULL;
		catbox_put(e->box);
		free(e);
	}
}

/*
 * May the catalog password go to this target's servers? The agent picks the address (targets'
 * cidrs are often 0.0.0.0/0), so only a certificate check the agent cannot pass tells the real
 * server: verify-full against a CA file the operator named, for a name the operator named.
 * Without ca_file, any certificate from the system bundle would do (one for a bare IP is easy to
 * get); without tls_server_name, the name checked is the address the agent chose.
 */
static int pinned(const struct policy_target *t)
{
	return t->upstream_tls == UPSTREAM_TLS_VERIFY_FULL && t->ca_file[0] &&
	       t->tls_server_name[0];
}

/* The job for target t, destination hostaddr/port, database and login: what the loader is
 * told (TLS mode, CA, password file), all from the policy. */
static void job_fill(struct job *j, const struct policy_target *t, int target_id,
		     const char *dbname, const char *login_user)
{
	static const char *const modes[] = {"disable", "prefer", "require", "verify-ca",
					    "verify-full"};

	j->target_id = target_id;
	snprintf(j->dbname, sizeof(j->dbname), "%s", dbname);
	snprintf(j->login_user, sizeof(j->login_user), "%s", login_user);
	snprintf(j->user, sizeof(j->user), "%s",
		 hoopd.pol->catalog.user[0] ? hoopd.pol->catalog.user : login_user);
	snprintf(j->password_file, sizeof(j->password_file), "%s", hoopd.pol->catalog.password_file);
	snprintf(j->sslmode, sizeof(j->sslmode), "%s",
		 t->upstream_tls >= 0 && t->upstream_tls <= 4 ? modes[t->upstream_tls]
							     : "verify-full");
	snprintf(j->sslrootcert, sizeof(j->sslrootcert), "%s", t->ca_file);
	snprintf(j->host, sizeof(j->host), "%s", t->tls_server_name);
	j->pinned = pinned(t);
	/* libpq 15 knows no sslrootcert=system: the loader names OpenSSL's own bundle, as the
	 * relay's leg uses (SSL_CTX_set_default_verify_paths). */
	j->ca_system = t->upstream_tls >= UPSTREAM_TLS_VERIFY_CA && !t->ca_file[0];
}

static void submit(struct centry *e)
{
	struct job *j;
	const struct policy_target *t =
	    e->target_id < hoopd.pol->ntargets ? &hoopd.pol->targets[e->target_id] : NULL;

	/* Only what a target names, and only a server hoopd reaches from its own namespace: one
	 * that exists only in the agent's is the agent's to fake. */
	if (!t || e->agent_only)
		return;
	j = calloc(1, sizeof(*j));
	if (!j)
		return;
	j->e = e;
	j->ino = e->ino;
	inet_ntop(e->family == HOOP_AF_INET ? AF_INET : AF_INET6, e->addr, j->hostaddr,
		  sizeof(j->hostaddr));
	snprintf(j->port, sizeof(j->port), "%u", ntohs(e->port));
	job_fill(j, t, e->target_id, e->database, e->user);
	e->loading = 1;
	if (!e->box && !e->first_ms)
		e->first_ms = now_ms();
	pthread_mutex_lock(&loader.mu);
	{
		struct job **pp = &loader.todo;

		while (*pp)
			pp = &(*pp)->next;
		*pp = j; /* oldest first */
	}
	pthread_cond_signal(&loader.cv);
	pthread_mutex_unlock(&loader.mu);
}

int catalog_spawn_for(const struct catalog_remote_req *r, int *fd, pid_t *pid, char *err,
		      size_t errn)
{
	static struct catwire_req q; /* the broker's loop thread only */
	struct loader_proc lp = {.fd = -1};
	struct job j = {0};
	const struct policy_target *t;
	uint8_t addr[16] = {0};
	int family, port, rc;
	char *end;

	if (!memchr(r->hostaddr, 0, sizeof(r->hostaddr)) || !memchr(r->port, 0, sizeof(r->port)) ||
	    !memchr(r->dbname, 0, sizeof(r->dbname)) || !memchr(r->user, 0, sizeof(r->user))) {
		snprintf(err, errn, "a catalog request with an unterminated field");
		return -1;
	}
	t = r->target_id < (uint32_t)hoopd.pol->ntargets ? &hoopd.pol->targets[r->target_id]
							: NULL;
	family = inet_pton(AF_INET, r->hostaddr, addr) == 1	  ? AF_INET
		 : inet_pton(AF_INET6, r->hostaddr, addr) == 1 ? AF_INET6
							       : 0;
	port = (int)strtol(r->port, &end, 10);
	/* What the worker names must be what its target intercepts: a worker cannot point
	 * loaders (and a pinned target's password) anywhere else. */
	if (!t || t->protocol != HOOP_PROTO_POSTGRES || !family || *end || port <= 0 ||
	    port > 65535 ||
	    policy_match(hoopd.pol, family == AF_INET ? HOOP_AF_INET : HOOP_AF_INET6, addr,
			 (uint16_t)port) != (int)r->target_id) {
		snprintf(err, errn, "no target of the policy covers %s:%s", r->hostaddr, r->port);
		return -1;
	}
	snprintf(j.hostaddr, sizeof(j.hostaddr), "%s", r->hostaddr);
	snprintf(j.port, sizeof(j.port), "%s", r->port);
	job_fill(&j, t, (int)r->target_id, r->dbname, r->user);
	if (fill_request(&j, &q, err, errn))
		return -1;
	rc = loader_spawn(&lp, err, errn);
	/* One job: the worker gets the socket, and must not be able to send the loader a job of
	 * its own (another address, no TLS) past the check above; the loader sees its end of
	 * file after this one and exits once it has answered. */
	if (!rc && (catwire_send(lp.fd, &q, sizeof(q), NULL, 0) || shutdown(lp.fd, SHUT_WR))) {
		snprintf(err, errn, "the catalog loader did not take its job");
		loader_kill(&lp);
		rc = -1;
	}
	explicit_bzero(q.password, sizeof(q.password));
	if (rc)
		return -1;
	*fd = lp.fd;
	*pid = lp.pid;
	return 0;
}

static struct centry *entry_for(const struct cat_dest *d, const char *db_user,
				 const char *database)
{
	for (struct centry *e = loader.entries; e; e = e->next)
		if (e->ino == d->netns_ino && !strcmp(e->dst, d->dst) &&
		    !strcmp(e->database, database) &&
		    (hoopd.pol->catalog.user[0] || !strcmp(e->user, db_user)))
			return e;
	struct centry *e = calloc(1, sizeof(*e));

	if (!e)
		return NULL;
	e->ino = d->netns_ino;
	snprintf(e->dst, sizeof(e->dst), "%s", d->dst);
	snprintf(e->database, sizeof(e->database), "%s", database);
	snprintf(e->user, sizeof(e->user), "%s", db_user);
	e->family = d->family;
	memcpy(e->addr, d->addr, sizeof(e->addr));
	e->port = d->port;
	e->target_id = d->target_id;
	e->agent_only = d->agent_only;
	if (e->agent_only) {
		/* Never loaded: masking fails closed for it, and says why. */
		e->box = calloc(1, sizeof(*e->box));
		if (!e->box) {
			free(e);
			return NULL;
		}
		e->box->refs = 1;
		snprintf(e->box->error, sizeof(e->box->error),
			 "not read: %s exists only in the agent's network namespace", e->dst);
		log_warn("catalog of %s/%s not read: the destination exists only in the agent's "
			 "network namespace (masking fails closed there)",
			 e->dst, e->database);
	}
	e->next = loader.entries;
	loader.entries = e;
	return e;
}

int catalog_get(const struct cat_dest *d, const char *db_user, const char *database,
		struct cat_waiter *w, struct catbox **out)
{
	struct centry *e = entry_for(d, db_user, database);

	*out = NULL;
	if (!e)
		return 0; /* no memory: no catalog, masking fails closed */
	e->used_ms = now_ms();
	if (!e->box) {
		if (!e->loading)
			submit(e);
		if (!e->loading || e->used_ms - e->first_ms >= WAIT_DEADLINE_MS)
			return 0; /* nothing to wait for, or waited long enough: no catalog,
				   * masking fails closed */
		catalog_unwait(w);
		w->entry = e;
		w->next = e->waiters;
		e->waiters = w;
		return 1;
	}
	if (!e->loading && !e->box->cat && e->used_ms - e->loaded_ms > RETRY_FAILED_MS)
		submit(e);
	e->box->refs++;
	*out = e->box;
	return 0;
}

void catalog_reload(const char *dst, const char *database)
{
	int64_t now = now_ms();

	for (struct centry *e = loader.entries; e; e = e->next) {
		if (strcmp(e->dst, dst) || strcmp(e->database, database) || e->loading)
			continue;
		if (now - e->stale_ms < STALE_MIN_MS || now - e->loaded_ms < STALE_MIN_MS)
			continue;
		e->stale_ms = now;
		submit(e);
	}
}

void catalog_tick(void)
{
	int64_t now = now_ms();

	for (struct centry **pp = &loader.entries; *pp;) {
		struct centry *e = *pp;

		if (!e->loading && now - e->used_ms > IDLE_DROP_MS && !e->waiters) {
			*pp = e->next;
			catbox_put(e->box);
			free(e);
			continue;
		}
		if (e->loading && !e->box && now - e->first_ms >= WAIT_DEADLINE_MS && e->waiters) {
			log_warn("catalog of %s/%s: no answer in %d s; its sessions go on "
				 "without it (masking fails closed) while the load goes on",
				 e->dst, e->database, WAIT_DEADLINE_MS / 1000);
			wake_waiters(e);
		}
		if (!e->loading && e->box && now - e->loaded_ms > hoopd.pol->catalog.refresh_s * 1000)
			submit(e);
		pp = &e->next;
	}
}

void catalog_policy_changed(void)
{
	for (struct centry *e = loader.entries; e; e = e->next)
		if (!e->loading && e->box)
			submit(e);
}
