/*
 * hoopctl central: the fleet's central PostgreSQL, audit half (docs/fleet.md). `central init`
 * creates and migrates the schema `hoop` and its roles; `central ship` copies this node's audit
 * trail into it, in order, at least once, deduplicated by (node, seq, ts), following the trail
 * as hoopd appends and catching up after the central database was away; `central verify` proves
 * each node's chain from the central copy alone, with verify.c's own checks over the records
 * materialised as segments. The local trail stays the source of truth: nothing here writes it.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cdecision.h"
#include "disp.h"
#include "hoopctl.h"
#include "nodename.h"
#include "trailread.h"

#define CENTRAL_DSN_MAX	 4096
#define CENTRAL_PUB_MAX	 4096
#define BATCH_RECORDS	 1000
#define BATCH_BYTES	 (1 << 20)
#define POLL_MS		 200
#define HEARTBEAT_S	 10
#define BACKOFF_MIN_MS	 200
#define BACKOFF_MAX_MS	 10000
#define STATUS_FILE	 "central-shipped"
#define PUBLISH_MS	 500  /* the node's pending requests into hoop.approvals */
#define REPUBLISH_MS	 10000 /* the same list again (rows removed centrally come back) */
#define DECISIONS_MS	 1000 /* decisions polled when no NOTIFY came */

/* ---- the schema, one migration per entry; never edit one that has shipped, add the next ---- */

static const char mig1[] =
    /* records: partitioned by the record's own time; the primary key must hold the partition
     * key, so the deduplication key is (node, seq, ts): a record sent again has the same ts.
     * Its index also serves (node, seq) (the shipper's max(seq), verify's order): no second
     * index. */
    "create table hoop.nodes ("
    "  node text primary key,"
    "  audit_pub text,"
    "  first_seen timestamptz not null default now(),"
    "  last_seen timestamptz not null default now(),"
    "  shipped_seq bigint not null default 0);"
    "create table hoop.records ("
    "  node text not null,"
    "  seq bigint not null,"
    "  seg integer not null,"
    "  ts timestamptz not null,"
    "  kind text not null,"
    "  session text,"
    "  line text not null,"
    "  primary key (node, seq, ts)"
    ") partition by range (ts);"
    "create table hoop.records_default partition of hoop.records default;"
    /* The node's name for row-level security: its login role's name (docs/fleet.md). */
    "create function hoop.node_name() returns text language sql stable"
    "  as $$ select current_user::text $$;"
    /* Monthly partitions from this month on, made when missing; rows already in the default
     * partition for such a month move into it. */
    "create function hoop.ensure_partitions(months int) returns int"
    "  language plpgsql security definer set search_path = pg_catalog, pg_temp as $f$\n"
    "declare\n"
    "  first date := date_trunc('month', now() at time zone 'UTC')::date;\n"
    "  lo text; hi text; part text; made int := 0;\n"
    "begin\n"
    "  if months is null or months < 1 or months > 120 then\n"
    "    raise exception 'hoop.ensure_partitions: months must be 1..120, not %', months;\n"
    "  end if;\n"
    "  for i in 0 .. months - 1 loop\n"
    "    part := 'records_' || to_char(first + make_interval(months => i), 'YYYYMM');\n"
    "    continue when to_regclass('hoop.' || part) is not null;\n"
    "    lo := to_char(first + make_interval(months => i), 'YYYY-MM-DD') || ' 00:00:00+00';\n"
    "    hi := to_char(first + make_interval(months => i + 1), 'YYYY-MM-DD') || ' 00:00:00+00';\n"
    "    lock table hoop.records_default in exclusive mode;\n"
    "    execute format('create table hoop.%I (like hoop.records including defaults)', part);\n"
    "    execute format('insert into hoop.%I select * from hoop.records_default"
    " where ts >= %L and ts < %L', part, lo, hi);\n"
    "    execute format('delete from hoop.records_default where ts >= %L and ts < %L', lo, hi);\n"
    "    execute format('alter table hoop.records attach partition hoop.%I"
    " for values from (%L) to (%L)', part, lo, hi);\n"
    "    made := made + 1;\n"
    "  end loop;\n"
    "  return made;\n"
    "end $f$;"
    /* Roles: groups the operator grants to login roles. Cluster-wide, so made only if
     * missing. */
    "do $$ begin"
    "  if not exists (select from pg_roles where rolname = 'hoop_node') then"
    "    create role hoop_node nologin; end if;"
    "  if not exists (select from pg_roles where rolname = 'hoop_auditor') then"
    "    create role hoop_auditor nologin; end if;"
    "  if not exists (select from pg_roles where rolname = 'hoop_approver') then"
    "    create role hoop_approver nologin; end if;"
    "end $$;"
    "revoke all on schema hoop from public;"
    "revoke all on all tables in schema hoop from public;"
    "revoke all on all functions in schema hoop from public;"
    "grant usage on schema hoop to hoop_node, hoop_auditor, hoop_approver;"
    "grant execute on function hoop.node_name() to hoop_node, hoop_auditor, hoop_approver;"
    "grant execute on function hoop.ensure_partitions(int) to hoop_node;"
    "grant select, insert on hoop.records to hoop_node;"
    "grant select, insert, update on hoop.nodes to hoop_node;"
    "grant select on hoop.schema_version to hoop_node, hoop_auditor, hoop_approver;"
    "grant select on hoop.records, hoop.nodes to hoop_auditor, hoop_approver;"
    "alter table hoop.records enable row level security;"
    "alter table hoop.nodes enable row level security;"
    "create policy node_insert on hoop.records for insert to hoop_node"
    "  with check (node = hoop.node_name());"
    "create policy node_read on hoop.records for select to hoop_node"
    "  using (node = hoop.node_name());"
    "create policy readers on hoop.records for select to hoop_auditor, hoop_approver"
    "  using (true);"
    "create policy node_own on hoop.nodes for all to hoop_node"
    "  using (node = hoop.node_name()) with check (node = hoop.node_name());"
    "create policy readers on hoop.nodes for select to hoop_auditor, hoop_approver"
    "  using (true);";

