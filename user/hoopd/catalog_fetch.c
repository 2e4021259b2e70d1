/*
 * Catalog loading for masking (see catalog_fetch.h). One worker thread runs libpq; the event
 * loop hands it jobs and learns of results through an eventfd. A job enters the agent's network
 * namespace (setns affects only the calling thread) so that it reaches the same database the
 * agent dialled, at the same address.
 */
#include "catalog_fetch.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "hoopd.h"
#include "log.h"
#include "loop.h"
#include "policy.h"
#include "session.h"
#include "thread.h"
#include "tls.h"

#define RETRY_FAILED_MS 10000 /* a failed load is tried again after this */
#define STALE_MIN_MS 1000     /* on-demand reloads at most this often */
#define IDLE_DROP_MS 600000   /* entries nobody used for this long are dropped */

struct centry {
	uint64_t ino;
	char dst[64];
	char database[128];
	char user[64];
	uint8_t family;
	uint8_t addr[16];
	uint16_t port; /* network order */
	int target_id;
	int nsfd; /* a dup of the agent namespace's fd (-1: hoopd's own) */
	struct catbox *box; /* current catalog (this entry's reference), NULL before the first */
	int loading;
	int64_t loaded_ms, used_ms, stale_ms;
	struct centry *next;
};

struct job {
	struct centry *e;
	int nsfd; /* dup of the namespace fd, or -1 */
	char hostaddr[INET6_ADDRSTRLEN], host[256], port[8], dbname[128], user[64];
	char password_file[512], sslmode[16], sslrootcert[512];
	struct catalog *cat; /* result */
	char error[256];
	int64_t ms; /* how long the load took */
	struct job *next;
};

static struct {
	pthread_t th;
	int started, stop;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct job *todo, *done;
	int efd;
	struct loop_watch w;
	struct centry *entries;
} C = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .efd = -1};

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

static struct catalog *load(struct job *j)
{
	char password[256] = "";
	const char *kw[16], *val[16];
	int n = 0;
	PGconn *conn;
	PGresult *r = NULL;
	struct catalog *cat = NULL;
	struct cat_rel *rel = NULL;
	uint32_t last = 0;

	if (j->password_file[0] &&
	    read_password(j->password_file, password, sizeof(password), j->error,
			  sizeof(j->error)))
		return NULL;
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
	if (password[0])
		KV("password", password);
	KV("sslmode", j->sslmode);
	if (j->sslrootcert[0])
		KV("sslrootcert", j->sslrootcert);
	KV("gssencmode", "disable");
	KV("connect_timeout", "10");
	KV("application_name", "hoop-catalog");
	KV("options", "-c statement_timeout=30000 -c default_transaction_read_only=on");
	kw[n] = NULL;
	val[n] = NULL;
#undef KV
	if (j->nsfd >= 0 && setns(j->nsfd, CLONE_NEWNET)) {
		snprintf(j->error, sizeof(j->error), "cannot enter the agent's network namespace: %s",
			 strerror(errno));
		return NULL;
	}
	conn = PQconnectdbParams(kw, val, 0);
	explicit_bzero(password, sizeof(password));
	if (j->nsfd >= 0 && setns(G.host_netns_fd, CLONE_NEWNET)) {
		log_error("catalog worker cannot return to hoopd's network namespace: %s; exiting",
			  strerror(errno));
		abort();
	}
	if (PQstatus(conn) != CONNECTION_OK) {
		snprintf(j->error, sizeof(j->error), "cannot connect as %s to %s:%s/%s: %s",
			 j->user, j->hostaddr, j->port, j->dbname, PQerrorMessage(conn));
		goto out;
	}
	cat = cat_new();
	if (!cat)
		goto oom;
	r = PQexecParams(conn, REL_SQL, 0, NULL, NULL, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		snprintf(j->error, sizeof(j->error), "reading pg_class as %s: %s", j->user,
			 PQresultErrorMessage(r));
		goto fail;
	}
	for (int i = 0; i < PQntuples(r); i++) {
		uint32_t oid = (uint32_t)strtoul(PQgetvalue(r, i, 0), NULL, 10);

		if (!rel || oid != last) {
			rel = cat_add_rel(cat, oid, PQgetvalue(r, i, 1), PQgetvalue(r, i, 2),
					  PQgetvalue(r, i, 3)[0],
					  PQgetisnull(r, i, 7) ? NULL : PQgetvalue(r, i, 7));
			if (!rel)
				goto oom;
			if (!PQgetisnull(r, i, 8))
				rel->parent_oid = (uint32_t)strtoul(PQgetvalue(r, i, 8), NULL, 10);
			last = oid;
		}
		if (cat_add_col(rel, (int16_t)atoi(PQgetvalue(r, i, 4)), PQgetvalue(r, i, 5),
				(uint32_t)strtoul(PQgetvalue(r, i, 6), NULL, 10)))
			goto oom;
	}
	PQclear(r);
	r = PQexecParams(conn, FUNC_SQL, 0, NULL, NULL, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		snprintf(j->error, sizeof(j->error), "reading pg_proc as %s: %s", j->user,
			 PQresultErrorMessage(r));
		goto fail;
	}
	for (int i = 0; i < PQntuples(r); i++)
		if (cat_add_function(cat, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1)))
			goto oom;
	if (cat_index(cat))
		goto oom;
	goto out;
