/*
 * libFuzzer target for the MySQL/MariaDB engine, database direction: the input is the bytes a
 * server sends, from its greeting on. They reach mysql_engine.server_data in chunks (a few
 * bytes, whole packets, or all); a canned agent logs in as soon as it has the greeting
 * (answering an auth switch when asked), and between chunks sends canned commands: text
 * queries of patients' ssn, a multi-statement query, a SET that makes hoopd read the
 * settings again, prepared statements (executed with a read-only cursor too, and fetched:
 * COM_STMT_FETCH), COM_FIELD_LIST, COM_PING, COM_STATISTICS,
 * COM_INIT_DB, COM_SET_OPTION, COM_RESET_CONNECTION, a denied DELETE and a held statement.
 * The relay's TLS handshake with the server and the audit trail succeed or fail by
 * decision; masking (the rule patients.ssn) is on or off by decision. Besides crashes, leaks
 * and sanitizer reports, these are bugs:
 *   - anything queued for either peer that does not frame;
 *   - anything the agent gets that a MySQL client would not read as the answer to what it
 *     sent, in order and numbered from 1 (the greeting with capabilities hoopd does not
 *     follow, an OK, EOF or ERR that does not read, a result set out of shape); with masking
 *     on, where hoopd reads every column definition and row, a malformed one too: what hoopd
 *     cannot read closes the session instead of reaching the agent;
 *   - with masking on, MF_MARKER in a value of a column that says it is patients.ssn, or is
 *     computed, in the answer to a statement that reads patients;
 *   - hoopd and the agent disagreeing on whether an answer is over (hoopd waits for more
 *     while the client has all of it, or the reverse);
 *   - the denied DELETE reaching the server; an audit record that is not strict JSON.
 * Seeds: fuzz/corpus/mysql_server/ (sessions recorded from a real MariaDB 10.11 by
 * fuzz/record_mysql.py, whose steps mirror agent_sends below); dictionary:
 * fuzz/mysql_wire.dict.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "my_fuzz.h"
#include "mysql_int.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct mf_sess S;
static struct mf_client C;
static int g_deprecate_eof;

/* The client's capabilities (libmariadb's, with DEPRECATE_EOF by decision) */
#define AGENT_CAPS                                                                                 \
	(MY_CLIENT_LONG_PASSWORD | 0x4u | MY_CLIENT_CONNECT_WITH_DB | MY_CLIENT_PROTOCOL_41 |      \
	 0x2000u | MY_CLIENT_SECURE_CONNECTION | MY_CLIENT_MULTI_STATEMENTS | (1u << 17) |         \
	 (1u << 18) | MY_CLIENT_PLUGIN_AUTH | MY_CLIENT_CONNECT_ATTRS |                            \
	 MY_CLIENT_PLUGIN_AUTH_LENENC)

/* ---- the verdict: DELETE denied, "hold" held ---- */

static enum verdict server_verdict(struct judgement *j)
{
	if (!j->facts || j->facts->parse_error || j->parse_error)
		return VERDICT_DENY;
	if (j->facts->kinds & (1ULL << SK_DELETE))
		return VERDICT_DENY;
	if (memmem(j->text, j->len, "hold", 4))
		return VERDICT_HOLD;
	return VERDICT_ALLOW;
}

/* ---- what the agent sends ---- */

static void put(const void *p, size_t n, uint8_t seq)
{
	REQUIRE(my_put_packet(&S.s.a.in, p, n, &seq) == 0);
}

static void put_cmd(uint8_t cmd, const void *body, size_t n)
{
	uint8_t b[256];

	REQUIRE(n < sizeof(b));
	b[0] = cmd;
	if (n)
		memcpy(b + 1, body, n);
	put(b, n + 1, 0);
}

static void put_query(const char *sql)
{
	put_cmd(MY_COM_QUERY, sql, strlen(sql));
}