static const char mig2[] =
    /* approvals across nodes: a node publishes its pending requests and closes them; approvers
     * decide only through hoop.decide (SECURITY DEFINER), which records session_user and
     * decides a pending row only (compare-and-swap); the node applies what was decided and
     * says so in applied_at and outcome. A decided row must name who decided: a node's role
     * may set state but never decided_by, so it cannot forge a decision by someone. */
    "create table hoop.approvals ("
    "  node text not null,"
    "  id text not null,"
    "  session text,"
    "  rule text,"
    "  statement text,"
    "  sha256 text not null,"
    "  owner text,"
    "  agent_uid int,"
    "  requested timestamptz not null default now(),"
    "  state text not null default 'pending'"
    "    check (state in ('pending', 'approved', 'denied', 'closed')),"
    "  decided_by text,"
    "  decided_at timestamptz,"
    "  reason text,"
    "  applied_at timestamptz,"
    "  outcome text,"
    "  primary key (node, id),"
    "  check (state in ('pending', 'closed') or decided_by is not null));"
    "create index approvals_pending on hoop.approvals (node) where state <> 'closed';"
    "create function hoop.decide(p_node text, p_id text, p_decision text, p_sha256 text,"
    "  p_reason text) returns text"
    "  language plpgsql security definer set search_path = pg_catalog, pg_temp as $f$\n"
    "declare\n"
    "  r hoop.approvals;\n"
    "  who text := session_user;\n"
    "  st text;\n"
    "begin\n"
    "  if p_decision is null or p_decision not in ('approve', 'deny') then\n"
    "    raise exception 'hoop.decide: the decision is approve or deny, not %', p_decision\n"
    "      using errcode = '22023';\n"
    "  end if;\n"
    "  if length(coalesce(p_reason, '')) > 2048 then\n"
    "    raise exception 'hoop.decide: the reason is longer than 2048 characters'"
    "      using errcode = '22023';\n"
    "  end if;\n"
    "  if p_decision = 'deny' and coalesce(p_reason, '') = '' then\n"
    "    raise exception 'hoop.decide: a denial needs a reason (the agent is told it)'"
    "      using errcode = '22023';\n"
    "  end if;\n"
    "  select * into r from hoop.approvals where node = p_node and id = p_id;\n"
    "  if not found then\n"
    "    raise exception 'hoop.decide: no request %/% in the central queue', p_node, p_id"
    "      using errcode = 'P0002';\n"
    "  end if;\n"
    "  if r.state <> 'pending' then\n"
    "    raise exception 'hoop.decide: request %/% was already %', p_node, p_id,"
    "      case when r.state = 'closed' and r.decided_by is null"
    "        then 'closed on the node: ' || coalesce(r.outcome, 'no longer pending there')"
    "        else r.state || ' by ' || coalesce(r.decided_by, '?') || ' at ' ||"
    "          coalesce(r.decided_at::text, '?') ||"
    "          coalesce(' (' || r.outcome || ')', '') end"
    "      using errcode = '55000';\n"
    "  end if;\n"
    /* self-approval, by the rule hoopd applies locally: the agent's owner, or its name
     * before '@' */
    "  if who = r.owner or who = split_part(coalesce(r.owner, ''), '@', 1) then\n"
    "    raise exception 'hoop.decide: % may not decide request %/%: an agent''s owner may"
    " not decide its own request', who, p_node, p_id using errcode = '42501';\n"
    "  end if;\n"
    "  if p_decision = 'approve' then\n"
    "    if p_sha256 is null or length(p_sha256) < 16 or lower(p_sha256) !~ '^[0-9a-f]+$' then\n"
    "      raise exception 'hoop.decide: approve needs the sha256 of the statement, 16 or"
    " more hex digits (as hoopctl central approvals shows)' using errcode = '22023';\n"
    "    end if;\n"
    "    if left(r.sha256, length(p_sha256)) <> lower(p_sha256) then\n"
    "      raise exception 'hoop.decide: the sha256 given does not match request %/% (it is"
    " not the text the approver was shown)', p_node, p_id using errcode = '22023';\n"
    "    end if;\n"
    "  end if;\n"
    /* compare-and-swap: of two decisions at once, the second finds the row decided */
    "  update hoop.approvals set state = case p_decision when 'approve' then 'approved'"
    "    else 'denied' end, decided_by = who, decided_at = now(), reason = p_reason"
    "    where node = p_node and id = p_id and state = 'pending' returning state into st;\n"
    "  if st is null then\n"
    "    select * into r from hoop.approvals where node = p_node and id = p_id;\n"
    "    raise exception 'hoop.decide: request %/% was already % by % meanwhile', p_node, p_id,"
    "      r.state, coalesce(r.decided_by, 'the node') using errcode = '40001';\n"
    "  end if;\n"
    "  perform pg_notify('hoop_decisions', p_node);\n"
    "  return st;\n"
    "end $f$;"
    "revoke all on function hoop.decide(text, text, text, text, text) from public;"
    "grant execute on function hoop.decide(text, text, text, text, text) to hoop_approver;"
    "grant select, insert on hoop.approvals to hoop_node;"
    "grant update (state, applied_at, outcome) on hoop.approvals to hoop_node;"
    "grant select on hoop.approvals to hoop_auditor, hoop_approver;"
    "alter table hoop.approvals enable row level security;"
    "create policy node_own on hoop.approvals for all to hoop_node"
    "  using (node = hoop.node_name()) with check (node = hoop.node_name());"
    "create policy readers on hoop.approvals for select to hoop_auditor, hoop_approver"
    "  using (true);";

static const char *const migrations[] = {mig1, mig2};
#define NMIGRATIONS ((int)(sizeof(migrations) / sizeof(migrations[0])))

/* ---- connecting ------------------------------------------------------------------------------ */

/* The DSN: --dsn, else the first line of --dsn-file (a root-only file: it holds the password),
 * else $HOOP_CENTRAL_DSN (how hoopd passes --central). 0, or 2 with a message. */
static int dsn_get(const char *cmd, const char *dsn, const char *file, char *out, size_t n)
{
	if (!dsn && !file)
		dsn = getenv("HOOP_CENTRAL_DSN");
	if (dsn) {
		if (strlen(dsn) >= n) {
			fprintf(stderr, "hoopctl central %s: the DSN is longer than %zu bytes\n",
				cmd, n - 1);
			return 2;
		}
		snprintf(out, n, "%s", dsn);
		return 0;
	}
	if (file) {
		FILE *f = fopen(file, "re");
		size_t len;

		if (!f) {
			fprintf(stderr, "hoopctl central %s: cannot read the DSN file %s: %s\n",
				cmd, file, strerror(errno));
			return 2;
		}
		if (!fgets(out, (int)n, f))
			out[0] = '\0';
		fclose(f);
		len = strlen(out);
		while (len && (out[len - 1] == '\n' || out[len - 1] == '\r' ||
			       out[len - 1] == ' ' || out[len - 1] == '\t'))
			out[--len] = '\0';
		if (!len) {
			fprintf(stderr, "hoopctl central %s: the DSN file %s is empty\n", cmd,
				file);
			return 2;
		}
		return 0;
	}
	fprintf(stderr, "hoopctl central %s: no database: give --dsn DSN or --dsn-file FILE\n",
		cmd);
	return 2;
}

/* A connection, or NULL with why in err. The DSN's own settings win over these defaults. */
static PGconn *central_connect(const char *dsn, char *err, size_t errn)
{
	const char *kw[] = {"application_name",
			    "connect_timeout",
			    "keepalives_idle",
			    "keepalives_interval",
			    "keepalives_count",
			    "dbname",
			    NULL};
	const char *val[] = {"hoop-central", "10", "10", "5", "3", dsn, NULL};
	PGconn *c = PQconnectdbParams(kw, val, 1);
	PGresult *r;

	if (!c || PQstatus(c) != CONNECTION_OK) {
		const char *m = c ? PQerrorMessage(c) : "out of memory";
		size_t l;

		snprintf(err, errn, "cannot connect to the central database: %s", m);
		l = strlen(err);
		while (l && err[l - 1] == '\n')
			err[--l] = '\0';
		PQfinish(c);
		return NULL;
	}
	r = PQexec(c, "set client_encoding = 'UTF8'; set client_min_messages = warning; set "
		      "search_path = pg_catalog");
	PQclear(r);
	return c;
}

/* The error of the last command on c, without its trailing newline. */
static const char *pg_err(PGconn *c, char *buf, size_t n)
{
	size_t l;

	snprintf(buf, n, "%s", PQerrorMessage(c));
	l = strlen(buf);
	while (l && buf[l - 1] == '\n')
		buf[--l] = '\0';
	return buf;
}

/* Run sql (no rows wanted). 0, or -1 with the error in err. */
static int pg_do(PGconn *c, const char *sql, char *err, size_t errn)
{
	PGresult *r = PQexec(c, sql);
	int ok =
	    r && (PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK);

	if (!ok)
		pg_err(c, err, errn);
	PQclear(r);
	return ok ? 0 : -1;
}

static void pg_rollback(PGconn *c)
{
	PQclear(PQexec(c, "rollback"));
}

/* ---- options shared by the three commands ------------------------------------------------- */

static const char central_usage[] =
    "usage: hoopctl central init --dsn DSN | --dsn-file FILE\n"
    "       hoopctl central ship (--dsn DSN | --dsn-file FILE) --node NAME [--state-dir DIR]\n"
    "                            [--once] [--no-approvals]\n"
    "       hoopctl central verify (--dsn DSN | --dsn-file FILE) [--node NAME] [--pub FILE]\n"
    "                              [--json]\n"
    "       hoopctl central approvals (--dsn DSN | --dsn-file FILE) [--node NAME] [--json]\n"
    "       hoopctl central approve (--dsn DSN | --dsn-file FILE) NODE ID --sha256 PREFIX\n"
    "                               [--reason TEXT] [--wait SECONDS]\n"
    "       hoopctl central deny (--dsn DSN | --dsn-file FILE) NODE ID --reason TEXT\n"
    "                            [--wait SECONDS]\n"
    "See hoopctl --help and docs/fleet.md.\n";

struct central_args {
	const char *dsn, *dsn_file, *node, *state, *pub, *sha256, *reason;
	const char *pos[2]; /* approve, deny: NODE ID */
	int once, json, no_approvals, wait_s;
};