oom:
	snprintf(j->error, sizeof(j->error), "out of memory reading the catalog");
fail:
	cat_free(cat);
	cat = NULL;
out:
	PQclear(r);
	PQfinish(conn);
	/* libpq's messages end in a newline; the log line should not */
	for (size_t l = strlen(j->error); l && j->error[l - 1] == '\n'; l--)
		j->error[l - 1] = 0;
	return cat;
}

static void *worker(void *arg)
{
	for (;;) {
		struct job *j;
		int64_t t0;
		uint64_t one = 1;

		pthread_mutex_lock(&C.mu);
		while (!C.todo && !C.stop)
			pthread_cond_wait(&C.cv, &C.mu);
		if (C.stop) {
			pthread_mutex_unlock(&C.mu);
			return NULL;
		}
		j = C.todo;
		C.todo = j->next;
		pthread_mutex_unlock(&C.mu);
		t0 = now_ms();
		j->cat = load(j);
		j->ms = now_ms() - t0;
		pthread_mutex_lock(&C.mu);
		j->next = C.done;
		C.done = j;
		pthread_mutex_unlock(&C.mu);
		if (write(C.efd, &one, sizeof(one)) < 0) {
			/* the counter cannot overflow in practice; the loop reads it */
		}
	}
}

/* ---- the event loop's side ---- */

static int waiting_on(struct session *s, void *arg)
{
	return s->cat_wait == arg;
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
	for (struct session *s; (s = sess_find(waiting_on, e));) {
		s->cat_wait = NULL;
		sess_resume(s);
	}
}

