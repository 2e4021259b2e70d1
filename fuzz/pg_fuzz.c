/*
 * The harness both PostgreSQL engine fuzz targets share (see pg_fuzz.h): relay stubs, session
 * fixture, output checks, audit trail stub, test verdict, input reader.
 */
#include "pg_fuzz.h"
#include "catalog_fetch.h"

#include <ctype.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "audit_store.h"
#include "catalog_fetch.h"
#include "record.h"
#include "daemon.h"
#include "json.h"
#include "log.h"

struct hoopd hoopd;
struct fz_stubs fz;
struct fz_events fz_events;

static int g_fake_ssl_obj;
SSL *const fz_fake_ssl = (SSL *)&g_fake_ssl_obj;

void fz_fail(const char *file, int line, const char *what)
{
	fprintf(stderr, "pg fuzz: %s:%d: %s does not hold\n", file, line, what);
	abort();
}

/* ---- the input ---- */

uint8_t fz_pick(struct fz_in *in)
{
	if (!in->n)
		return 0;
	in->n--;
	return in->p[in->n];
}

size_t fz_chunk(struct fz_in *in)
{
	uint8_t d = fz_pick(in);

	switch (d >> 6) {
	case 0:
		return 1 + (d & 7);
	case 1:
		return 1 + (d & 63);
	case 2:
		return 1 + (size_t)(d & 63) * 64;
	default:
		return SIZE_MAX;
	}
}

size_t fz_take(struct fz_in *in, size_t max, const uint8_t **out)
{
	size_t n = max < in->n ? max : in->n;

	*out = in->p;
	in->p += n;
	in->n -= n;
	return n;
}

/* ---- the relay, reduced to what the engine calls ---- */

#define FZ_MAX_SESSIONS 4
static struct fz_sess *g_sessions[FZ_MAX_SESSIONS];

void sess_close(struct session *s, const char *why)
{
	if (!s->closing) {
		s->closing = 1;
		snprintf(s->close_why, sizeof(s->close_why), "%s", why);
	}
}

int sess_tls_agent(struct session *s)
{
	if (fz.agent_tls_result == 0)
		fz.agent_tls_started++;
	return fz.agent_tls_result;
}

int sess_tls_server(struct session *s, SSL_CTX *ctx, const char *sni)
{
	if (fz.server_tls_result == 0)
		fz.server_tls_started++;
	return fz.server_tls_result;
}

/* Like the relay: the old connection goes, with what was queued for it and read from it. */
int sess_reconnect_server(struct session *s)
{
	if (fz.reconnect_result)
		return fz.reconnect_result;
	fz.reconnects++;
	s->s.ssl = NULL;
	buf_consume(&s->s.in, s->s.in.len);
	buf_consume(&s->s.out, s->s.out.len);
	for (int i = 0; i < FZ_MAX_SESSIONS; i++)
		if (g_sessions[i] && &g_sessions[i]->s == s)
			g_sessions[i]->untyped_out = 1;
	return 0;
}

/* As the relay: the login is the session's, and the relay writes session_start. */
void sess_set_login(struct session *s, const char *user, const char *database)
{
	snprintf(s->user, sizeof(s->user), "%s", user);
	snprintf(s->database, sizeof(s->database), "%s", database);
}
void sess_record_start(struct session *s, const struct ev_session_start *e)
{
	s->recorded = 1;
	ev_session_start(sess_agent(s), e);
}
void sess_hold(struct session *s)
{
	REQUIRE(!s->held);
	s->held = 1;
}

void sess_resume(struct session *s)
{
	s->held = 0;
}

/* No catalog: masking (off in these targets' policy) would work from the text alone. */
int catalog_for(struct session *s, const char *db_user, const char *database,
		struct catbox **out)
{
	*out = NULL;
	return 0;
}
void catbox_put(struct catbox *b)
{
}
void catalog_stale(struct session *s, const char *database)
{
}