/* 0 to go on, else the exit code. */
static int central_opts(const char *cmd, int argc, char **argv, struct central_args *a)
{
	static const struct option opts[] = {{"dsn", required_argument, 0, 'D'},
					     {"dsn-file", required_argument, 0, 'F'},
					     {"node", required_argument, 0, 'n'},
					     {"state-dir", required_argument, 0, 'd'},
					     {"pub", required_argument, 0, 'p'},
					     {"once", no_argument, 0, 'o'},
					     {"json", no_argument, 0, 'j'},
					     {"no-approvals", no_argument, 0, 'A'},
					     {"sha256", required_argument, 0, 'S'},
					     {"reason", required_argument, 0, 'r'},
					     {"wait", required_argument, 0, 'w'},
					     {"help", no_argument, 0, 'h'},
					     {0}};
	int c;

	int npos = !strcmp(cmd, "approve") || !strcmp(cmd, "deny") ? 2 : 0;
	char *end;

	a->state = DEFAULT_STATE_DIR;
	a->wait_s = 5;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'D':
			a->dsn = optarg;
			break;
		case 'F':
			a->dsn_file = optarg;
			break;
		case 'n':
			a->node = optarg;
			break;
		case 'd':
			a->state = optarg;
			break;
		case 'p':
			a->pub = optarg;
			break;
		case 'o':
			a->once = 1;
			break;
		case 'j':
			a->json = 1;
			break;
		case 'A':
			a->no_approvals = 1;
			break;
		case 'S':
			a->sha256 = optarg;
			break;
		case 'r':
			a->reason = optarg;
			break;
		case 'w':
			a->wait_s = (int)strtol(optarg, &end, 10);
			if (end == optarg || *end || a->wait_s < 0 || a->wait_s > 3600) {
				fprintf(stderr, "hoopctl central %s: --wait takes 0 to 3600 seconds\n",
					cmd);
				return 2;
			}
			break;
		case 'h':
			fputs(central_usage, stdout);
			return 0;
		default:
			fputs(central_usage, stderr);
			return 2;
		}
	}
	for (int i = 0; i < npos && optind < argc; i++)
		a->pos[i] = argv[optind++];
	if (npos && !a->pos[1]) {
		fprintf(stderr, "hoopctl central %s: NODE and ID are required\n%s", cmd,
			central_usage);
		return 2;
	}
	if (optind < argc) {
		fprintf(stderr, "hoopctl central %s: unexpected argument '%s'\n%s", cmd,
			argv[optind], central_usage);
		return 2;
	}
	return -1;
}

/* ---- central init ------------------------------------------------------------------------ */

static int central_init(PGconn *c)
{
	char err[1024], q[128];
	PGresult *r;
	int have, applied = 0;

	if (PQserverVersion(c) < 110000) {
		fprintf(stderr,
			"hoopctl central init: PostgreSQL %d is too old: 11 or newer needed "
			"(partitioned tables with a default partition)\n",
			PQserverVersion(c) / 10000);
		return 2;
	}
	if (strcmp(PQparameterStatus(c, "server_encoding") ? PQparameterStatus(c, "server_encoding")
							   : "",
		   "UTF8")) {
		fprintf(stderr,
			"hoopctl central init: the database's encoding is %s; the records are "
			"UTF-8 and must be kept byte for byte: create the database with "
			"ENCODING 'UTF8'\n",
			PQparameterStatus(c, "server_encoding"));
		return 2;
	}
	/* One init at a time (two operators, or a Job run twice): an advisory lock, then the
	 * migrations not yet applied, all in one transaction. */
	if (pg_do(c,
		  "begin; select pg_advisory_xact_lock(7626300001);"
		  "create schema if not exists hoop;"
		  "create table if not exists hoop.schema_version (version int primary key,"
		  " applied timestamptz not null default now(), what text not null)",
		  err, sizeof(err)))
		goto fail;
	r = PQexec(c, "select coalesce(max(version), 0) from hoop.schema_version");
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		pg_err(c, err, sizeof(err));
		PQclear(r);
		goto fail;
	}
	have = atoi(PQgetvalue(r, 0, 0));
	PQclear(r);
	if (have > NMIGRATIONS) {
		pg_rollback(c);
		fprintf(stderr,
			"hoopctl central init: the central schema is at version %d, newer "
			"than this hoopctl knows (%d): use a newer hoopctl\n",
			have, NMIGRATIONS);
		return 2;
	}
	for (int v = have + 1; v <= NMIGRATIONS; v++) {
		if (pg_do(c, migrations[v - 1], err, sizeof(err)))
			goto fail;
		snprintf(
		    q, sizeof(q),
		    "insert into hoop.schema_version (version, what) values (%d, 'migration %d')",
		    v, v);
		if (pg_do(c, q, err, sizeof(err)))
			goto fail;
		applied++;
	}
	if (pg_do(c, "commit", err, sizeof(err)))
		goto fail;
	r = PQexec(c, "select hoop.ensure_partitions(3)");
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		pg_err(c, err, sizeof(err));
		PQclear(r);
		fprintf(stderr, "hoopctl central init: making the monthly partitions: %s\n", err);
		return 1;
	}
	printf("central schema hoop at version %d (%d migration(s) applied now); %s monthly "
	       "partition(s) made; roles hoop_node, hoop_auditor, hoop_approver\n",
	       NMIGRATIONS, applied, PQgetvalue(r, 0, 0));
	PQclear(r);
	return 0;
fail:
	pg_rollback(c);
	fprintf(stderr, "hoopctl central init: %s\n", err);
	return 1;
}

/* ---- central ship ------------------------------------------------------------------------ */

struct ship {
	const char *state, *node;
	const char *dsn;
	PGconn *pg;
	char pub[CENTRAL_PUB_MAX + 1];
	/* where reading goes on: segment number and the uncompressed offset after the last
	 * whole line read in it */
	uint32_t seg;
	uint64_t off;
	uint64_t shipped; /* the central's highest seq of this node */
	/* the batch being built: COPY text rows */
	char *buf;
	size_t len, cap, nrec;
	uint64_t batch_last;
	/* status */
	uint64_t local_seq; /* the newest record seen in the local trail */
	uint32_t peek_seg;  /* local_peek's place while the central is away */
	uint64_t peek_off;
	char last_error[512];
	time_t last_status, last_beat;
	uint64_t st_shipped, st_local;
	char st_error[512];
	int st_connected;
	uint64_t shipped_records; /* by this process, for --once's summary */
	/* approvals across nodes (not with --once): what was last published, and when */
	int relay;
	char *pub_sig;
	int64_t pub_ms, pub_full_ms, dec_ms;
};

static volatile sig_atomic_t g_stop;

static void on_stop(int sig)
{
	g_stop = 1;
}

static void ship_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void ship_log(const char *fmt, ...)
{
	va_list ap;

	fputs("hoopctl central ship: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* An error the status file shows; logged when it is new. */
static void ship_error(struct ship *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void ship_error(struct ship *s, const char *fmt, ...)
{
	char m[sizeof(s->last_error)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(m, sizeof(m), fmt, ap);
	va_end(ap);
	if (strcmp(m, s->last_error))
		ship_log("%s", m);
	snprintf(s->last_error, sizeof(s->last_error), "%s", m);
}

static void rfc3339_now(char *out, size_t n)
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(out, n, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000);
}

/* DIR/central-shipped: what hoopd's status and metrics show. Written when something changed,
 * and at least every HEARTBEAT_S; atomically (tmp + rename), so a reader sees one or the other. */
static void ship_status(struct ship *s, int force)
{
	char path[4200], tmp[4300], now[40];
	struct json_object *o;
	const char *txt;
	time_t t = time(NULL);
	int fd, connected = s->pg != NULL;
	uint64_t local = s->local_seq > s->shipped ? s->local_seq : s->shipped;

	if (!force && s->st_shipped == s->shipped && s->st_local == local &&
	    s->st_connected == connected && !strcmp(s->st_error, s->last_error) &&
	    t - s->last_status < HEARTBEAT_S)
		return;
	s->st_shipped = s->shipped;
	s->st_local = local;
	s->st_connected = connected;
	snprintf(s->st_error, sizeof(s->st_error), "%s", s->last_error);
	s->last_status = t;
	rfc3339_now(now, sizeof(now));
	o = json_object_new_object();
	json_object_object_add(o, "node", json_object_new_string(s->node));
	json_object_object_add(o, "shipped_seq", json_object_new_int64((int64_t)s->shipped));
	json_object_object_add(o, "local_seq", json_object_new_int64((int64_t)local));
	json_object_object_add(o, "lag_records",
			       json_object_new_int64((int64_t)(local - s->shipped)));
	json_object_object_add(o, "connected", json_object_new_boolean(connected));
	json_object_object_add(o, "last_error", json_object_new_string(s->last_error));
	json_object_object_add(o, "updated", json_object_new_string(now));
	json_object_object_add(o, "pid", json_object_new_int(getpid()));
	txt = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	snprintf(path, sizeof(path), "%s/%s", s->state, STATUS_FILE);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, txt, strlen(txt)) != (ssize_t)strlen(txt) ||
	    write(fd, "\n", 1) != 1 || close(fd) || rename(tmp, path)) {
		if (fd >= 0)
			close(fd);
		ship_log("cannot write %s: %s", path, strerror(errno));
	}
	json_object_put(o);
}

/* DIR/audit.pub as it is now (hoopd rewrites it at every start). 0, or -1 with the error set. */
static int ship_read_pub(struct ship *s)
{
	char path[4200];
	int fd;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/audit.pub", s->state);
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		ship_error(s, "cannot read %s: %s", path, strerror(errno));
		return -1;
	}
	n = read(fd, s->pub, CENTRAL_PUB_MAX);
	close(fd);
	if (n <= 0) {
		ship_error(s, "cannot read %s: %s", path, n ? strerror(errno) : "empty");
		return -1;
	}
	s->pub[n] = '\0';
	return 0;
}

