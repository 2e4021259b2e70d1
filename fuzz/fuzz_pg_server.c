/*
 * libFuzzer target for the PostgreSQL engine, database direction: the input is the bytes a
 * database sends. A session is brought to the point of having sent its startup packet (or, when
 * upstream TLS is on, its SSLRequest); then the input reaches pg_engine.server_data in chunks,
 * and between chunks the agent sends canned requests (simple queries, the extended protocol,
 * pipelines with a denied statement, FunctionCall, COPY, SQL PREPARE/EXECUTE, a held statement,
 * SCRAM with and without channel binding) so that the queue of pending responses is seldom
 * empty. The relay's TLS handshake and redial, the approval request and the audit trail succeed
 * or fail by decision. Besides crashes, leaks and sanitizer reports, anything queued for either
 * peer that does not frame, an AuthenticationSASL offering the agent a -PLUS mechanism, or an
 * audit record that is not strict JSON is a bug.
 * Seeds: fuzz/corpus/pg_server/ (recorded sessions and hand-made ones, see record_pg.py);
 * dictionary: fuzz/pg.dict.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg.h"
#include "pg_fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct fz_sess S;

/* ---- what the agent sends ---- */

static void fe_put(uint8_t type, const void *body, size_t n)
{
	REQUIRE(pgw_put(&S.s.a.in, type, body, n) == 0);
}

static void fe_query(const char *sql)
{
	REQUIRE(pgw_put_query(&S.s.a.in, sql) == 0);
}

static void fe_parse(const char *name, const char *sql)
{
	REQUIRE(pgw_put_parse(&S.s.a.in, name, sql) == 0);
}

/* Bind with one parameter, in text or binary format. */
static void fe_bind(const char *portal, const char *stmt, const char *param, int binary)
{
	uint8_t m[256];
	size_t o = 0, l = strlen(portal) + 1;

	memcpy(m + o, portal, l), o += l;
	l = strlen(stmt) + 1;
	memcpy(m + o, stmt, l), o += l;
	m[o++] = 0, m[o++] = 1, m[o++] = 0, m[o++] = (uint8_t)binary;
	m[o++] = 0, m[o++] = 1;
	pgw_set_be32(m + o, (uint32_t)strlen(param)), o += 4;
	memcpy(m + o, param, strlen(param)), o += strlen(param);
	m[o++] = 0, m[o++] = 0;
	fe_put('B', m, o);
}

static void fe_named(uint8_t type, uint8_t kind, const char *name)
{
	uint8_t m[64];
	size_t l = strlen(name) + 1;

	m[0] = kind;
	memcpy(m + 1, name, l);
	fe_put(type, m, l + 1);
}

static void fe_execute(const char *portal, uint32_t max_rows)
{
	uint8_t m[64];
	size_t l = strlen(portal) + 1;

	memcpy(m, portal, l);
	pgw_set_be32(m + l, max_rows);
	fe_put('E', m, l + 4);
}

static void fe_sync(void)
{
	fe_put('S', NULL, 0);
}

static void fe_function_call(uint32_t oid)
{
	uint8_t m[] = {0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, '7', 0, 0};

	pgw_set_be32(m, oid);
	fe_put('F', m, sizeof(m));
}

static void fe_sasl_initial(const char *mech, const char *data)
{
	uint8_t m[128];
	size_t o = strlen(mech) + 1;

	memcpy(m, mech, o);
	pgw_set_be32(m + o, (uint32_t)strlen(data)), o += 4;
	memcpy(m + o, data, strlen(data)), o += strlen(data);
	fe_put('p', m, o);
}

/* One request group per decision; the SQL texts end in bytes the test verdict allows, denies
 * (ending in 1 or T) or holds (ending in 2 or N). */
static void agent_sends(uint8_t g)
{
	switch (g % 16) {
	case 0:
		break;
	case 1:
		fe_query("select name from patients");
		break;
	case 2:
		fe_query("begin; select 1; commit"); /* "select 1" is denied: none of it runs */
		break;
	case 3:
		fe_parse("", "select $1::int");
		fe_bind("", "", "42", 0);
		fe_named('D', 'P', "");
		fe_execute("", 0);
		fe_sync();
		break;
	case 4:
		fe_parse("s1", "select 1"); /* denied: the poison Parse goes in its place */
		fe_bind("p1", "s1", "\x01\x02", 1);
		fe_execute("p1", 0);
		fe_sync();
		fe_parse("", "select 'after'");
		fe_bind("", "", "x", 0);
		fe_execute("", 0);
		fe_sync();
		break;
	case 5:
		fe_function_call(g & 0x10 ? 1 : 3); /* oid 1 denied, oid 3 allowed */
		break;
	case 6:
		fe_named('C', 'P', "p1");
		fe_named('C', 'S', "s1");
		fe_named('D', 'S', "s1");
		fe_put('H', NULL, 0);
		fe_sync();
		break;
	case 7:
		fe_query("copy patients from stdin");
		fe_put('d', "1\tAda\n", 6);
		if (g & 0x10)
			fe_put('c', NULL, 0);
		else
			fe_put('f', "no more", 8);
		break;
	case 8:
		fe_query("select 2"); /* held */
		break;
	case 9:
		fe_sasl_initial(g & 0x10 ? "SCRAM-SHA-256" : "SCRAM-SHA-256-PLUS",
				g & 0x20 ? "y,,n=,r=fyko+d2lbbFgONRv9qkxdawL" : "n,,n=,r=abc");
		break;
	case 10:
		fe_put('p', "c=biws,r=abc,p=dHp", 18);
		break;
	case 11:
		fe_parse("s2", "select generate_series(1, 3)");
		fe_bind("p2", "s2", "", 0);
		fe_execute("p2", 1);
		fe_execute("p2", 1);
		fe_sync();
		break;
	case 12:
		fe_query("prepare q as select 3; execute q; deallocate q");
		break;
	case 13:
		fe_query(g & 0x10 ? ";" : "-- nothing\n");
		break;
	case 14:
		fe_query("copy (select 3) to stdout");
		break;
	default:
		if (g & 0x10)
			fe_put('X', NULL, 0);
		else
			fe_query("select 3; select 4");
		break;
	}
}

