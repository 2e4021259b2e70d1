/*
 * libFuzzer target for the PostgreSQL engine, agent direction: the input is the bytes an agent
 * sends, from its first byte on (a first byte 0x16 stands for a direct-TLS ClientHello). They
 * reach pg_engine.agent_data in chunks; a small model of a database answers whatever the engine
 * forwards (startup, trust, password or SCRAM authentication, queries, the extended protocol,
 * COPY, FunctionCall, the poison), and its answers reach pg_engine.server_data sooner or later.
 * Statements are judged by the test verdict (pg_fuzz.h), so denials, poisons and holds happen;
 * a hold ends by approval, refusal, pg_engine.fail_held or .cancel_held, or a CancelRequest on a
 * second connection. The audit trail refuses records by decision. Besides crashes, leaks and
 * sanitizer reports, these are bugs:
 *   - anything queued for either peer that does not frame, or an ill-formed message that hoopd
 *     or the model vouches for; an audit record that is not strict JSON;
 *   - a Query, Parse or FunctionCall reaching a ready database that the verdict did not allow
 *     (judged deny, or never judged), or a Query, Execute or FunctionCall reaching it while the
 *     audit trail refuses records;
 *   - a protocol error blamed on the database, whose answers here are all well-formed.
 * Seeds: fuzz/corpus/pg_agent/ (recorded sessions and hand-made ones, see record_pg.py);
 * dictionary: fuzz/pg.dict.
 */
#include <ctype.h>
#include <errno.h>
#include <pg_query.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "pg.h"
#include "pg_fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What pg_front.c sends in place of a denied statement when the server must answer it. */
#define POISON_SQL  "SELECT pg_catalog.\"hoop: statement denied by policy\"()"
#define BACKEND_PID 4242
#define BACKEND_KEY 99

static struct fz_sess A; /* the agent's connection */

/* ---- what the verdict saw: every forwarded statement must be here, allowed ---- */

/*
 * One judgement, in the order the engine asked: a Query (all its statements' verdicts), a
 * Parse or a FunctionCall. Each forwarded message uses up one allowed judgement of equal text.
 * The same text can be judged differently over time (EXECUTE follows its PREPARE), so these
 * are kept per judgement, not per text.
 */
struct judged {
	char kind; /* Q: a Query body; P: a Parse's text; F: a FunctionCall's description */
	int denied, used;
	const void *at; /* a Query: where its body was when judged, to group its statements */
	unsigned call;	/* ... and during which agent_data call */
	size_t n;
	uint8_t *b;
};

static struct judged *g_judged;
static size_t g_njudged, g_capjudged;
static unsigned g_call; /* agent_data calls so far */

static void judged_add(char kind, const void *at, const void *b, size_t n, int denied)
{
	struct judged *j = g_njudged ? &g_judged[g_njudged - 1] : NULL;

	if (j && kind == 'Q' && j->kind == 'Q' && j->at == at && j->call == g_call) {
		j->denied |= denied; /* another statement of the same Query */
		return;
	}
	if (g_njudged == g_capjudged) {
		g_capjudged = g_capjudged ? 2 * g_capjudged : 16;
		g_judged = realloc(g_judged, g_capjudged * sizeof(*g_judged));
		REQUIRE(g_judged != NULL);
	}
	j = &g_judged[g_njudged++];
	memset(j, 0, sizeof(*j));
	j->kind = kind;
	j->denied = denied;
	j->at = at;
	j->call = g_call;
	j->n = n;
	j->b = malloc(n ? n : 1);
	REQUIRE(j->b != NULL);
	memcpy(j->b, b, n);
}

/* A forwarded message of this text: 1 if an allowed judgement was there for it, 0 if only
 * denied ones, -1 if it was never judged. */
static int judged_use(char kind, const void *b, size_t n)
{
	int seen = -1;

	for (size_t i = 0; i < g_njudged; i++) {
		struct judged *j = &g_judged[i];

		if (j->used || j->kind != kind || j->n != n || memcmp(j->b, b, n))
			continue;
		if (!j->denied) {
			j->used = 1;
			return 1;
		}
		seen = 0;
	}
	return seen;
}