/* Open segment sg at uncompressed offset off. A plain file (the open segment, the usual case)
 * is positioned with lseek: zlib seeks a file it has recognised as not gzip directly, so make
 * it look first (one character read and pushed back). A .gz one is decompressed up to off. */
static int seg_open_at(struct trail_lines *l, const struct trail_list *t, struct seg *sg,
		       uint64_t off)
{
	int c;

	if (seg_lines_open(l, t, sg))
		return -1;
	if (!off)
		return 0;
	c = gzgetc(l->f);
	if (c < 0 || gzungetc(c, l->f) < 0 ||
	    gzseek(l->f, (z_off_t)off, SEEK_SET) != (z_off_t)off) {
		snprintf(l->err, sizeof(l->err),
			 "cannot go to byte %llu of %s/%s (shorter than "
			 "what was read of it before)",
			 (unsigned long long)off, t->dir, sg->name);
		return -1;
	}
	l->whole = off;
	return 0;
}

/* The seq of the first record of segment sg, or 0 (empty, unreadable). */
static uint64_t seg_first_seq(const struct trail_list *t, struct seg *sg)
{
	struct trail_lines l;
	uint64_t seq = 0;
	char prev[TRAIL_HASH_HEX];

	if (!seg_lines_open(&l, t, sg) && trail_lines_next(&l) == 1 && !l.torn &&
	    trail_parse_head(l.line, l.len, &seq, prev))
		seq = 0;
	trail_lines_close(&l);
	return seq;
}

/* One column and what ends it, in COPY's text format: backslash, tab, newline and carriage
 * return escaped; v NULL: SQL NULL ("\N"). 0, or -ENOMEM. */
static int batch_put(struct ship *s, const char *v, size_t n, char end)
{
	if (!v) /* a string of no bytes ending in '\\', then one ending in 'N', then the end */
		return batch_put(s, "", 0, '\\') || batch_put(s, "", 0, 'N')
			   ? -ENOMEM
			   : batch_put(s, "", 0, end);
	if (s->cap - s->len < 2 * n + 2) {
		size_t nc = s->cap ? s->cap : 1 << 16;
		char *nb;

		while (nc - s->len < 2 * n + 2)
			nc *= 2;
		if (!(nb = realloc(s->buf, nc)))
			return -ENOMEM;
		s->buf = nb;
		s->cap = nc;
	}
	for (size_t i = 0; i < n; i++) {
		char c = v[i];

		if (c == '\\' || c == '\t' || c == '\n' || c == '\r') {
			s->buf[s->len++] = '\\';
			c = c == '\t' ? 't' : c == '\n' ? 'n' : c == '\r' ? 'r' : '\\';
		}
		s->buf[s->len++] = c;
	}
	s->buf[s->len++] = end;
	return 0;
}

/* One record into the batch. 0; 1 skipped (not a record: no seq, no ts or kind); -ENOMEM. */
static int batch_add(struct ship *s, uint32_t seg, const char *line, size_t len, uint64_t seq)
{
	struct json_object *o;
	const char *why, *ts, *kind, *sess;
	char num[48];
	int r;

	if (!(o = parse_json(line, len, &why)))
		return 1;
	ts = js(o, "ts");
	kind = js(o, "kind");
	sess = js(o, "session");
	if (!*ts || !*kind) {
		json_object_put(o);
		return 1;
	}
	r = batch_put(s, s->node, strlen(s->node), '\t');
	snprintf(num, sizeof(num), "%llu", (unsigned long long)seq);
	r = r ?: batch_put(s, num, strlen(num), '\t');
	snprintf(num, sizeof(num), "%u", seg);
	r = r ?: batch_put(s, num, strlen(num), '\t');
	r = r ?: batch_put(s, ts, strlen(ts), '\t');
	r = r ?: batch_put(s, kind, strlen(kind), '\t');
	if (*sess)
		r = r ?: batch_put(s, sess, strlen(sess), '\t');
	else
		r = r ?: batch_put(s, NULL, 0, '\t'); /* COPY's NULL */
	r = r ?: batch_put(s, line, len, '\n');
	json_object_put(o);
	if (r)
		return r;
	s->nrec++;
	s->batch_last = seq;
	return 0;
}

/* Register or refresh this node's row: its public key, last_seen, shipped_seq. */
static int node_upsert(struct ship *s, char *err, size_t errn)
{
	char seq[32];
	const char *v[3] = {s->node, s->pub, seq};
	PGresult *r;
	int ok;

	snprintf(seq, sizeof(seq), "%llu", (unsigned long long)s->shipped);
	r = PQexecParams(
	    s->pg,
	    "insert into hoop.nodes (node, audit_pub, first_seen, last_seen, shipped_seq)"
	    " values ($1, $2, now(), now(), $3::bigint) on conflict (node) do update set"
	    " audit_pub = excluded.audit_pub, last_seen = now(), shipped_seq ="
	    " greatest(hoop.nodes.shipped_seq, excluded.shipped_seq)",
	    3, NULL, v, NULL, NULL, 0);
	ok = PQresultStatus(r) == PGRES_COMMAND_OK;
	if (!ok)
		pg_err(s->pg, err, errn);
	PQclear(r);
	return ok ? 0 : -1;
}

/* Send the batch in one transaction: COPY into the session's staging table, then into
 * hoop.records skipping what is there already (a batch sent again after a lost commit), and
 * the node's row. 0, or -1 (the connection is to be dropped; nothing was committed, or all). */
static int batch_flush(struct ship *s)
{
	char err[1024];
	PGresult *r;
	uint64_t was = s->shipped;

	if (!s->nrec)
		return 0;
	if (pg_do(s->pg, "begin", err, sizeof(err)))
		goto fail;
	r = PQexec(s->pg, "copy pg_temp.hoop_stage from stdin");
	if (PQresultStatus(r) != PGRES_COPY_IN) {
		PQclear(r);
		pg_err(s->pg, err, sizeof(err));
		goto fail;
	}
	PQclear(r);
	if (PQputCopyData(s->pg, s->buf, (int)s->len) != 1 || PQputCopyEnd(s->pg, NULL) != 1) {
		pg_err(s->pg, err, sizeof(err));
		goto fail;
	}
	r = PQgetResult(s->pg);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		PQclear(r);
		pg_err(s->pg, err, sizeof(err));
		while ((r = PQgetResult(s->pg)))
			PQclear(r);
		goto fail;
	}
	PQclear(r);
	while ((r = PQgetResult(s->pg)))
		PQclear(r);
	if (pg_do(s->pg,
		  "insert into hoop.records (node, seq, seg, ts, kind, session, line)"
		  " select node, seq, seg, ts, kind, session, line from pg_temp.hoop_stage"
		  " order by seq on conflict do nothing",
		  err, sizeof(err)))
		goto fail;
	if (s->batch_last > s->shipped)
		s->shipped = s->batch_last;
	if (node_upsert(s, err, sizeof(err)) || pg_do(s->pg, "commit", err, sizeof(err))) {
		s->shipped = was;
		goto fail;
	}
	s->shipped_records += s->nrec;
	s->len = s->nrec = 0;
	s->last_beat = time(NULL);
	return 0;
