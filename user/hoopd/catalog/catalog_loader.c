/*
 * The catalog loader process (catalog_wire.h): `hoopd --catalog-loader UID:GID`, exec'd by
 * hoopd's catalog threads (catalog_fetch.c), one process each, with its end of a socket pair
 * as descriptor 3 and nothing else. It reads the catalog of the server a request names over
 * libpq and answers with build operations; it never sees an agent's bytes, and what it runs
 * (libpq, OpenSSL) parses only what that server sends. The server is the one the agent dialled,
 * so it may be the agent's: the process holds no key, no descriptor of hoopd's and no
 * privilege (it runs as the --user, with no capabilities and no_new_privs), and hoopd checks
 * every byte it answers (catwire_build) and kills it past the deadline.
 *
 * A connection picks up nothing from the user's home or the environment (.pgpass, client
 * certificates, service files) and offers the password only to a server the operator pinned
 * (catalog_fetch.c pinned()), by SCRAM with channel binding.
 */
#include <errno.h>
#include <libpq-fe.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "catalog_loader.h"
#include "catalog_wire.h"
#include "clock.h"
#include "sandbox.h"

#define CAT_MAX_ROWS 1000000	  /* rows per catalog query: more is no catalog, but a flood */
#define CAT_MAX_BYTES (64L << 20) /* values' bytes per load, for the same reason */
/* A path that can never exist (/dev/null is no directory): libpq then loads no client
 * certificate or key, whatever the user's ~/.postgresql holds. */
#define NO_FILE "/dev/null/none"

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

static int ms_left(int64_t deadline)
{
	int64_t l = deadline - now_ms();

	return l < 0 ? 0 : l > 1000000 ? 1000000 : (int)l;
}

/* Wait for fd to be ready for events, up to the deadline. 1 = ready, 0 = deadline passed,
 * -1 = error. (hoopd stops a load by killing the process.) */