static void judged_clear(void)
{
	for (size_t i = 0; i < g_njudged; i++)
		free(g_judged[i].b);
	free(g_judged);
	g_judged = NULL;
	g_njudged = g_capjudged = 0;
}

/*
 * A simple-protocol statement points into its Query message, still in the agent's buffer.
 * Its body ends at the first NUL; its start is found by walking back to a 'Q' header whose
 * length fits. The body has no NUL and the length's first byte is 0 (max_message < 16 MiB), so
 * no position inside the body can pass for the header.
 */
static void query_body(const struct session *s, const char *text, const uint8_t **body, size_t *n)
{
	const uint8_t *lo = s->a.in.data, *t = (const uint8_t *)text;
	const uint8_t *hi = buf_head(&s->a.in) + s->a.in.len, *end;

	REQUIRE(lo && t >= lo + 5 && t < hi); /* judged where it arrived */
	end = memchr(t, 0, (size_t)(hi - t));
	REQUIRE(end != NULL);
	for (const uint8_t *b = t; b >= lo + 5; b--) {
		if (b[-5] == 'Q' && pgw_be32(b - 4) == (uint32_t)(end + 1 - b) + 4) {
			*body = b;
			*n = (size_t)(end + 1 - b);
			return;
		}
	}
	REQUIRE(!"a judged statement lies inside a Query message");
}

static enum verdict agent_verdict(struct judgement *j)
{
	enum verdict v = fz_verdict(j);

	if (!strcmp(j->protocol, "simple")) {
		const uint8_t *b;
		size_t n;

		query_body(j->s, j->text, &b, &n);
		judged_add('Q', b, b, n, v == VERDICT_DENY);
	} else if (!strcmp(j->protocol, "extended")) {
		judged_add('P', NULL, j->text, j->len, v != VERDICT_ALLOW);
	} else {
		REQUIRE(!strcmp(j->protocol, "function"));
		judged_add('F', NULL, j->text, j->len, v != VERDICT_ALLOW);
	}
	return v;
}

/* PostgreSQL's splitter finds no statement: the engine has nothing to judge. */
static int no_statement(const char *sql)
{
	PgQuerySplitResult r = pg_query_split_with_parser(sql);
	int none;

	if (r.error) {
		pg_query_free_split_result(r);
		r = pg_query_split_with_scanner(sql);
	}
	none = !r.error && r.n_stmts == 0;
	pg_query_free_split_result(r);
	return none;
}

static void check_forwarded_query(const struct pgw_msg *m)
{
	int terminated = m->len >= 1 && memchr(m->body, 0, m->len) == m->body + m->len - 1;
	int r;

	if (terminated && !strcmp((const char *)m->body, POISON_SQL))
		return;
	r = judged_use('Q', m->body, m->len);
	if (r < 0 && terminated && no_statement((const char *)m->body))
		return;
	if (r != 1)
		fprintf(stderr, "pg fuzz: %s Query reached the database: %.*s\n",
			r ? "unjudged" : "denied", (int)m->len, (const char *)m->body);
	REQUIRE(r == 1);
}

static void check_forwarded_parse(const struct pgw_msg *m)
{
	struct pgw_rd rd;
	const char *sql = NULL;
	size_t n = 0;
	int r = -1;

	pgw_rd_init(&rd, m);
	if (pgw_str(&rd, NULL))
		sql = pgw_str(&rd, &n);
	if (sql && !strcmp(sql, POISON_SQL))
		return;
	if (sql)
		r = judged_use('P', sql, n);
	if (r != 1)
		fprintf(stderr, "pg fuzz: %s Parse reached the database: %s\n",
			r ? "unjudged" : "denied", sql ? sql : "(malformed)");
	REQUIRE(r == 1);
}