fail:
	ship_error(s, "sending %zu record(s) (seq %llu to %llu) failed: %s", s->nrec,
		   (unsigned long long)(s->shipped + 1), (unsigned long long)s->batch_last, err);
	s->len = s->nrec = 0;
	return -1;
}

/* Connect, make the staging table, learn where the central copy ends and find that place in
 * the local trail. 0, or -1 with the error set. */
static int ship_connect(struct ship *s)
{
	char err[1024];
	PGresult *r;
	const char *v[1] = {s->node};
	struct trail_list t;
	int start = 0;

	if (ship_read_pub(s))
		return -1;
	if (!(s->pg = central_connect(s->dsn, err, sizeof(err)))) {
		ship_error(s, "%s", err);
		return -1;
	}
	if (pg_do(s->pg,
		  "create temp table if not exists hoop_stage (node text, seq bigint, seg integer,"
		  " ts timestamptz, kind text, session text, line text) on commit delete rows",
		  err, sizeof(err)))
		goto fail;
	/* Partitions for the coming months, made by whichever node comes first (a race between
	 * two is harmless: the loser's error is ignored, its partition exists). */
	PQclear(PQexec(s->pg, "select hoop.ensure_partitions(3)"));
	r = PQexecParams(s->pg, "select coalesce(max(seq), 0) from hoop.records where node = $1", 1,
			 NULL, v, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		PQclear(r);
		pg_err(s->pg, err, sizeof(err));
		goto fail;
	}
	s->shipped = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	if (node_upsert(s, err, sizeof(err)))
		goto fail;
	/* Decisions for this node wake the shipper (hoop.decide notifies with the node's name);
	 * it also polls, in case a notification was lost with a connection. */
	if (s->relay && pg_do(s->pg, "listen hoop_decisions", err, sizeof(err)))
		goto fail;
	free(s->pub_sig);
	s->pub_sig = NULL; /* publish again over this connection */
	/* The last segment whose first record is at or before the next one to ship. */
	if (trail_list_open(s->state, &t)) {
		ship_error(s, "cannot list the audit trail in %s/audit", s->state);
		PQfinish(s->pg);
		s->pg = NULL;
		return -1;
	}
	for (int i = 0; i < t.nsegs; i++) {
		uint64_t first = seg_first_seq(&t, &t.segs[i]);

		if (first && first <= s->shipped + 1)
			start = i;
		if (first > s->shipped + 1)
			break;
	}
	if (t.nsegs) {
		uint64_t first = seg_first_seq(&t, &t.segs[start]);

		if (first > s->shipped + 1)
			ship_log(
			    "the local trail starts at seq %llu but the central copy of node %s "
			    "ends at %llu: records %llu to %llu are no longer here (retention?) "
			    "and will be missing centrally",
			    (unsigned long long)first, s->node, (unsigned long long)s->shipped,
			    (unsigned long long)(s->shipped + 1), (unsigned long long)(first - 1));
		s->seg = t.segs[start].n;
	} else {
		s->seg = 1;
	}
	s->off = 0;
	trail_list_free(&t);
	if (s->last_error[0] || !s->last_beat)
		ship_log("connected: node %s, the central copy ends at seq %llu; shipping from "
			 "segment %u",
			 s->node, (unsigned long long)s->shipped, s->seg);
	s->last_error[0] = '\0';
	s->last_beat = time(NULL);
	return 0;
fail:
	ship_error(s, "preparing the central database: %s", err);
	PQfinish(s->pg);
	s->pg = NULL;
	return -1;
}

/* Read segment sg from s->off to its last whole line into batches. 0 at its end (or a torn
 * last line), -1 the central failed, -2 the segment cannot be read. */
static int ship_segment(struct ship *s, const struct trail_list *t, struct seg *sg)
{
	struct trail_lines l;
	int r = 0;

	if (seg_open_at(&l, t, sg, s->off)) {
		ship_error(s, "%s", l.err);
		trail_lines_close(&l);
		return -2;
	}
	while (!g_stop && (r = trail_lines_next(&l)) == 1) {
		uint64_t seq;
		char prev[TRAIL_HASH_HEX];

		if (l.torn)
			break; /* hoopd is writing it: the rest next time */
		s->off = l.whole;
		if (trail_parse_head(l.line, l.len, &seq, prev)) {
			ship_log("%s/%s line %u is not a record: not shipped (hoopctl verify names "
				 "it)",
				 t->dir, sg->name, l.lineno);
			continue;
		}
		if (seq > s->local_seq)
			s->local_seq = seq;
		if (seq <= s->shipped || (s->nrec && seq <= s->batch_last))
			continue; /* the central has it */
		r = batch_add(s, sg->n, l.line, l.len, seq);
		if (r < 0) {
			ship_error(s, "out of memory");
			trail_lines_close(&l);
			return -2;
		}
		if (r > 0)
			ship_log("%s/%s line %u (seq %llu) has no ts or kind: not shipped", t->dir,
				 sg->name, l.lineno, (unsigned long long)seq);
		if ((s->nrec >= BATCH_RECORDS || s->len >= BATCH_BYTES) && batch_flush(s)) {
			trail_lines_close(&l);
			return -1;
		}
	}
	if (r < 0) {
		ship_error(s, "reading %s/%s: %s", t->dir, sg->name, l.err);
		trail_lines_close(&l);
		return -2;
	}
	trail_lines_close(&l);
	return 0;
}

/* Everything new in the local trail to the central. 0 caught up, -1 the central failed, -2 a
 * local error (retried). */
static int ship_pass(struct ship *s)
{
	struct trail_list t;
	int r = 0;

	if (trail_list_open(s->state, &t))
		return -2;
	while (!g_stop) {
		int i = 0, last;

		while (i < t.nsegs && t.segs[i].n < s->seg)
			i++;
		if (i == t.nsegs)
			break; /* not there yet */
		if (t.segs[i].n != s->seg) {
			if (s->off)
				ship_log("segment %u vanished before all of it was shipped",
					 s->seg);
			s->seg = t.segs[i].n;
			s->off = 0;
		}
		last = i == t.nsegs - 1;
		/* Listed before it is read: a later segment in the listing means this one was
		 * closed already, so reading it to its end reads all of it. */
		r = ship_segment(s, &t, &t.segs[i]);
		if (r == -1 || (r == -2 && last))
			break;
		if (last)
			break;
		s->seg = t.segs[i + 1].n;
		s->off = 0;
		r = 0;
	}
	trail_list_free(&t);
	if (r == -1)
		return -1;
	if (batch_flush(s))
		return -1;
	if (r == 0 && s->last_error[0] && s->pg)
		s->last_error[0] = '\0';
	return r;
}

/* While the central is away: how far the local trail has grown (for the lag), read from
 * where the last look ended. */
static void local_peek(struct ship *s)
{
	struct trail_list t;
	struct trail_lines l;
	struct seg *sg;

	if (trail_list_open(s->state, &t))
		return;
	if (!t.nsegs) {
		trail_list_free(&t);
		return;
	}
	sg = &t.segs[t.nsegs - 1];
	if (sg->n != s->peek_seg) {
		s->peek_seg = sg->n;
		s->peek_off = 0;
	}
	if (!seg_open_at(&l, &t, sg, s->peek_off))
		while (trail_lines_next(&l) == 1 && !l.torn) {
			uint64_t seq;
			char prev[TRAIL_HASH_HEX];

			s->peek_off = l.whole;
			if (!trail_parse_head(l.line, l.len, &seq, prev) && seq > s->local_seq)
				s->local_seq = seq;
		}
	else
		s->peek_off = 0;
	trail_lines_close(&l);
	trail_list_free(&t);
}

/* ---- approvals across nodes: the node's side ------------------------------------------------ */

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *jget(struct json_object *o, const char *k)
{
	struct json_object *v;

	return o && json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_string)
		   ? json_object_get_string(v)
		   : NULL;
}

/* hoopd's pending requests (hoopctl approvals --json over the control socket): the answer, with
 * *arr its array, or NULL (hoopd did not answer: try again later). */
static struct json_object *local_pending(struct json_object **arr)
{
	struct json_object *r = ctl_call("{\"cmd\":\"approvals\"}"), *ok;

	*arr = NULL;
	if (!r)
		return NULL;
	if (!json_object_object_get_ex(r, "ok", &ok) || !json_object_get_boolean(ok) ||
	    !json_object_object_get_ex(r, "approvals", arr) ||
	    !json_object_is_type(*arr, json_type_array)) {
		json_object_put(r);
		*arr = NULL;
		return NULL;
	}
	return r;
}