struct session *sess_find(int (*pred)(struct session *s, void *arg), void *arg)
{
	for (int i = 0; i < FZ_MAX_SESSIONS; i++)
		if (g_sessions[i] && pred(&g_sessions[i]->s, arg))
			return &g_sessions[i]->s;
	return NULL;
}

int64_t now_ms(void)
{
	return (int64_t)time(NULL) * 1000;
}

int tls_agent_enabled(void)
{
	return fz.agent_tls;
}

enum upstream_tls tls_upstream_mode(const struct session *s)
{
	return fz.upstream;
}

SSL_CTX *tls_upstream_ctx(const struct session *s)
{
	return NULL;
}

const char *tls_upstream_sni(const struct session *s)
{
	return NULL;
}

/* ---- sessions ---- */

void fz_open(struct fz_sess *f, const char *id)
{
	int i;

	memset(f, 0, sizeof(*f));
	snprintf(f->s.id, sizeof(f->s.id), "%s", id);
	snprintf(f->s.peer, sizeof(f->s.peer), "127.0.0.1:40000");
	snprintf(f->s.dst, sizeof(f->s.dst), "127.0.0.1:5432");
	f->s.a.fd = f->s.s.fd = -1;
	f->s.eng = &pg_engine;
	f->e = pg_engine.open(&f->s);
	REQUIRE(f->e != NULL);
	f->s.est = f->e;
	f->untyped_out = 1;
	for (i = 0; i < FZ_MAX_SESSIONS && g_sessions[i]; i++)
		;
	REQUIRE(i < FZ_MAX_SESSIONS);
	g_sessions[i] = f;
}

static void check_json(const char *text, size_t n, struct json_object **out);

void fz_close(struct fz_sess *f)
{
	struct jbuf j;

	for (int i = 0; i < FZ_MAX_SESSIONS; i++)
		if (g_sessions[i] == f)
			g_sessions[i] = NULL;
	/* What `hoopctl status` would show about it is valid JSON too. */
	jb_init(&j);
	jb_obj_open(&j);
	pg_engine.status(f->e, &j);
	jb_obj_close(&j);
	REQUIRE(!j.oom);
	check_json(j.s, j.len, NULL);
	jb_free(&j);
	{
		/* As the relay ends a session: the engine's part of session_end, close, record. */
		struct ev_session_end e = {.reason = "fuzz input done"};

		if (f->s.recorded)
			pg_engine.end_info(f->e, &e);
		pg_engine.close(f->e, "fuzz input done");
		if (f->s.recorded)
			ev_session_end(sess_agent(&f->s), &e);
	}
	f->e = NULL;
	buf_free(&f->s.a.in);
	buf_free(&f->s.a.out);
	buf_free(&f->s.s.in);
	buf_free(&f->s.s.out);
}

/* ---- what the engine writes ---- */

static int ends_with(const char *s, size_t n, const char *suffix)
{
	size_t k = strlen(suffix);

	return n >= k && !memcmp(s + n - k, suffix, k);
}

/* AuthenticationSASL as hoopd rewrites it: a NUL-terminated list, empty-string terminated,
 * without the channel-binding mechanisms it cannot honour (NAME-PLUS; a bare "-PLUS" names
 * none). */
static void check_sasl_offer(const struct pgw_msg *m)
{
	struct pgw_rd r;

	pgw_rd_init(&r, m);
	pgw_i32(&r);
	for (;;) {
		size_t l;
		const char *mech = pgw_str(&r, &l);

		REQUIRE(mech != NULL);
		if (!l)
			break;
		REQUIRE(l == 5 || !ends_with(mech, l, "-PLUS"));
	}
	REQUIRE(pgw_done(&r));
}

static void check_error_fields(const struct pgw_msg *m)
{
	struct pgw_err_fields e;

	REQUIRE(pgw_error_fields(m, &e) == 0);
	REQUIRE(e.severity && e.sqlstate && e.message);
	REQUIRE(strlen(e.sqlstate) == 5);
}