static void check_forwarded_call(const struct pgw_msg *m)
{
	char desc[64];
	int r = -1;

	if (m->len >= 4) {
		snprintf(desc, sizeof(desc), "FunctionCall oid %u", (unsigned)pgw_be32(m->body));
		r = judged_use('F', desc, strlen(desc));
	}
	if (r != 1)
		fprintf(stderr, "pg fuzz: %s FunctionCall reached the database\n",
			r ? "unjudged" : "denied");
	REQUIRE(r == 1);
}

/* ---- the database: answers each message the way PostgreSQL would, well-formed ---- */

enum model_phase { M_STARTUP, M_PASSWORD, M_SASL_FIRST, M_SASL_FINAL, M_READY, M_GONE };

static struct {
	enum model_phase phase;
	/* 0 trust, 1 cleartext password, 2 SCRAM, 3 trust after NegotiateProtocolVersion */
	int auth;
	uint8_t tx;
	int skip; /* extended protocol: an error, so everything up to Sync is ignored */
	int copy_in;
	struct buf pending; /* said by the database, not yet read by hoopd */
} M;

static void say(uint8_t type, const void *body, size_t n)
{
	REQUIRE(pgw_put(&M.pending, type, body, n) == 0);
}

static void say_i32(uint8_t type, uint32_t v)
{
	uint8_t b[4];

	pgw_set_be32(b, v);
	say(type, b, 4);
}

static void say_ready(void)
{
	REQUIRE(pgw_put_ready(&M.pending, M.tx) == 0);
}

static void say_complete(const char *tag)
{
	say('C', tag, strlen(tag) + 1);
}

static void say_error(const char *severity, const char *sqlstate, const char *msg)
{
	REQUIRE(pgw_put_error(&M.pending, severity, sqlstate, msg, NULL, NULL) == 0);
	if (M.tx == 'T')
		M.tx = 'E';
}

static void say_fatal(const char *msg)
{
	say_error("FATAL", "08P01", msg);
	M.phase = M_GONE;
}

static void say_rowdesc(void)
{
	/* one text column "name" of table 64, attnum 2 */
	static const char t[] = "\0\1name\0\0\0\0\x40\0\2\0\0\0\x19\xff\xff\xff\xff\xff\xff\0\0";

	say('T', t, sizeof(t) - 1);
}

static void say_row(void)
{
	static const char d[] = "\0\1\0\0\0\3Ada";

	say('D', d, sizeof(d) - 1);
}

static void say_welcome(void)
{
	static const char ps[] = "server_version\00015.0";
	uint8_t k[8];

	say_i32('R', 0);
	say('S', ps, sizeof(ps));
	pgw_set_be32(k, BACKEND_PID);
	pgw_set_be32(k + 4, BACKEND_KEY);
	say('K', k, 8);
	M.tx = 'I';
	say_ready();
	M.phase = M_READY;
}

static void db_startup(const struct pgw_msg *m)
{
	uint32_t code = m->len >= 4 ? pgw_be32(m->body) : 0;

	if (code == PG_SSLREQUEST)
		return; /* hoopd never asks in this target: upstream TLS is off */
	if (code == PG_CANCELREQUEST) {
		M.phase = M_GONE;
		return;
	}
	REQUIRE(code >> 16 == 3);
	switch (M.auth) {
	case 1:
		say_i32('R', 3);
		M.phase = M_PASSWORD;
		break;
	case 2: {
		static const char sasl[] = "\0\0\0\nSCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0";

		say('R', sasl, sizeof(sasl));
		M.phase = M_SASL_FIRST;
		break;
	}
	case 3: {
		/* NegotiateProtocolVersion: minor 0, one option not recognized */
		static const char v[] = "\0\0\0\0\0\0\0\1_pq_.x";

		say('v', v, sizeof(v));
	}
	/* fall through */
	default:
		say_welcome();
	}
}

/* Up to cap - 1 bytes of a message's text, lower-cased, NUL-terminated. */
static void lowered(const uint8_t *p, size_t n, char *out, size_t cap)
{
	size_t k = 0;

	for (size_t i = 0; i < n && p[i] && k + 1 < cap; i++)
		out[k++] = (char)tolower(p[i]);
	out[k] = '\0';
}

