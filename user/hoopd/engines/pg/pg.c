/*
 * The PostgreSQL engine: follows a v3 session in both directions (startup, TLS negotiation,
 * authentication relay, simple and extended query protocol with pipelining, FunctionCall,
 * COPY), reports statements and their results as events, and applies verdicts.
 *
 * Responses are matched to requests with a queue of pending entries, one per forwarded message
 * that the server answers (Query, Parse, Bind, Describe, Execute, Close, Sync, FunctionCall).
 * The queue follows the server's own states (PostgresMain, copyfromparse.c): after an error in
 * an extended-protocol message the server ignores everything up to Sync, so a message sent in
 * that state gets no entry and is not forwarded; during COPY FROM STDIN it consumes CopyData,
 * CopyDone and CopyFail and ignores Sync and Flush, so hoopd forwards nothing else until the
 * agent ends the COPY, and reads nothing more from the agent after a statement that may start
 * one until the server says whether it did. An answer the queue does not expect closes the
 * session: a row is never masked by the plan of a statement it does not belong to.
 *
 * Names (prepared statements, portals, cursors) are kept pending on their queue entry and
 * recorded only when the server acknowledges them (ParseComplete, BindComplete, CloseComplete,
 * the PREPARE, DECLARE CURSOR, DEALLOCATE, CLOSE and DISCARD ALL command tags): the server keeps
 * its old definition when a new one fails, and so does hoopd. A plan that depends on a name
 * (Execute of a portal, EXECUTE, FETCH) is looked up when the server answers that statement,
 * when every earlier message has been answered, so it is the definition the server used.
 *
 * A denied statement is never forwarded. When nothing else is in flight and no transaction is
 * open, hoopd answers it alone (ErrorResponse 42501 + ReadyForQuery 'I'). Otherwise it forwards
 * in its place a "poison" message that fails during parse analysis and has no effect, so that
 * the server itself produces the error at exactly that point of the pipeline, discards until
 * Sync, and reports the true transaction status; hoopd rewrites that error into the denial.
 *
 * The engine is in pieces by job, the way PgBouncer splits client and server: this file has
 * the entry points (pg_engine), the session's state and its queue, and the startup and login
 * of the agent; pg_front.c judges and forwards the agent's messages, pg_back.c matches the
 * server's answers to the queue, pg_rows.c sends results through masking, pg_names.c keeps
 * the names the server has, pg_held.c runs or refuses a Query held for approval. pg_int.h is
 * what they share.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "pg_int.h"
#include "catalog_fetch.h"
#include "daemon.h"
#include "dialect.h"
#include "log.h"
#include "pglex.h"
#include "record.h"
#include "sqlfacts.h"
#include "tls.h"

/* Before login an agent sends a startup packet (PostgreSQL takes 10000 bytes at most) and
 * short authentication answers (a password, SCRAM messages): no message, and no buffer, needs
 * more. (PostgreSQL accepts GSSAPI tokens up to 64 KiB; hoopd refuses those beyond this.) */
#define PG_PRELOGIN_MAX (16 * 1024)

/* Statement text judged in one turn of a session before the others get theirs (s->more):
 * parsing costs the single event loop some 4 us per token. */
#define PG_TURN_TEXT (8 * 1024)

/* ---- state: the requests the server has yet to answer ---- */

int64_t pg_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

struct pend *pg_pend_push(struct pg *p, char kind, int nst)
{
	struct pend *e = calloc(1, sizeof(*e));

	if (!e)
		return NULL;
	e->kind = kind;
	if (nst) {
		e->st = calloc((size_t)nst, sizeof(*e->st));
		if (!e->st) {
			free(e);
			return NULL;
		}
		e->nst = nst;
	}
	if (p->tail)
		p->tail->next = e;
	else
		p->head = e;
	p->tail = e;
	p->npend++;
	return e;
}

static void track_free(struct track *t)
{
	if (t->mr) {
		mask_result_free(t->mr);
		free(t->mr);
	}
	mplan_put(t->plan);
	masking_put(t->mk);
	free(t->rd);
	free(t->text);
	free(t->ns);
}