int fz_check_agent_out(struct fz_sess *f, int *answers, int trusted)
{
	struct buf *b = &f->s.a.out;
	int n = 0;

	while (b->len) {
		struct pgw_msg m;
		const char *why = NULL;
		int r;

		if (buf_head(b)[0] == 'N' && answers && *answers > 0) {
			(*answers)--;
			buf_consume(b, 1);
			continue;
		}
		r = pgw_frame(buf_head(b), b->len, 0, (uint32_t)hoopd.o.max_message, &m, &why);
		if (r != PGW_OK)
			fprintf(stderr, "pg fuzz: to the agent: %s at 0x%02x, %zu bytes left\n",
				r == PGW_MORE ? "partial message" : why, buf_head(b)[0], b->len);
		REQUIRE(r == PGW_OK);
		if (m.type == 'R' && m.len >= 4 && pgw_be32(m.body) == 10 && !f->agent_ready)
			check_sasl_offer(&m);
		if (m.type == 'Z')
			f->agent_ready = 1;
		if (trusted) {
			if (m.type == 'E' || m.type == 'N')
				check_error_fields(&m);
			if (m.type == 'Z')
				REQUIRE(m.len == 1 &&
					(m.body[0] == 'I' || m.body[0] == 'T' || m.body[0] == 'E'));
		}
		buf_consume(b, m.total);
		n++;
	}
	return n;
}

int fz_check_server_out(struct fz_sess *f, void (*fn)(void *arg, const struct pgw_msg *m),
			void *arg)
{
	struct buf *b = &f->s.s.out;
	int n = 0;

	while (b->len) {
		struct pgw_msg m;
		const char *why = NULL;
		int r = pgw_frame(buf_head(b), b->len, f->untyped_out, (uint32_t)hoopd.o.max_message,
				  &m, &why);

		if (r != PGW_OK)
			fprintf(stderr, "pg fuzz: to the database: %s, %zu bytes left\n",
				r == PGW_MORE ? "partial message" : why, b->len);
		REQUIRE(r == PGW_OK);
		/* After the startup packet (or a CancelRequest) the typed form begins; an
		 * SSLRequest is followed by another untyped packet. */
		if (f->untyped_out)
			f->untyped_out = m.len >= 4 && pgw_be32(m.body) == PG_SSLREQUEST;
		if (fn)
			fn(arg, &m);
		buf_consume(b, m.total);
		n++;
	}
	return n;
}

void fz_steer_type0(struct buf *b)
{
	uint8_t *p = buf_head(b);
	size_t pos = 0;

	while (pos < b->len) {
		uint32_t len;

		if (p[pos] == 0)
			p[pos] = 1;
		if (pos + 5 > b->len)
			break;
		len = pgw_be32(p + pos + 1);
		if (len < 4)
			break;
		pos += (size_t)len + 1;
	}
}

/* ---- the agent's socket ---- */

static int g_sock[2] = {-1, -1};

int fz_agent_socket_fd(void)
{
	return g_sock[0];
}