static int starts(const char *t, const char *w)
{
	while (*t == ' ' || *t == '\n' || *t == '\t')
		t++;
	return !strncmp(t, w, strlen(w));
}

static void db_query(const uint8_t *body, size_t n)
{
	char t[4096];

	lowered(body, n, t, sizeof(t));
	if (strstr(t, "hoop: statement denied")) {
		say_error("ERROR", "42883", "function pg_catalog.\"hoop: ...\"() does not exist");
	} else if (M.tx == 'E' && !starts(t, "rollback") && !starts(t, "abort")) {
		say_error("ERROR", "25P02", "current transaction is aborted");
	} else if (!t[strspn(t, " \n\t;")]) {
		say('I', NULL, 0);
	} else if (strstr(t, "copy") && strstr(t, "stdin")) {
		static const uint8_t g[] = {0, 0, 1, 0, 0};

		say('G', g, sizeof(g));
		M.copy_in = 1;
		return; /* the answer comes after CopyDone or CopyFail */
	} else if (strstr(t, "copy") && strstr(t, "stdout")) {
		static const uint8_t h[] = {0, 0, 1, 0, 0};

		say('H', h, sizeof(h));
		say('d', "Ada\n", 4);
		say('c', NULL, 0);
		say_complete("COPY 1");
	} else if (starts(t, "begin") || starts(t, "start")) {
		say_complete("BEGIN");
		M.tx = 'T';
	} else if (starts(t, "commit") || starts(t, "end")) {
		say_complete(M.tx == 'E' ? "ROLLBACK" : "COMMIT");
		M.tx = 'I';
	} else if (starts(t, "rollback") || starts(t, "abort")) {
		say_complete("ROLLBACK");
		M.tx = 'I';
	} else if (strstr(t, "error") || strstr(t, "raise")) {
		REQUIRE(pgw_put_notice(&M.pending, "about to fail") == 0);
		say_error("ERROR", "P0001", "raised on request");
	} else {
		if (strstr(t, "notify")) {
			static const char a[] = "\0\0\x10\x92"
						"chan\0payload";

			say('A', a, sizeof(a));
		}
		say_rowdesc();
		say_row();
		say_complete("SELECT 1");
	}
	say_ready();
}

/* While the audit trail refuses records, nothing that runs a statement may pass: the engine
 * sends a poison or answers itself instead. */
static void check_unrecorded(const struct pgw_msg *m)
{
	const char *sql = (const char *)m->body;
	int blank = m->type == 'Q' && m->len && !m->body[m->len - 1] &&
		    (!strcmp(sql, POISON_SQL) || no_statement(sql));

	if (!fz.audit_fail || blank)
		return;
	fprintf(stderr, "pg fuzz: '%c' reached the database without its audit record\n", m->type);
	REQUIRE(m->type != 'Q' && m->type != 'E' && m->type != 'F');
}