void pg_pend_pop(struct pg *p)
{
	struct pend *e = p->head;

	if (!e)
		return;
	p->head = e->next;
	if (!p->head)
		p->tail = NULL;
	p->npend--;
	if (p->copy_wait == e)
		p->copy_wait = NULL;
	for (int i = 0; i < e->nst; i++)
		track_free(&e->st[i]);
	free(e->deny);
	free(e->detail);
	free(e->hint);
	free(e->name);
	free(e->stmt);
	free(e->text);
	free(e->params);
	mplan_put(e->plan);
	free(e->st);
	free(e);
}

struct track *pg_cur_track(struct pg *p)
{
	struct pend *e = p->head;

	if (!e || !e->st || e->cur >= e->nst)
		return NULL;
	return &e->st[e->cur];
}

/* Close the session with a FATAL ErrorResponse the agent can read. */
int pg_protocol_violation(struct pg *p, const char *dir, const char *why)
{
	char msg[256];

	snprintf(msg, sizeof(msg), "hoop: %s", why);
	ev_protocol_error(sess_agent(p->s), dir, why);
	hlog_conn(HLOG_WARN, p->s->id, p->s->peer, "protocol error from the %s: %s", dir, why);
	pgw_put_error(&p->s->a.out, "FATAL", "08P01", msg, NULL, NULL);
	p->end_reason = "protocol error";
	sess_close(p->s, msg);
	return -1;
}

int pg_fwd(struct buf *out, const struct pgw_msg *m)
{
	/* The header is whatever precedes the body: 4 bytes (startup form) or 5 (typed, even
	 * when the type byte is 0). */
	return buf_append(out, m->body - (m->total - m->len), m->total);
}

/* ---- startup ---- */

struct cancel_key {
	int32_t pid, key;
};

static int match_backend(struct session *s, void *arg)
{
	const struct cancel_key *k = arg;
	struct pg *p = s->est;

	return s->eng == &pg_engine && p && p->backend_pid == k->pid && p->backend_key == k->key;
}

static int on_cancel(struct pg *p, const struct pgw_msg *m)
{
	struct pgw_rd rd;
	struct cancel_key k;
	struct session *t;

	pgw_rd_init(&rd, m);
	pgw_i32(&rd);
	k.pid = pgw_i32(&rd);
	k.key = pgw_i32(&rd);
	if (!pgw_done(&rd))
		return pg_protocol_violation(p, "agent", "malformed CancelRequest");
	p->phase = PH_CANCEL;
	t = sess_find(match_backend, &k);
	if (t && t->held) {
		/* The statement never reached the server: answer it here. */
		pg_cancel_held(t->est);
		ev_cancel(sess_agent(p->s), "held statement cancelled by hoopd", k.pid);
		sess_close(p->s, "cancel handled");
		return 0;
	}
	/* This connection was dialled to the same server: pass the request on as it is. */
	ev_cancel(sess_agent(p->s), t ? "forwarded to the server" : "forwarded (no matching session)", k.pid);
	if (t)
		hlog_conn(HLOG_INFO, p->s->id, p->s->peer, "cancel request for session %s", t->id);
	p->end_reason = "cancel request";
	return pg_fwd(&p->s->s.out, m);
}

/*
 * The startup parameters an agent may give. Every other one is refused (docs/postgres.md):
 * `options` (-c role=..., -c search_path=..., any GUC and backend switch), `role`,
 * `session_authorization`, `search_path`, `replication`, standard_conforming_strings and the
 * like would change who the session is, how its text is read or what it resolves to, with no
 * rule applied; the same settings made with SET after login are judged as statements. The
 * server matches "user", "database", "options" and "replication" exactly and settings in any
 * case, so these are compared the same way.
 */
