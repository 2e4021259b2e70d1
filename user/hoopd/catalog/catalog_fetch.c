/*
 * Catalog loading for masking (see catalog_fetch.h). A small pool of worker threads runs libpq
 * without blocking (every job has a deadline, enforced with poll); the event loop hands them jobs
 * and learns of results through an eventfd. The destination is the one the agent dialled, so an
 * agent can point a job at a server of its own: hence the deadline per job, one running job per
 * destination, a deadline for every session that waits, catalogs only for destinations hoopd
 * dials from its own namespace, and a connection that picks up nothing from root's home
 * (.pgpass, client certificates) and offers its password only to a server the operator pinned
 * (see pinned()), by SCRAM with channel binding.
 */
#include "catalog_fetch.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <openssl/x509.h>
#include <stdint.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"
#include "loop.h"
#include "policy.h"
#include "thread.h"

#define RETRY_FAILED_MS 10000 /* a failed load is tried again after this */
#define STALE_MIN_MS 1000     /* on-demand reloads at most this often */
#define IDLE_DROP_MS 600000   /* entries nobody used for this long are dropped */
#define WORKERS 3	      /* catalog loads that run at once */
#define JOB_DEADLINE_MS 20000 /* one load: connect and both queries (a server may never answer) */
#define CAT_MAX_ROWS 1000000   /* rows per catalog query: more is no catalog, but a flood */
#define CAT_MAX_BYTES (64L << 20) /* values' bytes per load, for the same reason */
#define WAIT_DEADLINE_MS 10000 /* a session waits this long for a first catalog, then has none */
/* A path that can never exist (/dev/null is no directory): libpq then loads no client
 * certificate or key, whatever root's ~/.postgresql holds. */
#define NO_FILE "/dev/null/none"

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
	int pinned; /* the password may be offered (pinned()) */
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

/* ---- the worker ---- */

static const char REL_SQL[] =
    "SELECT c.oid, n.nspname, c.relname, c.relkind, a.attnum, a.attname, a.atttypid, "
    "CASE WHEN c.relkind IN ('v','m') AND a.attnum = 1 THEN pg_catalog.pg_get_viewdef(c.oid) "
    "END, (SELECT min(i.inhparent) FROM pg_catalog.pg_inherits i WHERE i.inhrelid = c.oid) "
    "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT "
    "a.attisdropped "
    "WHERE c.relkind IN ('r','v','m','p','f') AND n.nspname NOT IN ('pg_catalog', "
    "'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' "
    "ORDER BY c.oid, a.attnum";

static const char FUNC_SQL[] =
    "SELECT DISTINCT n.nspname, p.proname FROM pg_catalog.pg_proc p "
    "JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace "
    "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')";

/* Operators defined outside pg_catalog (extensions' too), with the function each runs, and
 * whether the server can pick one for operands of built-in types: every operand type is
 * pg_catalog's, a domain, or has an implicit cast from a pg_catalog type (citext's = on citext
 * cannot be picked for text = text; a user's || on text, text can). */
static const char OP_SQL[] =
    "SELECT o.oprname, p.proname, NOT EXISTS (SELECT 1 FROM pg_catalog.pg_type t "
    "WHERE t.oid IN (o.oprleft, o.oprright) AND t.typtype <> 'd' "
    "AND t.typnamespace <> 'pg_catalog'::pg_catalog.regnamespace "
    "AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_cast c "
    "JOIN pg_catalog.pg_type s ON s.oid = c.castsource WHERE c.casttarget = t.oid "
    "AND c.castcontext = 'i' AND s.typnamespace = 'pg_catalog'::pg_catalog.regnamespace)) "
    "FROM pg_catalog.pg_operator o LEFT JOIN pg_catalog.pg_proc p ON p.oid = o.oprcode "
    "WHERE o.oprnamespace <> 'pg_catalog'::pg_catalog.regnamespace";

/* Types a conversion into runs user code (cat_add_code_type): `x::t` then calls it. */
static const char CAST_SQL[] =
    "SELECT t.typname, p.proname FROM pg_catalog.pg_cast c "
    "JOIN pg_catalog.pg_proc p ON p.oid = c.castfunc "
    "JOIN pg_catalog.pg_type t ON t.oid = c.casttarget "
    "WHERE p.pronamespace <> 'pg_catalog'::pg_catalog.regnamespace "
    "UNION ALL SELECT t.typname, '' FROM pg_catalog.pg_type t WHERE t.typtype = 'd' "
    "AND EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k WHERE k.contypid = t.oid) "
    "UNION ALL SELECT t.typname, p.proname FROM pg_catalog.pg_type t "
    "JOIN pg_catalog.pg_proc p ON p.oid = t.typinput "
    "WHERE p.pronamespace <> 'pg_catalog'::pg_catalog.regnamespace";