static void db_message(void *arg, const struct pgw_msg *m)
{
	/* What a ready server runs must have been allowed and recorded; before that, it would
	 * refuse. */
	if (M.phase == M_READY && m->type == 'Q')
		check_forwarded_query(m);
	else if (M.phase == M_READY && m->type == 'P')
		check_forwarded_parse(m);
	else if (M.phase == M_READY && m->type == 'F')
		check_forwarded_call(m);
	if (M.phase == M_READY && (m->type == 'Q' || m->type == 'E' || m->type == 'F'))
		check_unrecorded(m);
	switch (M.phase) {
	case M_GONE:
		return;
	case M_STARTUP:
		REQUIRE(m->type == 0);
		db_startup(m);
		return;
	case M_PASSWORD:
	case M_SASL_FIRST:
	case M_SASL_FINAL:
		if (m->type != 'p') {
			say_fatal("expected password response");
		} else if (M.phase == M_SASL_FIRST) {
			static const char c[] = "\0\0\0\x0br=abc,s=c2FsdA==,i=4096";

			say('R', c, sizeof(c) - 1);
			M.phase = M_SASL_FINAL;
		} else if (M.phase == M_SASL_FINAL) {
			static const char f[] = "\0\0\0\x0cv=c2ln";

			say('R', f, sizeof(f) - 1);
			say_welcome();
		} else {
			say_welcome();
		}
		return;
	case M_READY:
		break;
	}
	/* After an error in an extended-protocol message PostgreSQL ignores every message up to
	 * Sync, a Query or a FunctionCall too (PostgresMain: "if (ignore_till_sync && firstchar
	 * != EOF) continue"; only SocketBackend's Sync ends it). Terminate is ignored as well,
	 * but the client closes the connection then, which ends the session all the same. */
	if (M.skip && m->type && strchr("QPBDECFHdcf", m->type))
		return;
	switch (m->type) {
	case 'Q':
		db_query(m->body, m->len);
		break;
	case 'P':
		if (memmem(m->body, m->len, "hoop: statement denied", 22)) {
			say_error("ERROR", "42883", "function does not exist");
			M.skip = 1;
		} else {
			say('1', NULL, 0);
		}
		break;
	case 'B':
		say('2', NULL, 0);
		break;
	case 'D':
		if (m->len && m->body[0] == 'S') {
			static const uint8_t pd[] = {0, 0};

			say('t', pd, sizeof(pd));
		}
		say_rowdesc();
		break;
	case 'E':
		say_row();
		if (m->len >= 4 && pgw_be32(m->body + m->len - 4) == 1)
			say('s', NULL, 0);
		else
			say_complete("SELECT 1");
		break;
	case 'C':
		say('3', NULL, 0);
		break;
	case 'S':
		M.skip = 0;
		say_ready();
		break;
	case 'F': {
		static const uint8_t v[] = {0, 0, 0, 1, '7'};

		say('V', v, sizeof(v));
		say_ready();
		break;
	}
	case 'd':
	case 'H':
		break;
	case 'c':
	case 'f':
		if (!M.copy_in)
			break;
		M.copy_in = 0;
		if (m->type == 'c')
			say_complete("COPY 1");
		else
			say_error("ERROR", "57014", "COPY from stdin failed");
		say_ready();
		break;
	case 'X':
		M.phase = M_GONE;
		break;
	default:
		say_fatal("invalid frontend message type");
	}
}

/* ---- driving ---- */

static int g_answers; /* SSL/GSSENC requests fed and not answered yet */

/* Byte k of what the agent has sent but hoopd not consumed, followed by what it will send. */
static int peek(const struct fz_in *in, size_t k)
{
	size_t have = A.s.a.in.len;

	if (k < have)
		return buf_head(&A.s.a.in)[k];
	return k - have < in->n ? in->p[k - have] : -1;
}

static int peek32(const struct fz_in *in, size_t k, uint32_t *v)
{
	uint8_t b[4];

	for (int i = 0; i < 4; i++) {
		int c = peek(in, k + (size_t)i);

		if (c < 0)
			return -1;
		b[i] = (uint8_t)c;
	}
	*v = pgw_be32(b);
	return 0;
}

/* In the startup phase a chunk ends with the packet it completes, so that the database can
 * answer the startup before the next bytes arrive (if the decisions say so). */
static size_t startup_cap(const struct fz_in *in, size_t want)
{
	size_t have = A.s.a.in.len;
	uint32_t len, code;

	if (peek32(in, 0, &len) || len < 8 || len > PG_MAX_STARTUP || len <= have)
		return want;
	if (want < len - have)
		return want;
	if (!peek32(in, 4, &code) && (code == PG_SSLREQUEST || code == PG_GSSENCREQUEST))
		g_answers++;
	return len - have;
}

/* Known bug 2: until hoopd has the database's ReadyForQuery, a chunk ends with the message it
 * completes. */