static const char *startup_refusal(const char *k, const char *v)
{
	static const char *const settings[] = {"application_name", "client_encoding", "datestyle",
					       "timezone", "extra_float_digits", "intervalstyle",
					       NULL};

	if (!strcmp(k, "user") || !strcmp(k, "database"))
		return NULL;
	for (int i = 0; settings[i]; i++)
		if (!strcasecmp(k, settings[i])) {
			if (i == 1 && !sqlfacts_encoding_safe(v))
				return "client encoding whose multibyte characters can hold a quote or "
				       "backslash (hoop and the server would read statements differently)";
			return NULL;
		}
	return "not on hoop's list of startup parameters (set it with SET after connecting, "
	       "where the policy judges it)";
}

static char *startup_params(struct pg *p, const struct pgw_msg *m, char *refused, size_t rlen)
{
	struct pgw_rd rd;
	struct jbuf j;
	char *out;

	pgw_rd_init(&rd, m);
	pgw_i32(&rd);
	jb_init(&j);
	jb_obj_open(&j);
	for (;;) {
		const char *k = pgw_str(&rd, NULL), *v;

		if (!k || !*k)
			break;
		v = pgw_str(&rd, NULL);
		if (!v)
			break;
		jb_kv_str(&j, k, v);
		if (!refused[0]) {
			const char *why = startup_refusal(k, v);
			char name[65];
			size_t n = 0;

			/* the name goes to the agent, the log and the trail: printable only */
			for (; why && k[n] && n < sizeof(name) - 1; n++)
				name[n] = k[n] >= 0x20 && k[n] < 0x7f ? k[n] : '?';
			name[n] = '\0';
			if (why)
				snprintf(refused, rlen, "startup parameter \"%s\" is refused: %s", name,
					 why);
		}
		if (!strcmp(k, "user"))
			snprintf(p->user, sizeof(p->user), "%s", v);
		else if (!strcmp(k, "database"))
			snprintf(p->database, sizeof(p->database), "%s", v);
		else if (!strcmp(k, "application_name"))
			snprintf(p->app, sizeof(p->app), "%s", v);
	}
	jb_obj_close(&j);
	if (rd.bad || !pgw_done(&rd)) {
		jb_free(&j);
		return NULL;
	}
	out = strdup(jb_str(&j));
	jb_free(&j);
	if (!p->database[0])
		snprintf(p->database, sizeof(p->database), "%s", p->user);
	return out;
}

static int send_startup_upstream(struct pg *p)
{
	p->phase = PH_AUTH;
	return buf_append(&p->s->s.out, p->startup, p->startup_len);
}

/*
 * The agent's SCRAM client-first. Its gs2 flag `y` says "I support channel binding but the
 * server did not offer it": over the TLS database leg the server did offer -PLUS (hoopd hides
 * it), so it would fail the login as a downgrade. hoopd once redialled without TLS to let it
 * pass; that let any agent turn the database leg to plaintext on demand. Nothing the agent sends
 * may weaken the database leg, so `y` over a TLS leg is refused, whatever upstream_tls says.
 */
static int on_sasl_initial(struct pg *p, const struct pgw_msg *m)
{
	struct session *s = p->s;
	struct pgw_rd rd;
	const char *mech;
	int32_t len;
	const uint8_t *data;

	p->sasl_client_first = 1;
	pgw_rd_init(&rd, m);
	mech = pgw_str(&rd, NULL);
	len = pgw_i32(&rd);
	data = len > 0 ? pgw_bytes(&rd, (size_t)len) : NULL;
	if (!mech || !data || data[0] != 'y' || !s->s.ssl)
		return pg_fwd(&s->s.out, m);
	pgw_put_error(&s->a.out, "FATAL", "08001",
		      "hoop: SCRAM channel binding cannot pass through hoopd while the database "
		      "connection is TLS, and hoopd never drops that TLS for a client",
		      NULL,
		      "Set channel_binding=disable on the agent, or sslmode=disable on its leg to "
		      "hoopd (hoopd still speaks TLS to the database).");
	p->end_reason = "SCRAM channel binding refused";
	sess_close(s, "SCRAM channel binding with TLS on the database leg");
	return -1;
}