/* The node's pending requests into hoop.approvals (new ones inserted, known ones left as they
 * are), and the central rows still pending that are no longer pending here closed. Sent when
 * the set of ids changed, and every REPUBLISH_MS. */
static void publish(struct ship *s)
{
	struct json_object *r, *arr;
	char *sig = NULL, err[1024];
	size_t sl = 0;
	FILE *m;
	const char *v[2];
	PGresult *res;
	int64_t now = mono_ms();

	if (!(r = local_pending(&arr)))
		return;
	if (!(m = open_memstream(&sig, &sl))) {
		json_object_put(r);
		return;
	}
	for (size_t i = 0; i < json_object_array_length(arr); i++)
		fprintf(m, "%s,", jget(json_object_array_get_idx(arr, i), "id") ?: "");
	fclose(m);
	if (s->pub_sig && !strcmp(s->pub_sig, sig) && now - s->pub_full_ms < REPUBLISH_MS) {
		free(sig);
		json_object_put(r);
		return;
	}
	v[0] = s->node;
	v[1] = json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PLAIN);
	res = PQexecParams(
	    s->pg,
	    "with l as (select * from json_to_recordset($2::json) as x(id text, session text,"
	    " rule text, statement text, sha256 text, owner text, uid int, age_s bigint)),"
	    " ins as (insert into hoop.approvals (node, id, session, rule, statement, sha256,"
	    " owner, agent_uid, requested) select $1, id, session, rule, statement, sha256, owner,"
	    " uid, now() - make_interval(secs => age_s) from l on conflict (node, id) do nothing)"
	    " update hoop.approvals a set state = 'closed', outcome = 'closed on the node: no"
	    " longer pending there (decided there, timed out, or cancelled: its audit trail says"
	    " which)' where a.node = $1 and a.state = 'pending' and a.id not in (select id from l)",
	    2, NULL, v, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		ship_error(s, "publishing the pending approvals: %s", pg_err(s->pg, err, sizeof(err)));
		free(sig);
	} else {
		free(s->pub_sig);
		s->pub_sig = sig;
		s->pub_full_ms = now;
	}
	PQclear(res);
	json_object_put(r);
}

/* Mark row id of this node: applied (outcome), or closed (why it was not applied). */
static void decision_done(struct ship *s, const char *id, int applied, const char *outcome)
{
	const char *v[3] = {s->node, id, outcome};
	char err[1024];
	PGresult *r = PQexecParams(
	    s->pg,
	    applied ? "update hoop.approvals set applied_at = now(), outcome = $3 where node = $1"
		      " and id = $2 and applied_at is null"
		    : "update hoop.approvals set state = 'closed', outcome = $3 where node = $1"
		      " and id = $2 and state in ('approved', 'denied') and applied_at is null",
	    3, NULL, v, NULL, NULL, 0);

	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		ship_error(s, "marking central decision %s/%s: %s", s->node, id,
			   pg_err(s->pg, err, sizeof(err)));
	PQclear(r);
}

/* Relay one decision to hoopd as central:BY. 1 applied, 0 refused or gone (why set), -1 hoopd
 * did not answer (tried again later). */
static int decision_apply(const struct cdec_row *row, const char *decision, char *why, size_t n)
{
	struct json_object *req = json_object_new_object(), *r, *v;
	int ok, found;

	json_object_object_add(req, "cmd", json_object_new_string(decision));
	json_object_object_add(req, "id", json_object_new_string(row->id));
	json_object_object_add(req, "sha256", json_object_new_string(row->sha256));
	json_object_object_add(req, "reason", json_object_new_string(row->reason ?: ""));
	json_object_object_add(req, "scope", json_object_new_string("once"));
	json_object_object_add(req, "for_s", json_object_new_int64(0));
	json_object_object_add(req, "central_by", json_object_new_string(row->decided_by));
	r = ctl_call(json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN));
	json_object_put(req);
	if (!r)
		return -1;
	ok = json_object_object_get_ex(r, "ok", &v) && json_object_get_boolean(v);
	found = !json_object_object_get_ex(r, "found", &v) || json_object_get_boolean(v);
	if (!ok)
		snprintf(why, n, "%s: %s",
			 found ? "refused by the node"
			       : "not applied: the request was no longer pending on the node",
			 jget(r, "error") ?: "no reason given");
	json_object_put(r);
	return ok;
}

/* Decisions taken centrally for this node and not yet applied: each judged (cdecision.h) and
 * relayed to hoopd, then marked applied or closed. */
static void apply_decisions(struct ship *s)
{
	const char *v[1] = {s->node};
	struct json_object *loc = NULL, *arr = NULL;
	struct cdec_pending *p = NULL;
	size_t np = 0;
	char err[1024];
	PGresult *r;

	r = PQexecParams(s->pg,
			 "select id, state, sha256, decided_by, reason from hoop.approvals where"
			 " node = $1 and state in ('approved', 'denied') and applied_at is null"
			 " order by decided_at",
			 1, NULL, v, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		ship_error(s, "reading central decisions: %s", pg_err(s->pg, err, sizeof(err)));
		PQclear(r);
		return;
	}
	if (!PQntuples(r) || !(loc = local_pending(&arr))) {
		PQclear(r);
		return;
	}
	np = json_object_array_length(arr);
	p = calloc(np ? np : 1, sizeof(*p));
	for (size_t i = 0; p && i < np; i++) {
		p[i].id = jget(json_object_array_get_idx(arr, i), "id");
		p[i].sha256 = jget(json_object_array_get_idx(arr, i), "sha256");
	}
	for (int i = 0; p && i < PQntuples(r); i++) {
		struct cdec_row row;
		struct cdec_out out;
		char why[1024];
		int k;

#define COL(c) (PQgetisnull(r, i, c) ? NULL : PQgetvalue(r, i, c))
		row.id = COL(0);
		row.state = COL(1);
		row.sha256 = COL(2);
		row.decided_by = COL(3);
		row.reason = COL(4);
#undef COL
		if (cdec_judge(&row, p, np, &out) != CDEC_APPLY) {
			ship_log("central decision %s/%s by %s not applied: %s", s->node,
				 row.id ? disp(row.id) : "?",
				 row.decided_by ? disp(row.decided_by) : "?", out.why);
			decision_done(s, row.id ? row.id : "", 0, out.why);
			continue;
		}
		k = decision_apply(&row, out.decision, why, sizeof(why));
		if (k < 0)
			break; /* hoopd did not answer: the next poll tries again */
		if (k)
			ship_log("central decision applied: %s %s by central:%s", row.id,
				 out.decision, disp(row.decided_by));
		else
			ship_log("central decision %s/%s by %s: %s", s->node, row.id,
				 disp(row.decided_by), why);
		decision_done(s, row.id, k,
			      k ? (!strcmp(out.decision, "approve") ? "applied: approved on the node"
								    : "applied: denied on the node")
				: why);
	}
	free(p);
	json_object_put(loc);
	PQclear(r);
}

/* Between two shipping passes: notifications read, requests published, decisions applied. */
static void relay_approvals(struct ship *s)
{
	int64_t now = mono_ms();
	int notified = 0;
	PGnotify *n;

	if (!s->relay || !s->pg || PQstatus(s->pg) != CONNECTION_OK)
		return;
	if (!PQconsumeInput(s->pg))
		return; /* the connection broke: the next pass finds it */
	while ((n = PQnotifies(s->pg))) {
		if (!strcmp(n->relname, "hoop_decisions") && cdec_notify_for(n->extra, s->node))
			notified = 1;
		PQfreemem(n);
	}
	if (now - s->pub_ms >= PUBLISH_MS) {
		publish(s);
		s->pub_ms = now;
	}
	if (notified || now - s->dec_ms >= DECISIONS_MS) {
		apply_decisions(s);
		s->dec_ms = mono_ms();
	}
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	if (!g_stop)
		nanosleep(&ts, NULL);
}