static size_t message_cap(const struct fz_in *in, size_t want)
{
	size_t have = A.s.a.in.len;
	uint32_t len;

	if (peek(in, 0) < 0 || peek32(in, 1, &len) || len < 4 || len > hoopd.o.max_message ||
	    (size_t)len + 1 <= have)
		return want;
	return want < (size_t)len + 1 - have ? want : (size_t)len + 1 - have;
}

/* How the recorded client authenticated: after any SSL/GSSENC requests and the startup packet,
 * a password message means it was asked for one. */
static int auth_of(const uint8_t *p, size_t n)
{
	size_t o = 0;

	while (o + 8 <= n) {
		uint32_t len = pgw_be32(p + o), code = pgw_be32(p + o + 4);

		if (len < 8 || len > PG_MAX_STARTUP)
			return 0;
		o += len;
		if (code != PG_SSLREQUEST && code != PG_GSSENCREQUEST)
			break;
	}
	if (o + 5 > n || p[o] != 'p')
		return 0;
	return o + 5 + 13 <= n && !memcmp(p + o + 5, "SCRAM-SHA-256", 13) ? 2 : 1;
}

static int g_hoopd_ready; /* hoopd has been given the database's first ReadyForQuery */

/* The database's answers so far reach hoopd: all, none yet, or a few bytes of them. */
static void from_database(uint8_t d)
{
	size_t n = M.pending.len;

	if (FZ_KNOWN_BUGS && !g_hoopd_ready)
		d = 0;
	if (d >= 128 && d < 192)
		return;
	if (d >= 192 && n > (size_t)(d & 63) + 1)
		n = (size_t)(d & 63) + 1;
	if (!n)
		return;
	REQUIRE(buf_append(&A.s.s.in, buf_head(&M.pending), n) == 0);
	buf_consume(&M.pending, n);
	if (M.phase == M_READY && !M.pending.len)
		g_hoopd_ready = 1;
	if (!A.s.closing)
		pg_engine.server_data(A.e, &A.s.s.in);
}

/* A second connection carrying a CancelRequest with the agent session's key. */
static void cancel_from_elsewhere(void)
{
	struct fz_sess c;
	uint8_t m[16];
	int was_held = A.s.held;

	fz_open(&c, "scancel");
	pgw_set_be32(m, 16);
	pgw_set_be32(m + 4, PG_CANCELREQUEST);
	pgw_set_be32(m + 8, BACKEND_PID);
	pgw_set_be32(m + 12, BACKEND_KEY);
	REQUIRE(buf_append(&c.s.a.in, m, sizeof(m)) == 0);
	pg_engine.agent_data(c.e, &c.s.a.in);
	if (was_held) {
		/* Answered by hoopd: the server is not asked. */
		REQUIRE(c.s.closing);
		REQUIRE(!A.s.held);
		REQUIRE(fz_check_server_out(&c, NULL, NULL) == 0);
	} else {
		REQUIRE(fz_check_server_out(&c, NULL, NULL) == 1);
	}
	fz_check_agent_out(&c, NULL, 1);
	fz_close(&c);
}

/* A held statement: wait longer (if allowed), approve, refuse, or cancel. */
static void decide_hold(uint8_t d, int may_wait)
{
	int r = 0;

	if (d < 64 && may_wait)
		return;
	if (d < 128)
		r = pg_engine.resume_held(A.s.est, VERDICT_ALLOW, NULL);
	else if (d < 160)
		r = pg_engine.resume_held(A.s.est, VERDICT_DENY, NULL);
	else if (d < 176)
		r = pg_engine.resume_held(A.s.est, VERDICT_DENY, "an approver said no \xff\xfe");
	else if (d < 192)
		r = pg_engine.fail_held(A.s.est, "57P01", "terminating connection due to shutdown");
	else if (d < 224)
		r = pg_engine.cancel_held(A.s.est);
	else
		cancel_from_elsewhere();
	REQUIRE(r == 0);
	REQUIRE(!A.s.held);
}