size_t fz_agent_socket_drain(void)
{
	char c[64];
	size_t total = 0;
	ssize_t r;

	while ((r = recv(g_sock[1], c, sizeof(c), MSG_DONTWAIT)) > 0) {
		for (ssize_t i = 0; i < r; i++)
			REQUIRE(c[i] == 'S');
		total += (size_t)r;
	}
	REQUIRE(r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
	return total;
}

/* ---- approvals: a request opens (or not) and is forgotten ---- */

static int hold_open(struct session *s, const char *rule, const char *message, const char *text,
		     size_t len, const char *split, char *id, size_t idn)
{
	REQUIRE(s->eng == &pg_engine && !s->held);
	if (fz.hold_open_result)
		return fz.hold_open_result;
	snprintf(id, idn, "a%u", (unsigned)len);
	return 0;
}

static void hold_forget(struct session *s, const char *why)
{
	fz.holds_forgotten++;
}

static const struct hold_ops fz_hold_ops = {.open = hold_open, .forget = hold_forget};

/* ---- the audit trail, reduced to a check of every record ---- */

static struct json_tokener *g_tok;

static void check_json(const char *text, size_t n, struct json_object **out)
{
	struct json_object *o;

	json_tokener_reset(g_tok);
	o = json_tokener_parse_ex(g_tok, text, (int)n);
	if (!o || json_tokener_get_parse_end(g_tok) != n)
		fprintf(stderr, "pg fuzz: not JSON: %.*s\n", (int)n, text);
	REQUIRE(o != NULL && json_tokener_get_parse_end(g_tok) == n);
	if (out)
		*out = o;
	else
		json_object_put(o);
}

static const char *str_member(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

int audit_open(const char *state_dir, const struct audit_cfg *cfg)
{
	return 0;
}

void audit_close(void)
{
}

uint32_t audit_segment(void)
{
	return 1;
}

void audit_mark_critical(void)
{
}

int audit_append(const char *obj, size_t len)
{
	struct json_object *o;
	const char *kind, *dir;

	check_json(obj, len, &o);
	REQUIRE(json_object_is_type(o, json_type_object));
	kind = str_member(o, "kind");
	REQUIRE(kind != NULL);
	REQUIRE(str_member(o, "session") != NULL);
	if (!strcmp(kind, "protocol_error")) {
		dir = str_member(o, "direction");
		REQUIRE(dir != NULL);
		if (!strcmp(dir, "agent"))
			fz_events.protocol_error_agent++;
		else if (!strcmp(dir, "database"))
			fz_events.protocol_error_database++;
		else
			REQUIRE(!"a protocol_error has a direction");
	}
	json_object_put(o);
	fz_events.records++;
	if (fz.audit_fail) {
		fz_events.failed++;
		return -ENOSPC;
	}
	return 0;
}

/* ---- the verdict ---- */

enum verdict fz_verdict_of(const char *text, size_t len)
{
	unsigned c = len ? (unsigned char)text[len - 1] : 0;

	return c % 7 == 0 ? VERDICT_DENY : c % 7 == 1 ? VERDICT_HOLD : VERDICT_ALLOW;
}

/* "EXECUTE name" (any case, bare name): the text its PREPARE recorded, or NULL. */
static const char *executed(const struct judgement *j)
{
	char name[64];
	size_t i = 0, k = 0;
	int esc = -1;

	while (i < j->len && (j->text[i] == ' ' || j->text[i] == '\n'))
		i++;
	if (!j->prepared || j->len - i < 9 || strncasecmp(j->text + i, "execute ", 8))
		return NULL;
	for (i += 8; i < j->len && j->text[i] != '(' && j->text[i] != ' ' && k + 1 < sizeof(name);)
		name[k++] = (char)tolower((unsigned char)j->text[i++]);
	name[k] = '\0';
	return j->prepared(j->prepared_ctx, name, &esc);
}

enum verdict fz_verdict(struct judgement *j)
{
	enum verdict v = fz_verdict_of(j->text, j->len);
	const char *prepared = executed(j);

	if (prepared) {
		enum verdict pv = fz_verdict_of(prepared, strlen(prepared));

		if (pv == VERDICT_DENY || (pv == VERDICT_HOLD && v == VERDICT_ALLOW))
			v = pv;
	}

	if (v == VERDICT_DENY && (j->len & 1)) {
		snprintf(j->rule, sizeof(j->rule), "%.*s", (int)j->len, j->text);
		snprintf(j->message, sizeof(j->message), "denied: %.*s", (int)j->len, j->text);
	}
	return v;
}

/* ---- setup ---- */

void fz_init(void)
{
	hoopd.o.max_message = 1 << 20;
	/* Warnings for every protocol error the fuzzer provokes would drown libFuzzer's output. */
	hlog_setup("hoop-fuzz", 0, HLOG_ERROR);
	verdict_hook = fz_verdict;
	hold_ops = &fz_hold_ops;
	g_tok = json_tokener_new();
	REQUIRE(g_tok != NULL);
	json_tokener_set_flags(g_tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, g_sock) == 0);
}