static int central_ship(struct ship *s, int once)
{
	long backoff = BACKOFF_MIN_MS;
	struct sigaction sa = {.sa_handler = on_stop};
	int rc = 0;

	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	while (!g_stop) {
		int r;

		if (!s->pg && ship_connect(s)) {
			local_peek(s);
			ship_status(s, 0);
			if (once) {
				rc = 1;
				break;
			}
			sleep_ms(backoff);
			backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
			continue;
		}
		backoff = BACKOFF_MIN_MS;
		r = ship_pass(s);
		if (r == -1 || (s->pg && PQstatus(s->pg) != CONNECTION_OK)) {
			PQfinish(s->pg);
			s->pg = NULL;
			local_peek(s);
			ship_status(s, 0);
			if (once) {
				rc = 1;
				break;
			}
			continue; /* reconnect at once, then back off */
		}
		if (r == 0 && time(NULL) - s->last_beat >= HEARTBEAT_S) {
			char err[1024];

			if (node_upsert(s, err, sizeof(err)))
				ship_error(s, "heartbeat: %s", err);
			s->last_beat = time(NULL);
		}
		ship_status(s, 0);
		if (once) {
			rc = r ? 1 : 0;
			break;
		}
		relay_approvals(s);
		sleep_ms(POLL_MS);
	}
	ship_status(s, 1);
	if (once)
		printf("shipped %llu record(s); the central copy of node %s ends at seq %llu%s%s\n",
		       (unsigned long long)s->shipped_records, s->node,
		       (unsigned long long)s->shipped, s->last_error[0] ? "; error: " : "",
		       s->last_error);
	PQfinish(s->pg);
	s->pg = NULL;
	free(s->buf);
	free(s->pub_sig);
	return rc;
}

/* ---- central verify ---------------------------------------------------------------------- */

static int rm_tree(const char *dir)
{
	char p[4200];
	struct trail_list t;

	if (!trail_list_open(dir, &t)) {
		for (int i = 0; i < t.nsegs; i++) {
			snprintf(p, sizeof(p), "%s/%s", t.dir, t.segs[i].name);
			unlink(p);
		}
		trail_list_free(&t);
	}
	snprintf(p, sizeof(p), "%s/audit", dir);
	rmdir(p);
	snprintf(p, sizeof(p), "%s/audit.pub", dir);
	unlink(p);
	return rmdir(dir);
}

/* Write the node's central records as segments under dir/audit, by their seg column, in seq
 * order. 0; 1 a row disagrees with its own line (reported); 2 an error (reported). *n: rows. */
static int materialise(PGconn *c, const char *node, const char *dir, uint64_t *n)
{
	const char *v[1] = {node};
	char path[4200], err[1024];
	PGresult *r;
	FILE *f = NULL;
	long cur = -1;
	int rc = 0;

	*n = 0;
	if (!PQsendQueryParams(c,
			       "select seg, seq, line from hoop.records where node = $1"
			       " order by seg, seq, ts",
			       1, NULL, v, NULL, NULL, 0) ||
	    !PQsetSingleRowMode(c)) {
		fprintf(stderr, "hoopctl central verify: %s\n", pg_err(c, err, sizeof(err)));
		return 2;
	}
	while ((r = PQgetResult(c))) {
		ExecStatusType st = PQresultStatus(r);

		if (st == PGRES_SINGLE_TUPLE && !rc) {
			long seg = atol(PQgetvalue(r, 0, 0));
			uint64_t seq = strtoull(PQgetvalue(r, 0, 1), NULL, 10), own;
			const char *line = PQgetvalue(r, 0, 2);
			int len = PQgetlength(r, 0, 2);
			char prev[TRAIL_HASH_HEX];

			if (seg != cur) {
				if (f && fclose(f))
					rc = 2;
				snprintf(path, sizeof(path), "%s/audit/seg-%08ld.jsonl", dir, seg);
				f = seg > 0 && seg <= 99999999 ? fopen(path, "wxe") : NULL;
				if (!f) {
					fprintf(stderr,
						"hoopctl central verify: node %s: cannot write "
						"%s: %s\n",
						node, path, seg > 0 ? strerror(errno) : "bad seg");
					rc = 2;
				}
				cur = seg;
			}
			if (f && (fwrite(line, 1, (size_t)len, f) != (size_t)len ||
				  fputc('\n', f) == EOF))
				rc = 2;
			if (!rc &&
			    (trail_parse_head(line, (size_t)len, &own, prev) || own != seq)) {
				printf("node %s: TAMPERED: the central row with seq %llu (seg %ld) "
				       "holds "
				       "a record whose own seq is %s\n",
				       node, (unsigned long long)seq, seg,
				       trail_parse_head(line, (size_t)len, &own, prev)
					   ? "unreadable"
					   : "different");
				rc = 1;
			}
			(*n)++;
		} else if (st != PGRES_SINGLE_TUPLE && st != PGRES_TUPLES_OK && !rc) {
			fprintf(stderr, "hoopctl central verify: node %s: %s\n", node,
				pg_err(c, err, sizeof(err)));
			rc = 2;
		}
		PQclear(r);
	}
	if (f && fclose(f) && !rc)
		rc = 2;
	return rc;
}

static int verify_node(PGconn *c, const char *node, const char *pub_db, const char *pub_file,
		       int json)
{
	char dir[] = "/tmp/hoop-central-verify-XXXXXX", p[4200];
	const char *pubs[1];
	uint64_t n;
	int rc, fd;

	if (getenv("TMPDIR") && strlen(getenv("TMPDIR")) < 4000) {
		static char d2[4200];

		snprintf(d2, sizeof(d2), "%s/hoop-central-verify-XXXXXX", getenv("TMPDIR"));
		if (!mkdtemp(d2)) {
			fprintf(stderr, "hoopctl central verify: mkdtemp %s: %s\n", d2,
				strerror(errno));
			return 2;
		}
		snprintf(dir, sizeof(dir), "%s", d2);
	} else if (!mkdtemp(dir)) {
		fprintf(stderr, "hoopctl central verify: mkdtemp: %s\n", strerror(errno));
		return 2;
	}
	snprintf(p, sizeof(p), "%s/audit", dir);
	if (mkdir(p, 0700)) {
		fprintf(stderr, "hoopctl central verify: mkdir %s: %s\n", p, strerror(errno));
		rmdir(dir);
		return 2;
	}
	if (!pub_file) {
		if (!pub_db || !*pub_db) {
			fprintf(stderr,
				"hoopctl central verify: node %s has no audit_pub in "
				"hoop.nodes: give the node's audit.pub with --pub FILE\n",
				node);
			rm_tree(dir);
			return 2;
		}
		snprintf(p, sizeof(p), "%s/audit.pub", dir);
		fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
		if (fd < 0 || write(fd, pub_db, strlen(pub_db)) != (ssize_t)strlen(pub_db)) {
			fprintf(stderr, "hoopctl central verify: writing %s: %s\n", p,
				strerror(errno));
			if (fd >= 0)
				close(fd);
			rm_tree(dir);
			return 2;
		}
		close(fd);
	}
	rc = materialise(c, node, dir, &n);
	if (!rc && !n) {
		printf("node %s: no records in the central store\n", node);
		rc = 1;
	} else if (!rc) {
		if (!json)
			printf("node %s: %llu record(s) from the central store, checked with %s:\n",
			       node, (unsigned long long)n,
			       pub_file ? pub_file : "the audit_pub it registered in hoop.nodes");
		fflush(stdout);
		pubs[0] = pub_file;
		rc = verify_run(dir, pubs, pub_file ? 1 : 0, json);
		fflush(stdout);
	}
	rm_tree(dir);
	return rc;
}

static int central_verify(PGconn *c, const struct central_args *a)
{
	const char *v[1] = {a->node};
	PGresult *r;
	char err[1024];
	int rc = 0, rows;

	r = a->node ? PQexecParams(c, "select node, audit_pub from hoop.nodes where node = $1", 1,
				   NULL, v, NULL, NULL, 0)
		    : PQexec(c, "select node, audit_pub from hoop.nodes order by node");
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		fprintf(stderr, "hoopctl central verify: %s\n", pg_err(c, err, sizeof(err)));
		PQclear(r);
		return 2;
	}
	rows = PQntuples(r);
	if (a->node && !rows) {
		if (!a->pub) {
			fprintf(stderr,
				"hoopctl central verify: node %s is not in hoop.nodes (give "
				"its audit.pub with --pub to check its records anyway)\n",
				a->node);
			PQclear(r);
			return 2;
		}
		rc = verify_node(c, a->node, NULL, a->pub, a->json);
	}
	if (!a->node && !rows)
		printf("no nodes in the central store\n");
	for (int i = 0; i < rows; i++) {
		int nr =
		    verify_node(c, PQgetvalue(r, i, 0),
				PQgetisnull(r, i, 1) ? NULL : PQgetvalue(r, i, 1), a->pub, a->json);

		if (nr > rc)
			rc = nr;
	}
	PQclear(r);
	return rc;
}