static int agent_startup(struct pg *p, const struct pgw_msg *m, struct buf *in)
{
	struct session *s = p->s;
	struct pgw_rd rd;
	int32_t code;
	char refused[256] = "";

	pgw_rd_init(&rd, m);
	code = pgw_i32(&rd);
	if (code == PG_SSLREQUEST || code == PG_GSSENCREQUEST) {
		char answer = 'N';

		if (code == PG_SSLREQUEST && tls_agent_enabled() && !p->agent_tls_requested)
			answer = 'S';
		/* CVE-2021-3935: nothing may follow an SSLRequest before the handshake. */
		if (answer == 'S' && in->len != m->total)
			return pg_protocol_violation(p, "agent", "data after SSLRequest");
		buf_consume(in, m->total);
		if (answer == 'S') {
			/* One byte on an empty socket: send it now, before TLS takes the fd. */
			if (send(s->a.fd, "S", 1, MSG_NOSIGNAL) != 1 || sess_tls_agent(s))
				return pg_protocol_violation(p, "agent", "cannot start TLS");
			p->agent_tls_requested = 1;
			return 1;
		}
		return buf_append(&s->a.out, &answer, 1) ? -1 : 1;
	}
	if (code == PG_CANCELREQUEST) {
		int r = on_cancel(p, m);

		buf_consume(in, m->total);
		return r < 0 ? -1 : 1;
	}
	if (code != PG_PROTOCOL_3 && (code >> 16) != 3) {
		char why[96];

		snprintf(why, sizeof(why), "unsupported frontend protocol %d.%d", code >> 16,
			 code & 0xffff);
		return pg_protocol_violation(p, "agent", why);
	}
	p->params_json = startup_params(p, m, refused, sizeof(refused));
	if (!p->params_json)
		return pg_protocol_violation(p, "agent", "malformed startup packet");
	{
		struct ev_session_start e = {.application_name = p->app,
					     .params_json = p->params_json,
					     .agent_tls = s->a.ssl != NULL,
					     .server_tls = tls_upstream_mode(s) != UPSTREAM_TLS_DISABLE};

		sess_set_login(s, p->user, p->database);
		sess_record_start(s, &e); /* the relay writes session_start, and session_end */
	}
	if (refused[0]) {
		/* Before anything reaches the database: the session never starts. */
		char msg[384];
		struct ev_error ee = {.severity = "FATAL", .sqlstate = "08004", .message = msg,
				      .from_hoopd = 1};

		snprintf(msg, sizeof(msg), "hoop: %s", refused);
		ev_error(sess_agent(s), &ee);
		hlog_conn(HLOG_INFO, s->id, s->peer, "%s", msg);
		pgw_put_error(&s->a.out, "FATAL", "08004", msg, NULL, NULL);
		buf_consume(in, m->total);
		p->end_reason = "startup parameter refused";
		sess_close(s, msg);
		return -1;
	}
	p->startup = malloc(m->total);
	if (!p->startup)
		return -1;
	memcpy(p->startup, m->body - 4, m->total);
	p->startup_len = m->total;
	buf_consume(in, m->total);
	if (tls_upstream_mode(s) != UPSTREAM_TLS_DISABLE) {
		static const uint8_t sslreq[8] = {0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f};

		p->phase = PH_SERVER_TLS;
		return buf_append(&s->s.out, sslreq, sizeof(sslreq)) ? -1 : 1;
	}
	return send_startup_upstream(p) ? -1 : 1;
}

/* ---- engine entry points ---- */

static void *pg_open(struct session *s)
{
	struct pg *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->s = s;
	p->phase = PH_STARTUP;
	p->tx = 'I';
	gate_init(&p->g, s, &pg_gate_ops, p);
	p->g.dialect = &dialect_pg;
	p->g.ds = &p->lex; /* followed from the server's ParameterStatus */
	return p;
}

/* What the session_end record (the relay's) has from the engine: its statements, and why it
 * ended when the engine knows better than the relay's close. */
static void pg_end_info(void *st, struct ev_session_end *e)
{
	struct pg *p = st;

	if (p->end_reason)
		e->reason = p->end_reason;
	e->statements = p->g.seq;
}