static void login(void)
{
	uint8_t b[200];
	size_t o = 0;
	uint32_t caps = AGENT_CAPS | (g_deprecate_eof ? MY_CLIENT_DEPRECATE_EOF : 0);
	static const char attrs[] = "\x0c_client_name\x04"
				    "fuzz\x0cprogram_name\x05"
				    "agent";

	memcpy(b, &caps, 4), o += 4; /* little-endian hosts only, as the fuzz targets run */
	b[o++] = 0, b[o++] = 0, b[o++] = 0, b[o++] = 1; /* 16 MiB */
	b[o++] = 45;
	memset(b + o, 0, 23), o += 23;
	memcpy(b + o, "agent", 6), o += 6;
	b[o++] = 20;
	memcpy(b + o, "01234567890123456789", 20), o += 20;
	memcpy(b + o, "clinical", 9), o += 9;
	memcpy(b + o, "mysql_native_password", 22), o += 22;
	b[o++] = sizeof(attrs) - 1;
	memcpy(b + o, attrs, sizeof(attrs) - 1), o += sizeof(attrs) - 1;
	put(b, o, 1);
}

/* One command per decision (fuzz/record_mysql.py's STEPS are these, in this order). */
static void agent_sends(uint8_t g)
{
	uint8_t b[64];
	uint32_t id = C.stmt_id;

	switch (g % 16) {
	case 0:
		break;
	case 1:
		put_query("select name, ssn from patients");
		break;
	case 2:
		put_query("select ssn from clinical.patients where id = 1");
		break;
	case 3:
		put_query("select 1, 'x'");
		break;
	case 4:
		put_query("select name from patients; select ssn from patients");
		break;
	case 5:
		put_query("set autocommit = 1"); /* hoopd reads the settings again after it */
		break;
	case 6:
		put_cmd(MY_COM_STMT_PREPARE, "select ssn from patients where id = ?", 37);
		break;
	case 7:
		/* the last prepared statement, no cursor (a read-only cursor with 0x10), once,
		 * one LONG parameter: 1 */
		memcpy(b, &id, 4);
		memcpy(b + 4, "\x00\x01\x00\x00\x00\x00\x01\x03\x00\x01\x00\x00\x00", 13);
		b[4] = g & 0x10 ? 0x01 : 0x00;
		put_cmd(MY_COM_STMT_EXECUTE, b, 17);
		break;
	case 8:
		if (g & 0x10) {
			/* COM_STMT_FETCH of 1 row (of all with 0x20) */
			uint32_t n = g & 0x20 ? 0xffffffffu : 1;

			memcpy(b, &id, 4);
			memcpy(b + 4, &n, 4);
			put_cmd(MY_COM_STMT_FETCH, b, 8);
		} else {
			put_cmd(MY_COM_STMT_RESET, &id, 4);
		}
		break;
	case 9:
		put_cmd(MY_COM_FIELD_LIST, "patients\0", 9);
		break;
	case 10:
		put_cmd(MY_COM_PING, NULL, 0);
		break;
	case 11:
		put_cmd(MY_COM_STATISTICS, NULL, 0);
		break;
	case 12:
		put_cmd(MY_COM_INIT_DB, "clinical", 8);
		break;
	case 13:
		put_query("delete from patients where id = 3"); /* denied: hoopd answers */
		break;
	case 14:
		if (g & 0x10)
			put_cmd(MY_COM_RESET_CONNECTION, NULL, 0);
		else
			put_cmd(MY_COM_STMT_CLOSE, &id, 4); /* no answer */
		break;
	default:
		if (g & 0x10)
			put_cmd(MY_COM_SET_OPTION, "\x00\x00", 2); /* multi-statements on */
		else
			put_query("select ssn from patients /* hold */");
		break;
	}
}