static int wait_fd(int fd, short events, int64_t deadline)
{
	for (;;) {
		struct pollfd pf = {.fd = fd, .events = events};
		int ms = ms_left(deadline), r;

		if (ms == 0)
			return 0;
		r = poll(&pf, 1, ms);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
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
	struct catwire_buf *b;
	uint32_t last;
	int any;
};

static int rel_row(const PGresult *x, void *arg)
{
	struct rel_rows *rr = arg;
	uint32_t oid = (uint32_t)strtoul(PQgetvalue(x, 0, 0), NULL, 10);

	if (PQnfields(x) < 9)
		return -1;
	if (!rr->any || oid != rr->last) {
		catwire_rel(rr->b, oid, PQgetvalue(x, 0, 1), PQgetvalue(x, 0, 2),
			    PQgetvalue(x, 0, 3)[0],
			    PQgetisnull(x, 0, 8) ? 0
						 : (uint32_t)strtoul(PQgetvalue(x, 0, 8), NULL, 10),
			    PQgetisnull(x, 0, 7) ? NULL : PQgetvalue(x, 0, 7));
		rr->last = oid;
		rr->any = 1;
	}
	catwire_col(rr->b, (int16_t)atoi(PQgetvalue(x, 0, 4)), PQgetvalue(x, 0, 5),
		    (uint32_t)strtoul(PQgetvalue(x, 0, 6), NULL, 10));
	return rr->b->oom ? -1 : 0;
}

static int func_row(const PGresult *x, void *arg)
{
	struct catwire_buf *b = arg;

	catwire_function(b, PQgetvalue(x, 0, 0), PQgetvalue(x, 0, 1));
	return b->oom ? -1 : 0;
}

static int op_row(const PGresult *x, void *arg)
{
	struct catwire_buf *b = arg;

	if (PQnfields(x) < 3)
		return -1;
	catwire_operator(b, PQgetvalue(x, 0, 0), PQgetvalue(x, 0, 1),
			 PQgetvalue(x, 0, 2)[0] == 't');
	return b->oom ? -1 : 0;
}

static int cast_row(const PGresult *x, void *arg)
{
	struct catwire_buf *b = arg;

	catwire_code_type(b, PQgetvalue(x, 0, 0), PQgetvalue(x, 0, 1));
	return b->oom ? -1 : 0;
}

/* The request's CA as a file libpq can name: a memfd, read through /proc/self/fd. */
static int ca_file(const struct catwire_req *q, char *path, size_t n, char *err, size_t errn)
{
	int fd = memfd_create("hoop-catalog-ca", MFD_CLOEXEC);

	if (fd < 0 || write(fd, q->ca_pem, q->ca_len) != (ssize_t)q->ca_len) {
		snprintf(err, errn, "cannot hold the CA for the catalog connection: %s",
			 strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	snprintf(path, n, "/proc/self/fd/%d", fd);
	return fd;
}

/* One load: the catalog's build operations into b, or the reason in err. 0 or -1. */
static int load(const struct catwire_req *q, struct catwire_buf *b, char *err, size_t errn)
{
	const char *kw[24], *val[24];
	int n = 0, timed_out = 0, cafd = -1, rc = -1;
	int64_t deadline = now_ms() + CATWIRE_JOB_MS;
	PGconn *conn;
	struct rel_rows rr = {.b = b};
	char qerr[200], capath[512];
	long bytes = 0;

	if (q->ca_system)
		snprintf(capath, sizeof(capath), "%s", X509_get_default_cert_file());
	if (q->ca_len && (cafd = ca_file(q, capath, sizeof(capath), err, errn)) < 0)
		return -1;
#define KV(k, v)                                                                               \
	do {                                                                                   \
		kw[n] = k;                                                                     \
		val[n++] = v;                                                                  \
	} while (0)
	KV("hostaddr", q->hostaddr);
	if (q->host[0])
		KV("host", q->host);
	KV("port", q->port);
	KV("dbname", q->dbname);
	KV("user", q->user);
	/* Nothing from the user's home or the environment's files: no .pgpass, no client
	 * certificate or key, no service file (the server may be the agent's). */
	KV("passfile", NO_FILE);
	KV("sslcert", NO_FILE);
	KV("sslkey", NO_FILE);
	KV("sslmode", q->sslmode); /* the target's upstream_tls, never weaker */
	KV("sslrootcert", q->ca_len || q->ca_system ? capath : NO_FILE);
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
	    PQconnectionNeedsPassword(conn) && q->password_file_set && !q->pinned) {
		snprintf(err, errn,
			 "%s:%s asks for a password, and hoopd offers catalog.password_file "
			 "only to a target pinned by upstream_tls: verify-full with ca_file and "
			 "tls_server_name (masking fails closed here)",
			 q->hostaddr, q->port);
		goto out;
	}
	if (conn && PQstatus(conn) != CONNECTION_OK && !timed_out &&
	    PQconnectionNeedsPassword(conn) && q->password_error[0]) {
		snprintf(err, errn, "%s", q->password_error);
		goto out;
	}
	if (conn && PQstatus(conn) != CONNECTION_OK && !timed_out &&
	    PQconnectionNeedsPassword(conn) && q->has_password) {
		/* libpq 15 has no require_auth: channel_binding=require is how it refuses to answer
		 * anything but SCRAM-SHA-256-PLUS (no cleartext, no MD5), and only over TLS. That
		 * does not make the server prove anything first: the client's proof goes out
		 * before the server's signature, so a server that chose the salt and an iteration
		 * count of 1 can guess the password offline. What keeps the proof from an impostor
		 * is the pin: this server presented a certificate for tls_server_name from the
		 * operator's own CA (pinned()), which an address the agent names does not have. */
		PQfinish(conn);
		conn = NULL;
		KV("password", q->password); /* over the terminator */
		KV("channel_binding", "require");
		kw[n] = NULL;
		val[n] = NULL;
		conn = connect_by(kw, val, deadline, &timed_out);
	}
#undef KV
	if (!conn || PQstatus(conn) != CONNECTION_OK) {
		snprintf(err, errn, "cannot connect as %s to %s:%s/%s: %s", q->user, q->hostaddr,
			 q->port, q->dbname,
			 timed_out ? "no answer within the catalog deadline"
			 : conn	   ? PQerrorMessage(conn)
				   : "out of memory");
		goto out;
	}
	if (query_rows(conn, REL_SQL, deadline, rel_row, &rr, &bytes, qerr, sizeof(qerr))) {
		snprintf(err, errn, "reading pg_class as %s: %s", q->user, qerr);
		goto out;
	}
	if (query_rows(conn, FUNC_SQL, deadline, func_row, b, &bytes, qerr, sizeof(qerr))) {
		snprintf(err, errn, "reading pg_proc as %s: %s", q->user, qerr);
		goto out;
	}
	if (query_rows(conn, OP_SQL, deadline, op_row, b, &bytes, qerr, sizeof(qerr))) {
		snprintf(err, errn, "reading pg_operator as %s: %s", q->user, qerr);
		goto out;
	}
	if (query_rows(conn, CAST_SQL, deadline, cast_row, b, &bytes, qerr, sizeof(qerr))) {
		snprintf(err, errn, "reading pg_cast as %s: %s", q->user, qerr);
		goto out;
	}
	if (b->oom)
		snprintf(err, errn, "out of memory reading the catalog");
	else
		rc = 0;
out:
	PQfinish(conn);
	if (cafd >= 0)
		close(cafd);
	/* libpq's messages end in a newline; the log line should not */
	for (size_t l = strlen(err); l && err[l - 1] == '\n'; l--)
		err[l - 1] = 0;
	return rc;
}

/* Give up root for good before reading a byte from any server (sandbox.h): the --user's ids,
 * no capability, no_new_privs, and a seccomp filter that allows dialling and reading files by
 * name (libpq's CA and its look for client certificates) on top of an engine worker's calls. */
static int drop(const char *ids, char *err, size_t n)
{
	struct sandbox_id id = {0};
	unsigned long uid, gid;
	char *e;

	uid = strtoul(ids, &e, 10);
	if (*e != ':' || !uid) {
		snprintf(err, n, "bad UID:GID '%s'", ids);
		return -1;
	}
	gid = strtoul(e + 1, &e, 10);
	if (*e || !gid) {
		snprintf(err, n, "bad UID:GID '%s'", ids);
		return -1;
	}
	id.uid = (uid_t)uid;
	id.gid = (gid_t)gid;
	snprintf(id.name, sizeof(id.name), "%lu", uid);
	/* what libpq would otherwise load lazily, once the filter is on */
	OPENSSL_init_ssl(OPENSSL_INIT_LOAD_CONFIG, NULL);
	return sandbox_enter(&id, SANDBOX_ALLOW_CONNECT | SANDBOX_ALLOW_READ, err, n) ? -1 : 0;
}

int catalog_loader_main(int argc, char **argv)
{
	static struct catwire_req q; /* 64 KiB of CA: not on the stack */
	const int fd = 3;

	char err[256];

	if (argc != 3) {
		fprintf(stderr, "usage: hoopd --catalog-loader UID:GID (hoopd runs it)\n");
		return 2;
	}
	if (drop(argv[2], err, sizeof(err))) {
		fprintf(stderr, "hoopd --catalog-loader: cannot give up root: %s\n", err);
		return 2;
	}
	for (;;) {
		struct catwire_ans_head h;
		struct catwire_buf b = {0};
		uint32_t len;
		int64_t t0;

		if (catwire_read_all(fd, &len, 4))
			return 0; /* hoopd closed: done */
		if (len != sizeof(q) || catwire_read_all(fd, &q, sizeof(q)) || !catwire_req_ok(&q))
			return 2;
		memset(&h, 0, sizeof(h));
		t0 = now_ms();
		h.ok = !load(&q, &b, h.error, sizeof(h.error));
		explicit_bzero(q.password, sizeof(q.password));
		h.ms = now_ms() - t0;
		h.ops_len = h.ok ? (uint32_t)b.len : 0;
		if (catwire_send(fd, &h, sizeof(h), b.p, h.ops_len))
			return 2;
		free(b.p);
	}
}