static void pg_close(void *st, const char *why)
{
	struct pg *p = st;
	struct session *s = p->s;

	if (p->held && hold_ops)
		hold_ops->forget(s, "session ended");
	while (p->head)
		pg_pend_pop(p);
	while (p->preps) {
		struct named *n = p->preps;

		p->preps = n->next;
		pg_named_free(n);
	}
	while (p->portals) {
		struct named *n = p->portals;

		p->portals = n->next;
		pg_named_free(n);
	}
	pg_named_prune(&p->described, NULL);
	catbox_put(p->cat);
	pg_big_free(p->big);
	gate_free(&p->g);
	free(p->params_json);
	free(p->startup);
	free(p->held);
	free(p);
}

/* Masking needs the database's catalog before the first statement: 0 when it is there (or
 * could not be read: masking then fails closed), 1 while it loads (the session is held). */
static int pg_catalog_ready(struct pg *p)
{
	struct catbox *b;

	if (catalog_for(p->s, p->user, p->database, &b) == 1) {
		sess_hold(p->s);
		return 1;
	}
	catbox_put(p->cat);
	p->cat = b;
	p->g.cat = pg_cat(p);
	return 0;
}

/*
 * A statement in flight may change standard_conforming_strings (a SET, set_config, a trigger
 * or function running either), and the server reports the new value only before its next
 * ReadyForQuery. A text that reads differently under the two values (dialect.h) waits for the
 * server to settle when it will without more input (the last message sent is a Query or a
 * Sync); in the middle of an extended-protocol batch it cannot, and is judged unsure: refused
 * as a parse error (the dialect's split). 0: judge it now; 1: wait.
 */
static int settle_lexing(struct pg *p, const struct pgw_msg *m)
{
	const char *sql = (const char *)m->body;
	size_t n = m->len;

	p->lex.unsure = 0;
	if (!p->npend)
		return 0;
	if (m->type == 'P') {
		size_t k = strnlen(sql, n);

		if (k >= n)
			return 0; /* malformed: on_parse says so */
		sql += k + 1;
		n -= k + 1;
	}
	n = strnlen(sql, n);
	if (!dialect_pg.depends_on_settings(sql, n))
		return 0;
	if (p->tail && (p->tail->kind == 'Q' || p->tail->kind == 'S'))
		return 1;
	p->lex.unsure = 1;
	return 0;
}