/* A command whose answer has patients' rows: the client checks it for the marker. */
static int reads_patients(const uint8_t *p, size_t len)
{
	return len > 1 &&
	       (p[0] == MY_COM_QUERY || p[0] == MY_COM_STMT_EXECUTE || p[0] == MY_COM_STMT_FETCH) &&
	       (p[0] != MY_COM_QUERY || memmem(p, len, "patients", 8));
}

/* ---- the server side of hoopd ---- */

static void server_packet(void *arg, const uint8_t *p, size_t len, uint8_t seq)
{
	mf_dump("to the server", p, len, seq);
	/* the denied DELETE is answered by hoopd alone */
	REQUIRE(!(len && p[0] == MY_COM_QUERY && memmem(p, len, "delete from patients", 20)));
}

/* The client's view of one command, as it sent it: the marker check for what reads
 * patients. */
static void sent(void *arg, const uint8_t *p, size_t len, uint8_t seq)
{
	mf_client_sent(&C, p, len, seq);
	if (C.qn && C.phase == MC_READY && seq == 0 && len)
		C.q[(C.qh + C.qn - 1) % MF_MAX_PENDING].reads_phi = (uint8_t)reads_patients(p, len);
}

/* hoopd takes what the agent sent: the client learns which commands hoopd took. */
static void take_agent(void)
{
	struct buf b = {0};
	size_t before = S.s.a.in.len, used;

	if (!S.s.a.in.len || S.s.held || S.s.closing)
		return;
	REQUIRE(buf_append(&b, buf_head(&S.s.a.in), S.s.a.in.len) == 0);
	mysql_engine.agent_data(S.e, &S.s.a.in);
	used = before - S.s.a.in.len;
	if (used && !C.quit) {
		/* whole packets, each what the client sent (hoopd rewrites a login it takes) */
		b.len = used;
		mf_packets(&b, sent, NULL);
	}
	buf_free(&b);
}

/* What the client does on what it read: its login after the greeting, an answer to an auth
 * switch or a request for more (not to fast-auth success). */
static unsigned g_auth_seen;
static int g_login_sent;

static void client_reacts(void)
{
	if (C.phase == MC_LOGIN && !g_login_sent) {
		login();
		g_login_sent = 1;
	}
	if (C.phase == MC_AUTH && C.auth_turns > g_auth_seen) {
		g_auth_seen = C.auth_turns;
		put("98765432109876543210", 20, C.next_seq);
	}
}

/* What the relay does after the engine asked it for a TLS handshake with the server. */
static void relay_follow_up(uint8_t cfg)
{
	if (mf.server_tls_started) {
		uint8_t req[64];
		size_t n = mf_server_socket_drain(req, sizeof(req));
		int ok = !(cfg & 8);

		REQUIRE(n == 36 && req[0] == 32 && req[3] == 1); /* hoopd's SSLRequest */
		mf.server_tls_started = 0;
		S.s.s.handshaking = 0;
		if (ok)
			S.s.s.ssl = mf_fake_ssl;
		mysql_engine.tls_done(S.e, 0, ok);
	}
}

/* hoopd and the client agree on whether an answer is in flight, whenever the agent's
 * commands are all taken (but hoopd reads a withheld result to its end after the ERR that
 * ended it for the client). */
static void check_in_step(void)
{
	const struct my *m = S.e;
	int engine_busy = m->resp != MR_NONE && m->resp != MR_SETTINGS;

	if (S.s.closing || S.s.held || S.s.a.in.len || C.phase != MC_READY)
		return;
	if (engine_busy && mf_client_idle(&C) && my_mask_withheld(m))
		return;
	if (engine_busy == mf_client_idle(&C))
		fprintf(stderr, "my fuzz: hoopd %s an answer, the agent %s\n",
			engine_busy ? "waits for the rest of" : "has done with",
			mf_client_idle(&C) ? "has all of it" : "waits for more");
	REQUIRE(engine_busy != mf_client_idle(&C));
}