/* ---- central approvals, approve, deny: the approver's side --------------------------------- */


static int central_approvals(PGconn *c, const struct central_args *a)
{
	const char *v[1] = {a->node};
	char err[1024];
	PGresult *r;
	int n;

	r = PQexecParams(c,
			 "select node, id, coalesce(rule, ''), coalesce(statement, ''), sha256,"
			 " coalesce(owner, ''), coalesce(session, ''), coalesce(agent_uid, -1),"
			 " floor(extract(epoch from now() - requested))::bigint from hoop.approvals"
			 " where state = 'pending' and ($1::text is null or node = $1)"
			 " order by requested, node, id",
			 1, NULL, v, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		fprintf(stderr, "hoopctl central approvals: %s\n", pg_err(c, err, sizeof(err)));
		PQclear(r);
		return 2;
	}
	n = PQntuples(r);
	if (a->json) {
		struct json_object *o = json_object_new_object(), *arr = json_object_new_array();

		for (int i = 0; i < n; i++) {
			struct json_object *e = json_object_new_object();

			json_object_object_add(e, "node", json_object_new_string(PQgetvalue(r, i, 0)));
			json_object_object_add(e, "id", json_object_new_string(PQgetvalue(r, i, 1)));
			json_object_object_add(e, "rule", json_object_new_string(PQgetvalue(r, i, 2)));
			json_object_object_add(e, "statement",
					       json_object_new_string(PQgetvalue(r, i, 3)));
			json_object_object_add(e, "sha256",
					       json_object_new_string(PQgetvalue(r, i, 4)));
			json_object_object_add(e, "owner", json_object_new_string(PQgetvalue(r, i, 5)));
			json_object_object_add(e, "session",
					       json_object_new_string(PQgetvalue(r, i, 6)));
			json_object_object_add(e, "agent_uid",
					       json_object_new_int(atoi(PQgetvalue(r, i, 7))));
			json_object_object_add(
			    e, "age_s", json_object_new_int64(strtoll(PQgetvalue(r, i, 8), NULL, 10)));
			json_object_array_add(arr, e);
		}
		json_object_object_add(o, "approvals", arr);
		printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
		json_object_put(o);
		PQclear(r);
		return 0;
	}
	if (!n)
		printf("no statement is waiting for approval in the central queue\n");
	for (int i = 0; i < n; i++) {
		const char *st = PQgetvalue(r, i, 3);

		printf("%s %s  waiting %ss  rule %s\n", disp(PQgetvalue(r, i, 0)),
		       disp(PQgetvalue(r, i, 1)), PQgetvalue(r, i, 8), disp(PQgetvalue(r, i, 2)));
		printf("  owner %s, agent uid %s, session %s\n",
		       *PQgetvalue(r, i, 5) ? disp(PQgetvalue(r, i, 5)) : "-", PQgetvalue(r, i, 7),
		       disp(PQgetvalue(r, i, 6)));
		printf("  statement: %zu bytes, sha256 %s\n", strlen(st), disp(PQgetvalue(r, i, 4)));
		disp_show_text("", st);
	}
	PQclear(r);
	return 0;
}

/* hoop.decide, then (--wait) whether the node applied it. 0 decided (and applied, or not
 * known yet), 1 refused or not applied, 2 an error. */
static int central_decide(PGconn *c, const char *cmd, const struct central_args *a)
{
	const char *v[5] = {a->pos[0], a->pos[1], cmd, a->sha256, a->reason};
	const char *past = !strcmp(cmd, "approve") ? "approved" : "denied";
	char err[1024];
	PGresult *r;
	int64_t end;

	if (!strcmp(cmd, "deny") && (!a->reason || !*a->reason)) {
		fprintf(stderr, "hoopctl central deny: --reason TEXT is required (the agent is "
				"told it)\n");
		return 2;
	}
	if (!strcmp(cmd, "approve") && !a->sha256) {
		fprintf(stderr,
			"hoopctl central approve: --sha256 PREFIX is required: 16 or more hex "
			"digits of the sha256 `hoopctl central approvals` shows (what you approve "
			"is the text you read)\n");
		return 2;
	}
	r = PQexecParams(c, "select hoop.decide($1, $2, $3, $4, $5)", 5, NULL, v, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		const char *m = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);

		fprintf(stderr, "hoopctl central %s: %s\n", cmd,
			m ? disp(m) : disp(pg_err(c, err, sizeof(err))));
		PQclear(r);
		return 1;
	}
	PQclear(r);
	printf("%s %s/%s\n", past, disp(a->pos[0]), disp(a->pos[1]));
	fflush(stdout);
	end = mono_ms() + (int64_t)a->wait_s * 1000;
	while (a->wait_s) {
		const char *q[2] = {a->pos[0], a->pos[1]};

		r = PQexecParams(c,
				 "select state, applied_at is not null, coalesce(outcome, '') from"
				 " hoop.approvals where node = $1 and id = $2",
				 2, NULL, q, NULL, NULL, 0);
		if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
			PQclear(r);
			break;
		}
		if (!strcmp(PQgetvalue(r, 0, 1), "t")) {
			printf("node %s %s it (%s)\n", disp(a->pos[0]),
			       !strcmp(cmd, "approve") ? "ran" : "refused", disp(PQgetvalue(r, 0, 2)));
			PQclear(r);
			return 0;
		}
		if (!strcmp(PQgetvalue(r, 0, 0), "closed")) {
			fprintf(stderr, "hoopctl central %s: node %s did not apply it: %s\n", cmd,
				disp(a->pos[0]), disp(PQgetvalue(r, 0, 2)));
			PQclear(r);
			return 1;
		}
		PQclear(r);
		if (mono_ms() >= end) {
			printf("node %s has not applied it yet: it will when its shipper next reads "
			       "the central database, if the request is still pending there "
			       "(see hoop.approvals.outcome)\n",
			       disp(a->pos[0]));
			break;
		}
		sleep_ms(200);
	}
	return 0;
}

/* ---- the command -------------------------------------------------------------------------- */

int cmd_central(int argc, char **argv)
{
	struct central_args a = {0};
	char dsn[CENTRAL_DSN_MAX], err[1024];
	const char *sub;
	PGconn *c;
	int rc;

	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		fputs(central_usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	sub = argv[1];
	if (strcmp(sub, "init") && strcmp(sub, "ship") && strcmp(sub, "verify") &&
	    strcmp(sub, "approvals") && strcmp(sub, "approve") && strcmp(sub, "deny")) {
		fprintf(stderr, "hoopctl central: unknown command '%s'\n%s", sub, central_usage);
		return 2;
	}
	if ((rc = central_opts(sub, argc - 1, argv + 1, &a)) >= 0)
		return rc;
	if ((rc = dsn_get(sub, a.dsn, a.dsn_file, dsn, sizeof(dsn))))
		return rc;
	if (!strcmp(sub, "ship")) {
		struct ship *s;

		if (!a.node || !node_name_ok(a.node)) {
			fprintf(stderr,
				"hoopctl central ship: --node NAME is required: 1 to %d of "
				"A-Z a-z 0-9 . _ - (the name of its login role)\n",
				NODE_NAME_MAX);
			return 2;
		}
		if (!(s = calloc(1, sizeof(*s))))
			return 2;
		s->state = a.state;
		s->node = a.node;
		s->dsn = dsn;
		s->relay = !a.once && !a.no_approvals;
		rc = central_ship(s, a.once);
		explicit_bzero(dsn, sizeof(dsn));
		free(s);
		return rc;
	}
	if (a.node && !node_name_ok(a.node)) {
		fprintf(stderr, "hoopctl central %s: bad node name '%s'\n", sub, a.node);
		return 2;
	}
	c = central_connect(dsn, err, sizeof(err));
	explicit_bzero(dsn, sizeof(dsn));
	if (!c) {
		fprintf(stderr, "hoopctl central %s: %s\n", sub, err);
		return 2;
	}
	if (!strcmp(sub, "init"))
		rc = central_init(c);
	else if (!strcmp(sub, "verify"))
		rc = central_verify(c, &a);
	else if (!strcmp(sub, "approvals"))
		rc = central_approvals(c, &a);
	else
		rc = central_decide(c, sub, &a);
	PQfinish(c);
	return rc;
}