static int agent_data(void *st, struct buf *in)
{
	struct pg *p = st;
	size_t judged = 0; /* statement text this turn */

	while (in->len && !p->s->closing && !p->s->held) {
		struct pgw_msg m;
		const char *why = NULL;
		int r;

		if (p->phase == PH_SERVER_TLS || (p->phase == PH_STARTUP && p->startup))
			return 0; /* wait: the startup message is held while TLS is negotiated */
		if (p->phase == PH_CANCEL) {
			buf_consume(in, in->len);
			return 0;
		}
		if (p->big) {
			if (pg_big_take(p, in))
				return -1;
			continue;
		}
		if (p->phase == PH_STARTUP && buf_head(in)[0] == 0x16)
			return pg_protocol_violation(p, "agent",
						     "TLS record where a startup message belongs");
		/* A message no state takes is refused by its header, before its body is
		 * buffered (it may say it is 64 MiB). */
		if (p->phase == PH_READY && !strchr("QPBDECSHdcfFX", buf_head(in)[0])) {
			char why[64];

			snprintf(why, sizeof(why), "unexpected message type 0x%02x",
				 buf_head(in)[0]);
			return pg_protocol_violation(p, "agent", why);
		}
		if (p->phase == PH_READY && in->len >= 5 &&
		    (buf_head(in)[0] == 'Q' || buf_head(in)[0] == 'P')) {
			uint32_t len = pgw_be32(buf_head(in) + 1);

			if (len >= 5 && len <= hoopd.o.max_message &&
			    len - 4 > (size_t)pg_limits()->statement_bytes + PG_BIG_SLACK) {
				if (pg_big_start(p, in, len))
					return -1;
				continue;
			}
		}
		r = pgw_frame(buf_head(in), in->len, p->phase == PH_STARTUP,
			      p->phase == PH_READY ? (uint32_t)hoopd.o.max_message : PG_PRELOGIN_MAX,
			      &m, &why);
		if (r == PGW_MORE)
			return 0;
		if (r == PGW_BAD)
			return pg_protocol_violation(p, "agent", why);
		if (p->phase == PH_STARTUP) {
			r = agent_startup(p, &m, in);
			if (r < 0)
				return -1;
			continue; /* agent_startup consumed what it used */
		}
		if (p->phase == PH_READY && p->copy_wait && !p->copy_in)
			return 0; /* until the server says whether a COPY FROM STDIN started */
		if (p->phase == PH_AUTH && m.type != 'p' && m.type != 'X') {
			/* Only authentication answers belong before the server is ready; anything
			 * else (a pipelined Query) waits, to be judged once it is. */
			return 0;
		}
		if (p->phase == PH_AUTH && m.type == 'p' && p->sasl && !p->sasl_client_first)
			r = on_sasl_initial(p, &m);
		else if (p->phase == PH_AUTH)
			r = pg_fwd(&p->s->s.out, &m); /* passwords and SASL: relayed, never kept */
		else if ((m.type == 'Q' || m.type == 'P') && masking_enabled() &&
			 (r = pg_catalog_ready(p)) != 0)
			return r < 0 ? -1 : 0; /* waiting for the catalog: resumed when it is read */
		else if ((m.type == 'Q' || m.type == 'P') && settle_lexing(p, &m))
			return 0; /* resumed when the server has answered what is in flight */
		else
			r = pg_agent_ready(p, &m);
		if (r < 0)
			return -1;
		if (p->s->held && p->held) {
			buf_consume(in, m.total);
			return 0;
		}
		buf_consume(in, m.total);
		if (m.type == 'Q' || m.type == 'P')
			judged += m.len;
		if (judged >= PG_TURN_TEXT && in->len && p->phase == PH_READY) {
			p->s->more = 1; /* the rest after the other sessions' turn */
			return 0;
		}
	}
	return 0;
}

static int server_data(void *st, struct buf *in)
{
	struct pg *p = st;
	struct session *s = p->s;

	while (in->len && !s->closing) {
		struct pgw_msg m;
		const char *why = NULL;
		int r;

		if (p->phase == PH_SERVER_TLS) {
			uint8_t c = buf_head(in)[0];

			buf_consume(in, 1);
			if (c == 'S') {
				if (in->len) /* CVE-2021-23222: nothing may precede the handshake */
					return pg_protocol_violation(p, "database",
								     "data after the TLS answer");
				if (sess_tls_server(s, tls_upstream_ctx(s), tls_upstream_sni(s)))
					return pg_protocol_violation(p, "database",
								     "cannot start TLS");
				return 0;
			}
			if (c == 'N' && tls_upstream_mode(s) == UPSTREAM_TLS_PREFER)
				return send_startup_upstream(p);
			pgw_put_error(&s->a.out, "FATAL", "08001",
				      c == 'N' ? "hoop: the database refused TLS, which the policy "
						 "requires for this target"
					       : "hoop: the database answered the TLS request wrongly",
				      NULL, NULL);
			p->end_reason = "upstream TLS refused";
			sess_close(s, "upstream TLS refused");
			return -1;
		}
		r = pgw_frame(buf_head(in), in->len, 0, (uint32_t)hoopd.o.max_message, &m, &why);
		if (r == PGW_MORE)
			return 0;
		if (r == PGW_BAD)
			return pg_protocol_violation(p, "database", why);
		if (p->phase == PH_READY)
			r = pg_server_ready(p, &m);
		else if (p->phase == PH_AUTH)
			r = pg_server_auth(p, &m);
		else
			r = pg_fwd(&s->a.out, &m);
		if (r < 0)
			return -1;
		buf_consume(in, m.total);
	}
	return 0;
}

/*
 * Every parse of this session's text (split, facts, plans, names, grants) reads it as the
 * server does: libpg_query's lexer settings are set from the session's for the duration of
 * each entry point and restored after (pglex.h). dialect.h's calls take them explicitly.
 */