static void check_out(uint8_t cfg)
{
	relay_follow_up(cfg);
	mf_packets(&S.s.s.out, server_packet, NULL);
	mf_client_read(&C, &S.s.a.out, S.s.closing);
	if (!S.s.closing)
		client_reacts();
}

static void decide_hold(uint8_t d)
{
	int r;

	if (d < 64)
		return; /* still waiting for an approver */
	if (d < 128)
		r = mysql_engine.resume_held(S.s.est, VERDICT_ALLOW, NULL);
	else if (d < 160)
		r = mysql_engine.resume_held(S.s.est, VERDICT_DENY, NULL);
	else if (d < 192)
		r = mysql_engine.fail_held(S.s.est, "57014", "canceling statement due to timeout");
	else
		r = mysql_engine.cancel_held(S.s.est);
	REQUIRE(r == 0 || S.s.closing);
	REQUIRE(!S.s.held);
}

/* How many of the input's next bytes reach hoopd, by one decision: a few bytes, whole packets
 * (0-63: what a recorded answer is), blocks of 64, or all. */
static size_t server_chunk(const struct mf_in *in, uint8_t d)
{
	size_t off = 0;

	switch (d >> 6) {
	case 0:
		return 1 + (d & 63);
	case 1:
		for (unsigned k = 0; k < (d & 63u) && off + 4 <= in->n; k++)
			off += 4 + (size_t)my_le24(in->p + off);
		return off < in->n ? off : in->n;
	case 2:
		return 1 + (size_t)(d & 63) * 64;
	default:
		return SIZE_MAX;
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	mf_init();
	verdict_hook = server_verdict;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mf_in in = {data, size};
	uint8_t cfg = mf_pick(&in);
	int masking = !!(cfg & 1);

	memset(&mf, 0, sizeof(mf));
	memset(&mf_events, 0, sizeof(mf_events));
	g_deprecate_eof = !!(cfg & 2);
	mf.hold_open_result = cfg & 4 ? -EIO : 0;
	/* mostly plain, as in the recorded seeds; TLS prefer and require by decision */
	mf.upstream = cfg & 0x80 ? (cfg & 0x40 ? UPSTREAM_TLS_REQUIRE : UPSTREAM_TLS_PREFER)
				 : UPSTREAM_TLS_DISABLE;
	mf.server_tls_result = cfg & 0x10 ? -1 : 0;
	g_auth_seen = 0;
	g_login_sent = 0;
	mf_masking(masking);
	/* with masking on hoopd reads every column definition and row: they must be whole */
	mf_client_init(&C, 0, masking, masking);
	mf_open(&S, "sserver");
	if (mf_trace)
		fprintf(stderr, "input of %zu bytes, settings 0x%02x\n", size, cfg);

	while (in.n && !S.s.closing) {
		const uint8_t *chunk;
		uint8_t g = mf_pick(&in), d = mf_pick(&in);
		size_t n;

		mf.audit_fail = mf_pick(&in) >= 0xf0;
		if (S.s.held)
			decide_hold(g);
		else if (C.phase == MC_READY && !C.quit)
			agent_sends(g);
		take_agent();
		check_out(cfg);
		check_in_step();
		if (S.s.closing)
			break;
		n = mf_take(&in, server_chunk(&in, d), &chunk);
		if (!n)
			continue; /* this step the server says nothing */
		REQUIRE(buf_append(&S.s.s.in, chunk, n) == 0);
		mysql_engine.server_data(S.e, &S.s.s.in);
		check_out(cfg);
		take_agent(); /* the relay hands on what waited for the answer */
		check_out(cfg);
		check_in_step();
	}
	if (S.s.held && !S.s.closing) {
		decide_hold(128);
		check_out(cfg);
	}
	mf_close(&S);
	mf_client_free(&C);
	mf_records_clear();
	free(mf_events.st);
	mf_events.st = NULL;
	mf_events.capst = 0;
	return 0;
}