/* ---- driving ---- */

static void decide_hold(uint8_t d)
{
	int r = 0;

	if (d < 64)
		return; /* still waiting for an approver */
	if (d < 128)
		r = pg_engine.resume_held(S.s.est, VERDICT_ALLOW, NULL);
	else if (d < 160)
		r = pg_engine.resume_held(S.s.est, VERDICT_DENY, NULL);
	else if (d < 192)
		r = pg_engine.fail_held(S.s.est, "57014", "canceling statement due to statement timeout");
	else
		r = pg_engine.cancel_held(S.s.est);
	REQUIRE(r == 0);
	REQUIRE(!S.s.held);
}

/* What the relay does after the engine asked it for a TLS handshake or a redial. */
static void relay_follow_up(uint8_t cfg)
{
	if (fz.server_tls_started) {
		int ok = !!(cfg & 8);

		fz.server_tls_started = 0;
		if (ok)
			S.s.s.ssl = fz_fake_ssl;
		pg_engine.tls_done(S.e, 0, ok);
	}
	if (fz.reconnects) {
		/* The new connection is up. */
		fz.reconnects = 0;
		pg_engine.server_connected(S.e);
	}
}

static void check_out(void)
{
	fz_check_agent_out(&S, NULL, 0);
	fz_check_server_out(&S, NULL, NULL);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fz_init();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char params[] = "user\0agent\0database\0clinical\0application_name\0fuzz\0";
	struct fz_in in = {data, size};
	uint8_t cfg = fz_pick(&in), startup[8 + sizeof(params)];

	memset(&fz, 0, sizeof(fz));
	memset(&fz_events, 0, sizeof(fz_events));
	/* Mostly plain upstream, as in the recorded seeds; TLS prefer and require by decision. */
	fz.upstream = cfg & 0x80 ? (cfg & 0x40 ? UPSTREAM_TLS_REQUIRE : UPSTREAM_TLS_PREFER)
				 : UPSTREAM_TLS_DISABLE;
	fz.server_tls_result = cfg & 4 ? -1 : 0;
	fz.reconnect_result = cfg & 16 ? -1 : 0;
	fz.hold_open_result = cfg & 2 ? -EIO : 0;
	fz_open(&S, "sserver");

	pgw_set_be32(startup, sizeof(startup));
	pgw_set_be32(startup + 4, PG_PROTOCOL_3);
	memcpy(startup + 8, params, sizeof(params));
	REQUIRE(buf_append(&S.s.a.in, startup, sizeof(startup)) == 0);
	pg_engine.agent_data(S.e, &S.s.a.in);
	REQUIRE(!S.s.closing);
	REQUIRE(fz_check_server_out(&S, NULL, NULL) == 1);

	while (in.n && !S.s.closing) {
		const uint8_t *chunk;
		uint8_t g = fz_pick(&in);
		size_t n = fz_chunk(&in);

		fz.audit_fail = fz_pick(&in) >= 0xf0;

		if (S.s.held)
			decide_hold(g);
		else
			agent_sends(g);
		if (S.s.a.in.len && !S.s.held)
			pg_engine.agent_data(S.e, &S.s.a.in);
		relay_follow_up(cfg);
		check_out();
		if (S.s.closing)
			break;
		n = fz_take(&in, n, &chunk);
		if (!n)
			break; /* the decisions took the last bytes */
		REQUIRE(buf_append(&S.s.s.in, chunk, n) == 0);
		if (FZ_KNOWN_BUGS && !S.untyped_out)
			fz_steer_type0(&S.s.s.in);
		pg_engine.server_data(S.e, &S.s.s.in);
		relay_follow_up(cfg);
		check_out();
	}
	if (S.s.held && !S.s.closing) {
		decide_hold(64);
		check_out();
	}
	fz_close(&S);
	return 0;
}