/* hoopd answers an SSLRequest with 'S' on the socket itself, then asks the relay for TLS. */
static void after_agent_tls(void)
{
	size_t said = fz_agent_socket_drain();

	REQUIRE(said <= 1 && (int)said <= g_answers);
	g_answers -= (int)said;
	if (!fz.agent_tls_started)
		return;
	REQUIRE(said == 1);
	fz.agent_tls_started = 0;
	/* The relay calls back only on success; on failure it drops the session. */
	A.s.a.ssl = fz_fake_ssl;
	pg_engine.tls_done(A.e, 1, 1);
}

static void exchange(uint8_t db_d, uint8_t hold_d, int may_wait)
{
	if (A.s.a.in.len && !A.s.held && !A.s.closing) {
		g_call++;
		pg_engine.agent_data(A.e, &A.s.a.in);
	}
	after_agent_tls();
	fz_check_server_out(&A, db_message, NULL);
	if (M.phase != M_STARTUP)
		g_answers = 0;
	if (A.s.held && !A.s.closing)
		decide_hold(hold_d, may_wait);
	fz_check_server_out(&A, db_message, NULL);
	from_database(db_d);
	fz_check_agent_out(&A, &g_answers, 1);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fz_init();
	verdict_hook = agent_verdict;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = {data, size};
	uint8_t cfg = fz_pick(&in);

	memset(&fz, 0, sizeof(fz));
	memset(&fz_events, 0, sizeof(fz_events));
	fz.agent_tls = cfg & 1;
	fz.agent_tls_result = cfg & 2 ? 0 : -1;
	fz.hold_open_result = cfg & 0x10 ? -EIO : 0;
	fz.upstream = UPSTREAM_TLS_DISABLE;
	memset(&M, 0, sizeof(M));
	/* The recording's own authentication, unless the decision overrides it. */
	M.auth = cfg & 0x80 ? (cfg >> 5) & 3 : auth_of(data, in.n);
	M.tx = 'I';
	g_answers = 0;
	g_hoopd_ready = 0;
	fz_open(&A, "sagent");
	A.s.a.fd = fz_agent_socket_fd();
	/* A first byte 0x16 is a TLS ClientHello (direct TLS): what follows is said inside it. The
	 * relay asks the engine, starts TLS, and calls back once the handshake is done. */
	if (in.n && in.p[0] == 0x16 && pg_engine.direct_tls && !pg_engine.direct_tls(A.e)) {
		in.p++, in.n--;
		if (sess_tls_agent(&A.s))
			goto out; /* the relay drops the session */
		fz.agent_tls_started = 0;
		A.s.a.ssl = fz_fake_ssl;
		pg_engine.tls_done(A.e, 1, 1);
	}

	while (in.n && !A.s.closing && M.phase != M_GONE) {
		const uint8_t *chunk;
		size_t n = fz_chunk(&in);
		uint8_t db_d = fz_pick(&in), hold_d = fz_pick(&in);

		fz.audit_fail = fz_pick(&in) >= 0xf0;

		if (M.phase == M_STARTUP)
			n = startup_cap(&in, n);
		else if (FZ_KNOWN_BUGS && !g_hoopd_ready)
			n = message_cap(&in, n);
		n = fz_take(&in, n, &chunk);
		if (!n)
			break; /* the decisions took the last bytes */
		REQUIRE(buf_append(&A.s.a.in, chunk, n) == 0);
		if (FZ_KNOWN_BUGS && M.phase != M_STARTUP)
			fz_steer_type0(&A.s.a.in);
		exchange(db_d, hold_d, 1);
	}
	/* The input is used up: end any hold, let the database say everything, until quiet. */
	fz.audit_fail = 0;
	for (int i = 0; i < 16 && !A.s.closing; i++) {
		size_t before = A.s.a.in.len;

		exchange(0, 64, 0);
		if (!A.s.held && !M.pending.len && A.s.a.in.len == before)
			break;
	}
	fz_check_agent_out(&A, &g_answers, 1);
out:
	fz_close(&A);
	buf_free(&M.pending);
	judged_clear();
	/* The model's answers are well-formed: hoopd has nothing to blame the database for. */
	REQUIRE(fz_events.protocol_error_database == 0);
	return 0;
}