static void on_done(struct loop_watch *w, uint32_t events)
{
	uint64_t v;
	struct job *list;

	if (read(C.efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_warn("catalog eventfd: %s", strerror(errno));
	pthread_mutex_lock(&C.mu);
	list = C.done;
	C.done = NULL;
	pthread_mutex_unlock(&C.mu);
	while (list) {
		struct job *j = list;

		list = j->next;
		publish(j);
		if (j->nsfd >= 0)
			close(j->nsfd);
		free(j);
	}
}

int catalog_fetch_init(void)
{
	int e;

	C.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (C.efd < 0)
		return -errno;
	if (loop_add(&C.w, C.efd, EPOLLIN, on_done))
		return -errno;
	if ((e = thread_start(&C.th, worker, "hoop-catalog")))
		return -e;
	C.started = 1;
	return 0;
}

void catalog_fetch_stop(void)
{
	if (C.started) {
		pthread_mutex_lock(&C.mu);
		C.stop = 1;
		pthread_cond_signal(&C.cv);
		pthread_mutex_unlock(&C.mu);
		pthread_join(C.th, NULL);
		C.started = 0;
	}
	while (C.entries) {
		struct centry *e = C.entries;

		C.entries = e->next;
		catbox_put(e->box);
		if (e->nsfd >= 0)
			close(e->nsfd);
		free(e);
	}
}

static void submit(struct centry *e, struct session *s)
{
	struct job *j = calloc(1, sizeof(*j));
	const struct policy_target *t =
	    e->target_id < G.pol->ntargets ? &G.pol->targets[e->target_id] : NULL;
	static const char *const modes[] = {"disable", "prefer", "require", "verify-ca",
					    "verify-full"};
	(void)s;
	if (!j)
		return;
	j->e = e;
	j->nsfd = e->nsfd >= 0 ? fcntl(e->nsfd, F_DUPFD_CLOEXEC, 0) : -1;
	inet_ntop(e->family == HOOP_AF_INET ? AF_INET : AF_INET6, e->addr, j->hostaddr,
		  sizeof(j->hostaddr));
	snprintf(j->port, sizeof(j->port), "%u", ntohs(e->port));
	snprintf(j->dbname, sizeof(j->dbname), "%s", e->database);
	snprintf(j->user, sizeof(j->user), "%s", G.pol->catalog.user[0] ? G.pol->catalog.user : e->user);
	snprintf(j->password_file, sizeof(j->password_file), "%s", G.pol->catalog.password_file);
	snprintf(j->sslmode, sizeof(j->sslmode), "%s",
		 t && t->upstream_tls >= 0 && t->upstream_tls <= 4 ? modes[t->upstream_tls]
								  : "prefer");
	if (t) {
		snprintf(j->sslrootcert, sizeof(j->sslrootcert), "%s", t->ca_file);
		snprintf(j->host, sizeof(j->host), "%s", t->tls_server_name);
	}
	if (t && t->upstream_tls >= UPSTREAM_TLS_VERIFY_CA && !t->ca_file[0])
		snprintf(j->sslrootcert, sizeof(j->sslrootcert), "system");
	e->loading = 1;
	pthread_mutex_lock(&C.mu);
	j->next = C.todo;
	C.todo = j;
	pthread_cond_signal(&C.cv);
	pthread_mutex_unlock(&C.mu);
}

static struct centry *entry_for(struct session *s, const char *db_user, const char *database)
{
	uint64_t ino = s->ln ? netns_ino(s->ln) : 0;

	for (struct centry *e = C.entries; e; e = e->next)
		if (e->ino == ino && !strcmp(e->dst, s->dst) && !strcmp(e->database, database) &&
		    (G.pol->catalog.user[0] || !strcmp(e->user, db_user)))
			return e;
	struct centry *e = calloc(1, sizeof(*e));

	if (!e)
		return NULL;
	e->ino = ino;
	snprintf(e->dst, sizeof(e->dst), "%s", s->dst);
	snprintf(e->database, sizeof(e->database), "%s", database);
	snprintf(e->user, sizeof(e->user), "%s", db_user);
	e->family = s->o.orig_family;
	memcpy(e->addr, s->o.orig_addr, sizeof(e->addr));
	e->port = s->o.orig_port;
	e->target_id = (int)s->o.target_id;
	e->nsfd = s->ln && netns_nsfd(s->ln) >= 0 ? fcntl(netns_nsfd(s->ln), F_DUPFD_CLOEXEC, 0)
						  : -1;
	e->next = C.entries;
	C.entries = e;
	return e;
}

int catalog_for(struct session *s, const char *db_user, const char *database,
		struct catbox **out)
{
	struct centry *e = entry_for(s, db_user, database);

	*out = NULL;
	if (!e)
		return 0; /* no memory: no catalog, masking fails closed */
	e->used_ms = now_ms();
	if (!e->box) {
		if (!e->loading)
			submit(e, s);
		s->cat_wait = e;
		return 1;
	}
	if (!e->loading && !e->box->cat && e->used_ms - e->loaded_ms > RETRY_FAILED_MS)
		submit(e, s);
	e->box->refs++;
	*out = e->box;
	return 0;
}

void catalog_stale(struct session *s, const char *database)
{
	int64_t now = now_ms();

	for (struct centry *e = C.entries; e; e = e->next) {
		if (strcmp(e->dst, s->dst) || strcmp(e->database, database) || e->loading)
			continue;
		if (now - e->stale_ms < STALE_MIN_MS || now - e->loaded_ms < STALE_MIN_MS)
			continue;
		e->stale_ms = now;
		submit(e, s);
	}
}

void catalog_tick(void)
{
	int64_t now = now_ms();

	for (struct centry **pp = &C.entries; *pp;) {
		struct centry *e = *pp;

		if (!e->loading && now - e->used_ms > IDLE_DROP_MS && !sess_find(waiting_on, e)) {
			*pp = e->next;
			catbox_put(e->box);
			if (e->nsfd >= 0)
				close(e->nsfd);
			free(e);
			continue;
		}
		if (!e->loading && e->box && now - e->loaded_ms > G.pol->catalog.refresh_s * 1000)
			submit(e, NULL);
		pp = &e->next;
	}
}

void catalog_policy_changed(void)
{
	for (struct centry *e = C.entries; e; e = e->next)
		if (!e->loading && e->box)
			submit(e, NULL);
}