static int pg_agent_data(void *st, struct buf *in)
{
	struct pg *p = st;
	struct pglex_saved sv;
	int r;

	pglex_set(p->lex.pg_escape_strings, &sv);
	r = agent_data(st, in);
	pglex_restore(&sv);
	return r;
}

static int pg_server_data(void *st, struct buf *in)
{
	struct pg *p = st;
	struct pglex_saved sv;
	int r;

	pglex_set(p->lex.pg_escape_strings, &sv);
	r = server_data(st, in);
	pglex_restore(&sv);
	return r;
}

/* PostgreSQL 17's sslnegotiation=direct: TLS from the first byte, ALPN "postgresql". */
static int pg_direct_tls(void *st)
{
	struct pg *p = st;

	if (!tls_agent_enabled() || p->phase != PH_STARTUP)
		return -1;
	p->agent_tls_requested = 1; /* an SSLRequest inside the TLS is answered N */
	return 0;
}

static void pg_tls_done(void *st, int agent_side, int ok)
{
	struct pg *p = st;

	if (!agent_side && ok && p->phase == PH_SERVER_TLS) {
		if (send_startup_upstream(p))
			sess_close(p->s, "out of memory");
	} else if (!ok) {
		pgw_put_error(&p->s->a.out, "FATAL", "08001",
			      "hoop: TLS handshake with the database failed", NULL, NULL);
		p->end_reason = "upstream TLS handshake failed";
		sess_close(p->s, "upstream TLS handshake failed");
	}
}

static void pg_status(void *st, struct jbuf *j)
{
	struct pg *p = st;
	char tx[2] = {(char)p->tx, 0};

	jb_kv_str(j, "db_user", p->user);
	jb_kv_str(j, "database", p->database);
	jb_kv_str(j, "application_name", p->app);
	jb_kv_str(j, "transaction", tx);
	jb_kv_uint(j, "statements", p->g.seq);
	jb_kv_int(j, "pending_responses", p->npend);
}

/* What the relay may buffer from the agent: before login, what authentication needs. */
static size_t pg_agent_cap(void *st)
{
	struct pg *p = st;

	return p->phase == PH_READY ? 0 : PG_PRELOGIN_MAX + 5;
}

/* Does in begin with an unfinished message? (Its peer hung up: it never will be finished.) */
static int pg_partial(void *st, const struct buf *in, int agent_side)
{
	struct pg *p = st;
	struct pgw_msg m;
	const char *why;

	if (!in->len)
		return 0;
	if (agent_side) {
		if (p->phase == PH_CANCEL)
			return 0;
		if (p->phase == PH_STARTUP && !p->startup)
			return pgw_frame(buf_head(in), in->len, 1, UINT32_MAX, &m, &why) ==
			       PGW_MORE;
	} else if (p->phase == PH_SERVER_TLS) {
		return 0;
	}
	return pgw_frame(buf_head(in), in->len, 0, UINT32_MAX, &m, &why) == PGW_MORE;
}

/* A PostgreSQL client reads an ErrorResponse even in answer to its SSLRequest, as from a server
 * that cannot start a backend. */
static int pg_refuse_conn(struct buf *out, const char *sqlstate, const char *message)
{
	return pgw_put_error(out, "FATAL", sqlstate, message, NULL, NULL);
}

const struct engine_ops pg_engine = {
	.name = "postgres",
	.open = pg_open,
	.close = pg_close,
	.login = 1,
	.end_info = pg_end_info,
	.agent_data = pg_agent_data,
	.server_data = pg_server_data,
	.tls_done = pg_tls_done,
	.direct_tls = pg_direct_tls,
	.status = pg_status,
	.agent_cap = pg_agent_cap,
	.partial = pg_partial,
	.refuse_conn = pg_refuse_conn,
	.resume_held = pg_resume_held,
	.fail_held = pg_fail_held,
	.cancel_held = pg_cancel_held,
	.held_runs = pg_held_runs,
};