static int read_password(const char *path, char *out, size_t n, char *err, size_t errn)
{
	FILE *f = fopen(path, "re");
	size_t l;

	if (!f) {
		snprintf(err, errn, "cannot read catalog.password_file %s: %s", path,
			 strerror(errno));
		return -1;
	}
	if (!fgets(out, (int)n, f))
		out[0] = 0;
	fclose(f);
	l = strlen(out);
	while (l && (out[l - 1] == '\n' || out[l - 1] == '\r'))
		out[--l] = 0;
	return 0;
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

/* PQconnectdbParams, but never past the deadline. The result's status says how it went;
 * *timed_out is set when the deadline cut it short. */
static PGconn *connect_by(const char *const *kw, const char *const *val, int64_t deadline,
			  int *timed_out)
{
	PGconn *c = PQconnectStartParams(kw, val, 0);
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;

	if (!c || PQstatus(c) == CONNECTION_BAD)
		return c;
	while (st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
		int r = wait_fd(PQsocket(c), st == PGRES_POLLING_READING ? POLLIN : POLLOUT,
				deadline);

		if (r <= 0) {
			*timed_out = r == 0;
			break;
		}
		st = PQconnectPoll(c);
	}
	return c;
}

/*
 * One query without blocking past the deadline. Its rows go one at a time to row_fn (libpq's
 * single-row mode), at most CAT_MAX_ROWS of them and CAT_MAX_BYTES of values per load (*bytes
 * counts): a server that is not what it claims cannot make hoopd hold an endless catalog.
 * 0, or -1 with the reason in err.
 */
static int query_rows(PGconn *c, const char *sql, int64_t deadline,
		      int (*row_fn)(const PGresult *x, void *arg), void *arg, long *bytes,
		      char *err, size_t errn)
{
	long rows = 0;

	if (PQsetnonblocking(c, 1) || !PQsendQueryParams(c, sql, 0, NULL, NULL, NULL, NULL, 0) ||
	    !PQsetSingleRowMode(c)) {
		snprintf(err, errn, "%s", PQerrorMessage(c));
		return -1;
	}
	for (;;) {
		int f = PQflush(c), r;

		if (f < 0)
			break;
		if (!f && !PQisBusy(c)) {
			PGresult *x = PQgetResult(c);
			int bad = 0;

			if (!x)
				return 0;
			if (PQresultStatus(x) == PGRES_SINGLE_TUPLE) {
				for (int i = 0; i < PQnfields(x); i++)
					*bytes += PQgetlength(x, 0, i);
				if (++rows > CAT_MAX_ROWS || *bytes > CAT_MAX_BYTES)
					bad = snprintf(err, errn,
						       "more than %d rows or %ld MiB: not a catalog",
						       CAT_MAX_ROWS, CAT_MAX_BYTES >> 20);
				else if (PQnfields(x) < 2 || row_fn(x, arg))
					bad = snprintf(err, errn, "%s",
						       PQnfields(x) < 2 ? "not the columns asked for"
									: "a row that does not fit (columns or memory)");
			} else if (PQresultStatus(x) != PGRES_TUPLES_OK) {
				bad = snprintf(err, errn, "%s", PQresultErrorMessage(x));
			}
			PQclear(x);
			if (bad)
				return -1; /* the connection is dropped with what is left */
			continue;
		}
		r = wait_fd(PQsocket(c), POLLIN | (f ? POLLOUT : 0), deadline);
		if (r == 0) {
			snprintf(err, errn, "no answer within the catalog deadline");
			return -1;
		}
		if (r < 0 || !PQconsumeInput(c))
			break;
	}
	snprintf(err, errn, "%s", PQerrorMessage(c));
	return -1;
}

struct rel_rows {
	struct catalog *cat;
	struct cat_rel *rel;
	uint32_t last;
};

static int rel_row(const PGresult *x, void *arg)
{
	struct rel_rows *rr = arg;
	uint32_t oid = (uint32_t)strtoul(PQgetvalue(x, 0, 0), NULL, 10);

	if (PQnfields(x) < 9)
		return -1;
	if (!rr->rel || oid != rr->last) {
		rr->rel = cat_add_rel(rr->cat, oid, PQgetvalue(x, 0, 1), PQgetvalue(x, 0, 2),
				      PQgetvalue(x, 0, 3)[0],
				      PQgetisnull(x, 0, 7) ? NULL : PQgetvalue(x, 0, 7));
		if (!rr->rel)
			return -1;
		if (!PQgetisnull(x, 0, 8))
			rr->rel->parent_oid = (uint32_t)strtoul(PQgetvalue(x, 0, 8), NULL, 10);
		rr->last = oid;
	}
	return cat_add_col(rr->rel, (int16_t)atoi(PQgetvalue(x, 0, 4)), PQgetvalue(x, 0, 5),
			   (uint32_t)strtoul(PQgetvalue(x, 0, 6), NULL, 10))
		   ? -1
		   : 0;
}

static int func_row(const PGresult *x, void *arg)
{
	return cat_add_function(arg, PQgetvalue(x, 0, 0), PQgetvalue(x, 0, 1)) ? -1 : 0;
}

static int op_row(const PGresult *x, void *arg)
{
	if (PQnfields(x) < 3)
		return -1;
	return cat_add_operator(arg, PQgetvalue(x, 0, 0), PQgetvalue(x, 0, 1),
				PQgetvalue(x, 0, 2)[0] == 't')
		   ? -1
		   : 0;
}

static int cast_row(const PGresult *x, void *arg)
{
	return cat_add_code_type(arg, PQgetvalue(x, 0, 0), PQgetvalue(x, 0, 1)) ? -1 : 0;
}

static struct catalog *load(struct job *j)
{
	char password[256] = "";
	const char *kw[24], *val[24];
	int n = 0, timed_out = 0;
	int64_t deadline = now_ms() + JOB_DEADLINE_MS;
	PGconn *conn;
	struct catalog *cat = NULL;
	struct rel_rows rr = {0};
	char qerr[200];
	long bytes = 0;

#define KV(k, v)                                                                               \
	do {                                                                                   \
		kw[n] = k;                                                                     \
		val[n++] = v;                                                                  \
	} while (0)
	KV("hostaddr", j->hostaddr);
	if (j->host[0])
		KV("host", j->host);
	KV("port", j->port);
	KV("dbname", j->dbname);
	KV("user", j->user);
	/* Nothing from root's home or the environment's files: no .pgpass, no client certificate
	 * or key, no service file (the server may be the agent's). */
	KV("passfile", NO_FILE);
	KV("sslcert", NO_FILE);
	KV("sslkey", NO_FILE);
	KV("sslmode", j->sslmode); /* the target's upstream_tls, never weaker */
	KV("sslrootcert", j->sslrootcert[0] ? j->sslrootcert : NO_FILE);
	KV("sslcrl", NO_FILE);
	KV("gssencmode", "disable");
	KV("connect_timeout", "10");
	KV("application_name", "hoop-catalog");
	KV("options", "-c statement_timeout=30000 -c default_transaction_read_only=on "
			"-c standard_conforming_strings=on"); /* view definitions: pglex.h */
	kw[n] = NULL;
	val[n] = NULL;
	/* First without a password: trust, peer or a client certificate need none, and no
	 * server can then ask for one. */
	conn = connect_by(kw, val, deadline, &timed_out);
	if (conn && PQstatus(conn) != CONNECTION_OK && !timed_out &&
	    PQconnectionNeedsPassword(conn) && j->password_file[0] && !j->pinned) {
		snprintf(j->error, sizeof(j->error),
			 "%s:%s asks for a password, and hoopd offers catalog.password_file "
			 "only to a target pinned by upstream_tls: verify-full with ca_file and "
			 "tls_server_name (masking fails closed here)",
			 j->hostaddr, j->port);
		goto out;
	}
	if (conn && PQstatus(conn) != CONNECTION_OK && !timed_out &&
	    PQconnectionNeedsPassword(conn) && j->password_file[0]) {
		/* libpq 15 has no require_auth: channel_binding=require is how it refuses to answer
		 * anything but SCRAM-SHA-256-PLUS (no cleartext, no MD5), and only over TLS. That
		 * does not make the server prove anything first: the client's proof goes out
		 * before the server's signature, so a server that chose the salt and an iteration
		 * count of 1 can guess the password offline. What keeps the proof from an impostor
		 * is the pin: this server presented a certificate for tls_server_name from the
		 * operator's own CA (pinned()), which an address the agent names does not have. */
		PQfinish(conn);
		conn = NULL;
		if (read_password(j->password_file, password, sizeof(password), j->error,
				  sizeof(j->error)))
			goto out;
		KV("password", password); /* over the terminator */
		KV("channel_binding", "require");
		kw[n] = NULL;
		val[n] = NULL;
		conn = connect_by(kw, val, deadline, &timed_out);
		explicit_bzero(password, sizeof(password));
	}
#undef KV
	if (!conn || PQstatus(conn) != CONNECTION_OK) {
		snprintf(j->error, sizeof(j->error), "cannot connect as %s to %s:%s/%s: %s",
			 j->user, j->hostaddr, j->port, j->dbname,
			 timed_out ? "no answer within the catalog deadline"
			 : conn	   ? PQerrorMessage(conn)
				   : "out of memory");
		goto out;
	}
	cat = cat_new();
	if (!cat)
		goto oom;
	rr.cat = cat;
	if (query_rows(conn, REL_SQL, deadline, rel_row, &rr, &bytes, qerr, sizeof(qerr))) {
		snprintf(j->error, sizeof(j->error), "reading pg_class as %s: %s", j->user, qerr);
		goto fail;
	}
	if (query_rows(conn, FUNC_SQL, deadline, func_row, cat, &bytes, qerr, sizeof(qerr))) {
		snprintf(j->error, sizeof(j->error), "reading pg_proc as %s: %s", j->user, qerr);
		goto fail;
	}
	if (query_rows(conn, OP_SQL, deadline, op_row, cat, &bytes, qerr, sizeof(qerr))) {
		snprintf(j->error, sizeof(j->error), "reading pg_operator as %s: %s", j->user,
			 qerr);
		goto fail;
	}
	if (query_rows(conn, CAST_SQL, deadline, cast_row, cat, &bytes, qerr, sizeof(qerr))) {
		snprintf(j->error, sizeof(j->error), "reading pg_cast as %s: %s", j->user, qerr);
		goto fail;
	}
	if (cat_index(cat))
		goto oom;
	goto out;
oom:
	snprintf(j->error, sizeof(j->error), "out of memory reading the catalog");
fail:
	cat_free(cat);
	cat = NULL;
out:
	PQfinish(conn);
	/* libpq's messages end in a newline; the log line should not */
	for (size_t l = strlen(j->error); l && j->error[l - 1] == '\n'; l--)
		j->error[l - 1] = 0;
	return cat;
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

static void *worker(void *arg)
{
	int me;

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
			return NULL;
		}
		loader.running[me] = j;
		pthread_mutex_unlock(&loader.mu);
		t0 = now_ms();
		j->cat = load(j);
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

static void submit(struct centry *e)
{
	struct job *j;
	const struct policy_target *t =
	    e->target_id < hoopd.pol->ntargets ? &hoopd.pol->targets[e->target_id] : NULL;
	static const char *const modes[] = {"disable", "prefer", "require", "verify-ca",
					    "verify-full"};
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
	snprintf(j->dbname, sizeof(j->dbname), "%s", e->database);
	snprintf(j->user, sizeof(j->user), "%s", hoopd.pol->catalog.user[0] ? hoopd.pol->catalog.user : e->user);
	snprintf(j->password_file, sizeof(j->password_file), "%s", hoopd.pol->catalog.password_file);
	snprintf(j->sslmode, sizeof(j->sslmode), "%s",
		 t->upstream_tls >= 0 && t->upstream_tls <= 4 ? modes[t->upstream_tls]
							     : "verify-full");
	snprintf(j->sslrootcert, sizeof(j->sslrootcert), "%s", t->ca_file);
	snprintf(j->host, sizeof(j->host), "%s", t->tls_server_name);
	j->pinned = pinned(t);
	/* libpq 15 knows no sslrootcert=system: name OpenSSL's own bundle, as the relay's leg
	 * uses (SSL_CTX_set_default_verify_paths). */
	if (t->upstream_tls >= UPSTREAM_TLS_VERIFY_CA && !t->ca_file[0])
		snprintf(j->sslrootcert, sizeof(j->sslrootcert), "%s",
			 X509_get_default_cert_file());
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
