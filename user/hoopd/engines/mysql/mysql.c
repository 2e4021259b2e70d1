/*
 * The MySQL/MariaDB engine (issue 17, docs/mysql.md): follows a classic-protocol session in
 * both directions, judges every statement through the statement gate (gate.h) before it is
 * forwarded, answers refusals with ERR packets the client reads as the server's, and records
 * each statement's outcome.
 *
 * The session, as hoopd sees it:
 * - greeting: the server's Handshake v10 goes to the agent with the capabilities hoopd does not
 *   follow cleared (mywire.h MY_CAPS_ALLOWED; MariaDB's extended ones zeroed). The server's
 *   version string says how executable comments read (mysqllex.h).
 * - login: the agent's HandshakeResponse41 goes to the server with the same capabilities
 *   cleared; then authentication packets are relayed as they are (passwords and scrambles are
 *   never kept), and an agent packet is relayed only when the server has asked for one (an
 *   auth switch or "more data" other than fast-auth success): a command pipelined behind the
 *   login waits to be judged.
 * - settings: before the agent gets the server's OK, hoopd asks the server itself for
 *   @@sql_mode and @@character_set_client on the same connection (the lexer reads text under
 *   them), and again after every statement that may change them (SET, CALL, EXECUTE, a text
 *   it could not read, COM_RESET_CONNECTION). The server is the authority, never the text.
 * - commands: one at a time. Each command byte has a decision (agent_command); hoopd reads the
 *   agent's next command only when the server has answered the last, so answers are matched
 *   to requests by construction. COM_QUERY texts are cut into statements (mysql_split) and
 *   each is judged; any denial refuses the whole packet (none of it runs). Prepared statements
 *   (COM_STMT_PREPARE) are judged by their text, kept only once the server answered OK, and
 *   every COM_STMT_EXECUTE is judged again by what it runs.
 * - answers: OK, ERR, result sets (column definitions, rows, EOF or its OK replacement under
 *   CLIENT_DEPRECATE_EOF, more results) are followed packet by packet; every packet hoopd
 *   sends the agent in an answer is numbered by hoopd (a masked row may need more or fewer
 *   16 MiB frames than it came in).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "mysql_int.h"
#include "daemon.h"
#include "log.h"
#include "mask_live.h"
#include "policy.h"
#include "record.h"
#include "tls.h"

/* Before login: a greeting, a HandshakeResponse (user, database, attributes), auth data. */
#define MY_PRELOGIN_MAX (64 * 1024)

/* The most statements one COM_QUERY may carry (each is judged with its own facts). */
#define MY_MAX_STMTS 64

static const char SETTINGS_SQL[] =
    "SELECT @@session.sql_mode, @@session.character_set_client, DATABASE()";
/* ...and, while masking is on, the base tables the agent's user can see (mysql_mask.c): their
 * count, then schema 0x1f name, separated by 0x1e */
static const char SETTINGS_CAT_SQL[] =
    "SELECT @@session.sql_mode, @@session.character_set_client, DATABASE(), (SELECT CONCAT(COUNT(*), "
    "':', IFNULL(GROUP_CONCAT(HEX(CONCAT(LOWER(table_schema), x'1f', LOWER(table_name))) "
    "SEPARATOR ','), '')) FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
    "AND table_schema NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys'))";

int64_t my_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static const struct policy_limits *limits(void)
{
	static const struct policy_limits dflt = {.statement_bytes = LIMITS_STATEMENT_BYTES};

	return hoopd.pol ? &hoopd.pol->limits : &dflt;
}

/* Close the session with an ERR packet the agent can read. */
int my_violation(struct my *m, const char *dir, const char *why)
{
	char msg[256];

	snprintf(msg, sizeof(msg), "hoop: protocol error from the %s: %s", dir, why);
	ev_protocol_error(sess_agent(m->s), dir, why);
	hlog_conn(HLOG_WARN, m->s->id, m->s->peer, "protocol error from the %s: %s", dir, why);
	my_put_err(&m->s->a.out, m->out_seq, MY_ER_HANDSHAKE_ERROR, "08S01", msg);
	m->end_reason = "protocol error";
	sess_close(m->s, msg);
	return -1;
}

/* Refuse what the agent asked with hoopd's own ERR (sqlstate in the gate's words). */
int my_refuse(struct my *m, uint64_t seq, const char *sqlstate, const char *message)
{
	const char *ms;
	unsigned e = my_errno_for(sqlstate, &ms);
	struct ev_error ee = {.seq = seq, .severity = "ERROR", .sqlstate = ms, .message = message,
			      .from_hoopd = 1};

	ev_error(sess_agent(m->s), &ee);
	return my_put_err(&m->s->a.out, m->out_seq, e, ms, message);
}

static int refuse_errno(struct my *m, unsigned err, const char *state, const char *message)
{
	struct ev_error ee = {.severity = "ERROR", .sqlstate = state, .message = message,
			      .from_hoopd = 1};

	ev_error(sess_agent(m->s), &ee);
	return my_put_err(&m->s->a.out, m->out_seq, err, state, message);
}

/* ---- prepared statements ---- */

/* The dialect's settings (dialect.h) from the lexer's, as the server last said them; unsure
 * until the settings query has answered. */
static void my_ds(const struct my *m, const struct myl_settings *lex,
		  struct dialect_settings *ds)
{
	mysql_dialect_settings(lex, !m->settings_known, ds);
}

struct my_stmt *my_stmt_find(struct my *m, uint32_t id)
{
	if (id == 0xffffffffu) {
		if (!m->last_stmt)
			return NULL;
		id = m->last_stmt; /* MariaDB: the statement prepared last */
	}
	for (struct my_stmt *t = m->stmts; t; t = t->next)
		if (t->id == id)
			return t;
	return NULL;
}

void my_cursor_close(struct my_stmt *t)
{
	my_mask_free(t->cursor_mk);
	t->cursor_mk = NULL;
	t->cursor = 0;
}

static void stmt_free(struct my_stmt *t)
{
	my_cursor_close(t);
	free(t->long_data);
	free(t->types);
	free(t->text);
	free(t->facts);
	free(t);
}

static void stmt_drop(struct my *m, uint32_t id)
{
	for (struct my_stmt **pp = &m->stmts; *pp; pp = &(*pp)->next)
		if ((*pp)->id == id) {
			struct my_stmt *t = *pp;

			*pp = t->next;
			m->prep_bytes -= strlen(t->text);
			stmt_free(t);
			m->nstmts--;
			return;
		}
}

static void stmts_clear(struct my *m)
{
	while (m->stmts) {
		struct my_stmt *t = m->stmts;

		m->stmts = t->next;
		stmt_free(t);
	}
	m->nstmts = 0;
	m->prep_bytes = 0;
}

/* ---- the lexer's settings, from the server ---- */

static int send_settings_query(struct my *m)
{
	int cat = masking_enabled();
	const char *sql = cat ? SETTINGS_CAT_SQL : SETTINGS_SQL;
	size_t n = strlen(sql);
	uint8_t q[sizeof(SETTINGS_CAT_SQL) + 1];
	uint8_t seq = 0;

	q[0] = MY_COM_QUERY;
	memcpy(q + 1, sql, n);
	my_resp_begin(m, MR_SETTINGS, 0);
	m->internal = 1;
	m->settings_cols = cat ? 4 : 3;
	return my_put_packet(&m->s->s.out, q, n + 1, &seq);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int my_made(const struct my *m, const char *table)
{
	if (m->made_overflow)
		return 1;
	for (int i = 0; i < m->nmade; i++)
		if (!strcasecmp(m->made[i], table))
			return 1;
	return 0;
}

/* A statement that makes, changes or renames tables: their names are this session's. */
static void note_made(struct my *m, const struct sqlfacts *f)
{
	const uint64_t ddl = 1ULL << SK_CREATE_TABLE | 1ULL << SK_CREATE_VIEW |
			     1ULL << SK_ALTER_TABLE | 1ULL << SK_RENAME | 1ULL << SK_DROP_TABLE;

	if (!f || !(f->kinds & ddl))
		return;
	for (int i = 0; i < f->nwritten; i++) {
		const char *dot = strrchr(f->written[i], '.');

		if (my_made(m, dot ? dot + 1 : f->written[i]))
			continue;
		if (m->nmade >= 1024) {
			m->made_overflow = 1;
			return;
		}
		char(*nm)[65] = realloc(m->made, (size_t)(m->nmade + 1) * sizeof(*nm));

		if (!nm) {
			m->made_overflow = 1;
			return;
		}
		m->made = nm;
		snprintf(m->made[m->nmade++], 65, "%s", dot ? dot + 1 : f->written[i]);
	}
}

int my_catalog_has(const struct my *m, const char *key)
{
	return m->ncat && bsearch(&key, m->cat, m->ncat, sizeof(*m->cat), cmp_str) != NULL;
}

/* The settings query's base tables: "count:hex,hex,..." where each hex is the bytes of
 * "schema 0x1f name" (hex: a name may hold any byte, a separator too). A list that does not
 * hold exactly the count it says (cut at group_concat_max_len, or malformed) is dropped: no
 * column is trusted then. */
static void read_catalog(struct my *m, const uint8_t *s, size_t n)
{
	char *buf = strndup((const char *)s, n), *list, *save = NULL;
	unsigned long want = strtoul(buf ? buf : "0", &list, 10);
	size_t k = 0;
	int bad = 0;

	free(m->cat);
	free(m->cat_buf);
	m->cat = NULL;
	m->cat_buf = NULL;
	m->ncat = 0;
	if (!buf || *list != ':' || want > 1000000 || strlen(buf) != n) {
		free(buf);
		return;
	}
	list++;
	m->cat = calloc(want ? want : 1, sizeof(*m->cat));
	for (char *t = strtok_r(list, ",", &save); m->cat && t && !bad;
	     t = strtok_r(NULL, ",", &save)) {
		size_t l = strlen(t);
		char *o = t;

		if (k >= want || l % 2) {
			bad = 1;
			break;
		}
		/* decode in place: the text is half as long */
		for (size_t i = 0; i < l; i += 2) {
			unsigned v;

			if (sscanf(t + i, "%2x", &v) != 1 || !v) {
				bad = 1;
				break;
			}
			*o++ = (char)v;
		}
		*o = '\0';
		m->cat[k++] = t;
	}
	if (!m->cat || bad || k != want) {
		free(m->cat);
		free(buf);
		m->cat = NULL;
		return;
	}
	qsort(m->cat, k, sizeof(*m->cat), cmp_str);
	m->cat_buf = buf;
	m->ncat = k;
}

/* The row of the settings query: sql_mode and character_set_client. */
int my_settings_row(struct my *m, const uint8_t *p, size_t len)
{
	const uint8_t *a, *b;
	uint64_t al, bl;
	size_t off = 0;
	char mode[2048], cs[64];

	if (my_lenenc_str(p, len, &off, &a, &al) || my_lenenc_str(p, len, &off, &b, &bl) ||
	    al >= sizeof(mode) || bl >= sizeof(cs))
		return -1;
	if (off < len && p[off] == 0xfb) { /* no database */
		off++;
		m->curdb[0] = '\0';
	} else {
		const uint8_t *d;
		uint64_t dl;

		if (my_lenenc_str(p, len, &off, &d, &dl) || dl >= sizeof(m->curdb))
			return -1;
		for (uint64_t i = 0; i < dl; i++)
			m->curdb[i] = (char)(d[i] >= 'A' && d[i] <= 'Z' ? d[i] + 32 : d[i]);
		m->curdb[dl] = '\0';
	}
	if (m->settings_cols == 4) {
		const uint8_t *c;
		uint64_t cl;

		if (my_lenenc_str(p, len, &off, &c, &cl))
			return -1;
		read_catalog(m, c, (size_t)cl);
	}
	if (off != len)
		return -1;
	memcpy(mode, a, al);
	mode[al] = '\0';
	snprintf(m->sql_mode, sizeof(m->sql_mode), "%s", mode);
	memcpy(cs, b, bl);
	cs[bl] = '\0';
	m->lex.ansi_quotes = m->lex.no_backslash_escapes = m->lex.unread_mode = 0;
	for (char *save = NULL, *t = strtok_r(mode, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (!strcasecmp(t, "ANSI_QUOTES"))
			m->lex.ansi_quotes = 1;
		else if (!strcasecmp(t, "NO_BACKSLASH_ESCAPES"))
			m->lex.no_backslash_escapes = 1;
		else if (!strcasecmp(t, "MSSQL") || !strcasecmp(t, "ORACLE"))
			m->lex.unread_mode = 1;
	}
	m->lex.unsafe_charset = myl_charset_unsafe(cs);
	m->settings_known = 1;
	return 0;
}

/* ---- greeting and login ---- */

/* "5.5.5-10.11.6-MariaDB-0+deb12u1" or "8.0.36": kind and NNNNNN. */
static void server_version(struct my *m, const char *v)
{
	unsigned a = 0, b = 0, c = 0;

	m->lex.mariadb = strstr(v, "MariaDB") != NULL;
	if (!strncmp(v, "5.5.5-", 6) && m->lex.mariadb)
		v += 6;
	if (sscanf(v, "%u.%u.%u", &a, &b, &c) == 3 && a < 100 && b < 100 && c < 100)
		m->lex.version = a * 10000 + b * 100 + c;
	else
		m->lex.version = 0; /* versioned comments are refused (mysqllex.h) */
	snprintf(m->server_version, sizeof(m->server_version), "%s", v);
}

/* The server's Handshake v10: capabilities hoopd does not follow cleared, then to the agent. */
static int server_greeting(struct my *m, uint8_t *p, size_t len, uint8_t seq)
{
	size_t off = 1, vlen;
	uint32_t caps;

	if (len && p[0] == 0xff) {
		unsigned e;
		char st[6];
		const char *msg;
		size_t ml;

		if (my_err_fields(p, len, &e, st, &msg, &ml) || len > 1024)
			return my_violation(m, "database", "malformed ERR in place of the greeting");
		/* refused before any login (too many connections, host blocked): as it is */
		m->end_reason = "refused by the server";
		my_put_packet(&m->s->a.out, p, len, &seq);
		sess_close(m->s, "the server refused the connection");
		return -1;
	}
	if (len < 1 || p[0] != 10)
		return my_violation(m, "database", "not a protocol 10 greeting");
	vlen = strnlen((const char *)p + 1, len - 1);
	if (vlen >= len - 1 || vlen >= sizeof(m->server_version))
		return my_violation(m, "database", "malformed greeting");
	server_version(m, (const char *)p + 1);
	off += vlen + 1;
	/* connection id, 8 bytes of scramble, a filler, capabilities (low), charset, status,
	 * capabilities (high), scramble length, 6 reserved bytes, MariaDB's extended capabilities */
	if (len - off < 4 + 8 + 1 + 2 + 1 + 2 + 2 + 1 + 10)
		return my_violation(m, "database", "short greeting");
	m->conn_id = my_le32(p + off);
	off += 4 + 8 + 1;
	caps = my_le16(p + off) | my_le16(p + off + 5) << 16;
	if (!(caps & MY_CLIENT_PROTOCOL_41))
		return my_violation(m, "database", "server without protocol 4.1");
	m->srv_caps = caps & MY_CAPS_ALLOWED;
	m->charset = p[off + 2];
	/* the database leg: TLS when the target asks and the server offers it */
	switch (tls_upstream_mode(m->s)) {
	case UPSTREAM_TLS_DISABLE:
		m->server_tls = 0;
		break;
	case UPSTREAM_TLS_PREFER:
		m->server_tls = (caps & MY_CLIENT_SSL) != 0;
		break;
	default:
		if (!(caps & MY_CLIENT_SSL)) {
			my_put_err(&m->s->a.out, 0, MY_ER_HANDSHAKE_ERROR, "08004",
				   "hoop: the database does not offer TLS, which the policy requires "
				   "for this target (upstream_tls)");
			m->end_reason = "upstream TLS refused";
			sess_close(m->s, "upstream TLS refused");
			return -1;
		}
		m->server_tls = 1;
	}
	if (!(caps & MY_CLIENT_LONG_PASSWORD)) /* MariaDB: its extended capabilities */
		memset(p + off + 2 + 1 + 2 + 2 + 1 + 6, 0, 4);
	caps = m->srv_caps | (tls_agent_enabled() ? MY_CLIENT_SSL : 0); /* hoopd's TLS */
	p[off] = (uint8_t)caps;
	p[off + 1] = (uint8_t)(caps >> 8);
	p[off + 5] = (uint8_t)(caps >> 16);
	p[off + 6] = (uint8_t)(caps >> 24);
	m->phase = MP_LOGIN;
	return my_put_packet(&m->s->a.out, p, len, &seq);
}

static int read_cstr(const uint8_t *p, size_t len, size_t *off, char *out, size_t outn)
{
	size_t n;

	if (*off > len)
		return -1;
	n = strnlen((const char *)p + *off, len - *off);
	if (n == len - *off || n >= outn)
		return -1;
	memcpy(out, p + *off, n + 1);
	*off += n + 1;
	return 0;
}

static void connect_attrs(struct my *m, const uint8_t *p, size_t len, size_t off)
{
	uint64_t total;
	struct jbuf j;

	if (my_lenenc(p, len, &off, &total) || total > len - off)
		return;
	len = off + (size_t)total;
	jb_init(&j);
	jb_obj_open(&j);
	while (off < len) {
		const uint8_t *k, *v;
		uint64_t kl, vl;
		char kb[128], vb[256];

		if (my_lenenc_str(p, len, &off, &k, &kl) || my_lenenc_str(p, len, &off, &v, &vl))
			break;
		snprintf(kb, sizeof(kb), "%.*s", (int)(kl < 127 ? kl : 127), k);
		snprintf(vb, sizeof(vb), "%.*s", (int)(vl < 255 ? vl : 255), v);
		if (strlen(kb) != kl || strlen(vb) != vl)
			continue; /* a NUL inside: not recorded */
		jb_kv_str(&j, kb, vb);
		if (!strcmp(kb, "program_name"))
			snprintf(m->app, sizeof(m->app), "%s", vb);
	}
	jb_obj_close(&j);
	if (!j.oom)
		m->params_json = strdup(jb_str(&j));
	jb_free(&j);
}

/*
 * With the agent on TLS and the database leg not, an agent sends what some plugins send in the
 * clear (mysql_clear_password, dialog/PAM, sha256_password and caching_sha2_password's full
 * authentication, which send the password itself over a connection the client believes
 * secure): hoopd would carry it over the plain leg. Only plugins whose answer is not the
 * password pass then.
 */
static int plugin_safe_in_clear(const char *plugin)
{
	return !plugin[0] || !strcmp(plugin, "mysql_native_password") ||
	       !strcmp(plugin, "client_ed25519") || !strcmp(plugin, "caching_sha2_password");
}

static int refuse_cleartext(struct my *m, const char *plugin, uint8_t seq)
{
	char msg[320];

	snprintf(msg, sizeof(msg),
		 "hoop: authentication with %s would send the password in the clear on hoopd's "
		 "leg to the database, which is not TLS: set the target's upstream_tls to "
		 "require (or verify-full), or use mysql_native_password or ed25519",
		 plugin[0] ? plugin : "this method");
	m->out_seq = (uint8_t)(seq + 1);
	refuse_errno(m, MY_ER_HANDSHAKE_ERROR, "08004", msg);
	m->end_reason = "cleartext password refused";
	sess_close(m->s, "cleartext password over a plain database leg");
	return -1;
}

/* The agent's HandshakeResponse41: the login; capabilities cleared; on to the server. */
static int agent_login(struct my *m, uint8_t *p, size_t len, uint8_t seq)
{
	struct session *s = m->s;
	uint32_t caps;
	size_t off = 32;
	uint64_t alen;

	if (len < 4)
		return my_violation(m, "agent", "short handshake response");
	caps = my_le32(p);
	if ((caps & MY_CLIENT_SSL) && !m->agent_tls) {
		/* an SSLRequest: hoopd terminates the agent's TLS, then the login comes again */
		if (!tls_agent_enabled()) {
			m->out_seq = (uint8_t)(seq + 1);
			refuse_errno(m, MY_ER_HANDSHAKE_ERROR, "08004",
				     "hoop: this hoopd does not terminate agent TLS (it runs with "
				     "agent TLS off): connect without TLS");
			m->end_reason = "agent asked for TLS";
			sess_close(s, "agent asked for TLS");
			return -1;
		}
		if (len != 32 || m->agent_in_left)
			return my_violation(m, "agent", len != 32 ? "malformed SSL request"
								   : "data after the SSL request");
		m->agent_tls = 1;
		return sess_tls_agent(s) ? my_violation(m, "agent", "cannot start TLS") : 0;
	}
	if (!(caps & MY_CLIENT_SSL) && m->agent_tls)
		return my_violation(m, "agent", "login without TLS after the SSL request");
	if (!(caps & MY_CLIENT_PROTOCOL_41) || len < 33)
		return my_violation(m, "agent", "handshake response without protocol 4.1");
	if (read_cstr(p, len, &off, m->user, sizeof(m->user)))
		return my_violation(m, "agent", "malformed user name in the handshake response");
	if (caps & MY_CLIENT_PLUGIN_AUTH_LENENC) {
		const uint8_t *a;

		if (my_lenenc_str(p, len, &off, &a, &alen))
			return my_violation(m, "agent", "malformed auth data");
	} else if (caps & MY_CLIENT_SECURE_CONNECTION) {
		if (off >= len || p[off] > len - off - 1)
			return my_violation(m, "agent", "malformed auth data");
		off += 1 + p[off];
	} else {
		char skip[256];

		if (read_cstr(p, len, &off, skip, sizeof(skip)))
			return my_violation(m, "agent", "malformed auth data");
	}
	if ((caps & MY_CLIENT_CONNECT_WITH_DB) && off < len &&
	    read_cstr(p, len, &off, m->db, sizeof(m->db)))
		return my_violation(m, "agent", "malformed database name");
	if ((caps & MY_CLIENT_PLUGIN_AUTH) && off < len &&
	    read_cstr(p, len, &off, m->plugin, sizeof(m->plugin)))
		return my_violation(m, "agent", "malformed auth plugin name");
	if ((caps & MY_CLIENT_CONNECT_ATTRS) && off < len)
		connect_attrs(m, p, len, off);
	if (m->agent_tls && !m->server_tls && !plugin_safe_in_clear(m->plugin))
		return refuse_cleartext(m, m->plugin, seq);
	/* what the two sides may agree on: the greeting's (already cut) and hoopd's, and TLS
	 * where hoopd's leg to the server has it */
	caps &= m->srv_caps;
	if (m->server_tls)
		caps |= MY_CLIENT_SSL;
	m->caps = caps;
	m->deprecate_eof = (caps & MY_CLIENT_DEPRECATE_EOF) != 0;
	p[0] = (uint8_t)caps;
	p[1] = (uint8_t)(caps >> 8);
	p[2] = (uint8_t)(caps >> 16);
	p[3] = (uint8_t)(caps >> 24);
	memset(p + 9 + 19, 0, 4); /* MariaDB's extended capabilities */
	{
		struct ev_session_start e = {.application_name = m->app,
					     .params_json = m->params_json,
					     .agent_tls = m->agent_tls,
					     .server_tls = m->server_tls};

		sess_set_login(s, m->user, m->db);
		sess_record_start(s, &e);
	}
	m->phase = MP_AUTH;
	m->agent_turn = 0;
	m->seq_shift = (int8_t)(m->server_tls - m->agent_tls);
	if (m->server_tls) {
		/* an SSLRequest of our own (the login's first 32 bytes), TLS, then the login */
		uint8_t req[32] = {0};
		uint8_t one = 1;

		struct buf b = {0};
		ssize_t w;

		memcpy(req, p, 9);
		if (!(m->login = malloc(len)))
			return -1;
		memcpy(m->login, p, len);
		m->login_len = len;
		/* on the socket itself, before TLS takes it (nothing else is queued for the
		 * server during the login) */
		if (s->s.out.len || my_put_packet(&b, req, sizeof(req), &one)) {
			buf_free(&b);
			return my_violation(m, "database", "cannot start TLS");
		}
		w = send(s->s.fd, buf_head(&b), b.len, MSG_NOSIGNAL);
		buf_free(&b);
		if (w != 36 || sess_tls_server(s, tls_upstream_ctx(s), tls_upstream_sni(s)))
			return my_violation(m, "database", "cannot start TLS");
		return 0;
	}
	seq = (uint8_t)(seq + m->seq_shift);
	return my_put_packet(&s->s.out, p, len, &seq);
}

/* The server's TLS is up (my_tls_done): the login, numbered after the SSLRequest. */
static int send_login(struct my *m)
{
	uint8_t seq = 2;
	int r = my_put_packet(&m->s->s.out, m->login, m->login_len, &seq);

	free(m->login);
	m->login = NULL;
	return r;
}

/* The server during authentication: OK ends it (then the settings query), ERR ends the
 * session, an auth switch or more-data packet gives the agent its turn. Relayed as they are. */
static int server_auth(struct my *m, const uint8_t *p, size_t len, uint8_t seq)
{
	if (!len)
		return my_violation(m, "database", "empty packet during authentication");
	seq = (uint8_t)(seq - m->seq_shift);
	m->out_seq = seq; /* an ERR of hoopd's in place of this packet */
	if (p[0] == 0x00) {
		uint16_t st;

		if (my_ok_read(m, p, len, 0, &st, NULL))
			return my_violation(m, "database", "malformed OK packet ending the login");
		if (!(m->held_ok = malloc(len)))
			return -1;
		memcpy(m->held_ok, p, len);
		m->held_ok_len = len;
		m->held_ok_seq = seq;
		m->phase = MP_READY;
		if (m->changing) {
			/* the session is the new login's from here: its statements, rules and
			 * records (a statement record says the user it ran as) */
			m->changing = 0;
			snprintf(m->user, sizeof(m->user), "%s", m->cu_user);
			snprintf(m->db, sizeof(m->db), "%s", m->cu_db);
			sess_change_login(m->s, m->user, m->db);
			hlog_conn(HLOG_INFO, m->s->id, m->s->peer, "COM_CHANGE_USER: now %s", m->user);
		}
		return send_settings_query(m);
	}
	if (p[0] == 0xff) {
		unsigned e;
		char st[6];
		const char *msg;
		size_t ml;

		if (my_err_fields(p, len, &e, st, &msg, &ml))
			return my_violation(m, "database", "malformed ERR ending the login");
		if (m->changing) {
			/* COM_CHANGE_USER refused: the server keeps the session as the old login
			 * (MariaDB restores it), its session state gone either way; the settings
			 * are read again before the next command */
			char text[512];
			struct ev_error ev = {.severity = "ERROR", .sqlstate = st, .message = text};

			snprintf(text, sizeof(text), "%.*s", (int)(ml < 511 ? ml : 511), msg);
			ev_error(sess_agent(m->s), &ev);
			m->changing = 0;
			m->phase = MP_READY;
			if (my_put_packet(&m->s->a.out, p, len, &seq))
				return -1;
			return send_settings_query(m);
		}
		m->end_reason = "authentication failed";
		my_put_packet(&m->s->a.out, p, len, &seq);
		sess_close(m->s, "authentication failed");
		return -1;
	}
	if (m->agent_tls && !m->server_tls) {
		char plugin[64] = "";

		if (p[0] == 0xfe && len > 1)
			snprintf(plugin, sizeof(plugin), "%.*s", (int)strnlen((const char *)p + 1,
									   len - 1 < 63 ? len - 1 : 63),
				 (const char *)p + 1);
		if (p[0] == 0xfe && !plugin_safe_in_clear(plugin))
			return refuse_cleartext(m, plugin, (uint8_t)(seq - 1));
		if (p[0] == 0x01 && len == 2 && p[1] == 0x04) /* caching_sha2: full auth */
			return refuse_cleartext(m, "caching_sha2_password's full authentication",
						(uint8_t)(seq - 1));
	}
	/* 0xfe auth switch, 0x01 more data: the agent answers, except fast-auth success */
	m->agent_turn = !(p[0] == 0x01 && len == 2 && p[1] == 0x03);
	return my_put_packet(&m->s->a.out, p, len, &seq);
}

/* ---- commands ---- */

/* A command that carries no statement text, judged as the statement it is the same as. */
static int judge_as(struct my *m, const char *text, size_t len, int resp, const uint8_t *pkt,
		    size_t plen)
{
	struct sqlfacts *f = calloc(1, sizeof(*f));
	struct gate_stmt st = {.text = text, .len = len};
	struct gate_batch b = {.protocol = "simple", .text = text, .len = len, .st = &st, .n = 1};
	struct dialect_settings ds;
	uint8_t seq = 0;
	int r;

	if (!f)
		return -1;
	my_ds(m, &m->lex, &ds);
	m->g.dialect->facts(&ds, text, len, f);
	st.facts = f;
	r = gate_run(&m->g, &b);
	free(f);
	if (r < 0)
		return -1;
	if (r == GATE_REFUSE)
		return my_refuse(m, st.seq, b.sqlstate, b.message);
	my_resp_begin(m, resp, st.seq);
	return my_put_packet(&m->s->s.out, pkt, plen, &seq);
}

/* `name` quoted as a MySQL identifier; 0, or -1 when it cannot be (a NUL, too long). */
static int quote_ident(const uint8_t *s, size_t n, char *out, size_t outn)
{
	size_t o = 0;

	if (o + 1 >= outn)
		return -1;
	out[o++] = '`';
	for (size_t i = 0; i < n; i++) {
		if (!s[i] || o + 3 >= outn)
			return -1;
		if (s[i] == '`')
			out[o++] = '`';
		out[o++] = (char)s[i];
	}
	out[o++] = '`';
	out[o] = '\0';
	return 0;
}

static int kill_held(struct my *m, uint32_t id, int *answered);

/*
 * COM_CHANGE_USER: a new login on the same connection. Read whole (a packet hoopd cannot read
 * is refused, not passed on), recorded before it goes, then relayed like the login's
 * authentication (auth switch, more data), with the same refusal of passwords in the clear
 * over a plain database leg. The server drops the session's prepared statements, temporary
 * tables and variables whatever the outcome; on its OK the session's login is the new one and
 * the settings are read again before the agent sees the OK.
 */
static int change_user(struct my *m, const uint8_t *p, size_t len)
{
	char user[128], db[128] = "", plugin[64] = "";
	size_t off = 1;
	uint8_t seq = 0;

	if (read_cstr(p, len, &off, user, sizeof(user)))
		return refuse_errno(m, MY_ER_HANDSHAKE_ERROR, "08S01",
				    "hoop: COM_CHANGE_USER with a user name hoopd cannot read");
	if (m->caps & MY_CLIENT_SECURE_CONNECTION) {
		if (off >= len || p[off] > len - off - 1)
			return refuse_errno(m, MY_ER_HANDSHAKE_ERROR, "08S01",
					    "hoop: COM_CHANGE_USER with malformed auth data");
		off += 1 + p[off];
	} else {
		char skip[256];

		if (read_cstr(p, len, &off, skip, sizeof(skip)))
			return refuse_errno(m, MY_ER_HANDSHAKE_ERROR, "08S01",
					    "hoop: COM_CHANGE_USER with malformed auth data");
	}
	if (off < len && read_cstr(p, len, &off, db, sizeof(db)))
		return refuse_errno(m, MY_ER_HANDSHAKE_ERROR, "08S01",
				    "hoop: COM_CHANGE_USER with a database name hoopd cannot read");
	if (off < len) {
		if (len - off < 2)
			return refuse_errno(m, MY_ER_HANDSHAKE_ERROR, "08S01",
					    "hoop: COM_CHANGE_USER with a malformed character set");
		off += 2;
	}
	if ((m->caps & MY_CLIENT_PLUGIN_AUTH) && off < len &&
	    read_cstr(p, len, &off, plugin, sizeof(plugin)))
		return refuse_errno(m, MY_ER_HANDSHAKE_ERROR, "08S01",
				    "hoop: COM_CHANGE_USER with a plugin name hoopd cannot read");
	if (m->agent_tls && !m->server_tls && !plugin_safe_in_clear(plugin)) {
		char msg[320];

		snprintf(msg, sizeof(msg),
			 "hoop: COM_CHANGE_USER with %s would send the password in the clear on "
			 "hoopd's leg to the database, which is not TLS: set the target's "
			 "upstream_tls to require (or verify-full), or use mysql_native_password or "
			 "ed25519",
			 plugin);
		return refuse_errno(m, MY_ER_HANDSHAKE_ERROR, "08004", msg);
	}
	if (sess_record_change_user(m->s, user, db, plugin))
		return refuse_errno(m, MY_ER_UNKNOWN_ERROR, "HY000",
				    "hoop: the audit trail cannot take the record of this "
				    "COM_CHANGE_USER; it was not sent");
	snprintf(m->cu_user, sizeof(m->cu_user), "%s", user);
	snprintf(m->cu_db, sizeof(m->cu_db), "%s", db);
	m->changing = 1;
	m->phase = MP_AUTH;
	m->agent_turn = 0;
	m->seq_shift = 0;
	stmts_clear(m); /* the server drops them, whatever it answers */
	return my_put_packet(&m->s->s.out, p, len, &seq);
}

static int agent_command(struct my *m, const uint8_t *p, size_t len)
{
	struct session *s = m->s;
	char text[800];
	uint8_t seq = 0;

	if (!len)
		return my_violation(m, "agent", "empty command packet");
	switch (p[0]) {
	case MY_COM_QUIT:
		m->phase = MP_QUIT;
		m->end_reason = "client quit";
		return my_put_packet(&s->s.out, p, len, &seq);
	case MY_COM_QUERY:
		return my_query(m, p, len, 1);
	case MY_COM_INIT_DB:
		if (quote_ident(p + 1, len - 1, text + 4, sizeof(text) - 4))
			return refuse_errno(m, MY_ER_PARSE_ERROR, "42000",
					    "hoop: database name hoopd cannot read");
		memcpy(text, "USE ", 4);
		m->resettle = 1; /* the current database, for masking's base-table test */
		return judge_as(m, text, strlen(text), MR_OK, p, len);
	case MY_COM_FIELD_LIST: {
		size_t n = strnlen((const char *)p + 1, len - 1);

		memcpy(text, "SHOW COLUMNS FROM ", 18);
		if (n == len - 1 || quote_ident(p + 1, n, text + 18, sizeof(text) - 18))
			return refuse_errno(m, MY_ER_PARSE_ERROR, "42000",
					    "hoop: table name hoopd cannot read");
		return judge_as(m, text, strlen(text), MR_FIELDS, p, len);
	}
	case MY_COM_PROCESS_KILL: {
		int answered = 0;

		if (len != 5)
			return my_violation(m, "agent", "malformed COM_PROCESS_KILL");
		if (kill_held(m, my_le32(p + 1), &answered) || answered)
			return answered ? 0 : -1;
		snprintf(text, sizeof(text), "KILL %u", my_le32(p + 1));
		return judge_as(m, text, strlen(text), MR_OK, p, len);
	}
	case MY_COM_PING:
		my_resp_begin(m, MR_OK, 0);
		return my_put_packet(&s->s.out, p, len, &seq);
	case MY_COM_STATISTICS:
		my_resp_begin(m, MR_ONE, 0);
		return my_put_packet(&s->s.out, p, len, &seq);
	case MY_COM_SET_OPTION:
		if (len != 3)
			return my_violation(m, "agent", "malformed COM_SET_OPTION");
		my_resp_begin(m, MR_ONE, 0);
		m->setopt = 1;
		return my_put_packet(&s->s.out, p, len, &seq);
	case MY_COM_RESET_CONNECTION:
		my_resp_begin(m, MR_OK, 0);
		m->reset_pending = 1;
		m->resettle = 1;
		return my_put_packet(&s->s.out, p, len, &seq);
	case MY_COM_STMT_PREPARE:
		return my_prepare(m, p, len);
	case MY_COM_STMT_EXECUTE:
		return my_execute(m, p, len);
	case MY_COM_STMT_CLOSE:
		if (len != 5)
			return my_violation(m, "agent", "malformed COM_STMT_CLOSE");
		stmt_drop(m, my_le32(p + 1));
		return my_put_packet(&s->s.out, p, len, &seq); /* no answer */
	case MY_COM_STMT_RESET:
		if (len != 5)
			return my_violation(m, "agent", "malformed COM_STMT_RESET");
		{
			struct my_stmt *t = my_stmt_find(m, my_le32(p + 1));

			if (t && t->long_data)
				memset(t->long_data, 0, t->nparams);
			if (t) {
				/* the server closes the statement's cursor */
				my_cursor_close(t);
				t->cursor_withheld = 0;
			}
		}
		my_resp_begin(m, MR_OK, 0);
		return my_put_packet(&s->s.out, p, len, &seq);
	case MY_COM_STMT_SEND_LONG_DATA:
		/* a parameter's value in pieces (no answer); the statement was judged at
		 * PREPARE and is judged again at EXECUTE */
	{
		struct my_stmt *t = len >= 7 ? my_stmt_find(m, my_le32(p + 1)) : NULL;
		uint16_t param = len >= 7 ? (uint16_t)my_le16(p + 5) : 0;

		if (!t || param >= t->nparams)
			return 0; /* the server would ignore it too: dropped */
		t->long_data[param] = 1; /* recorded as such at EXECUTE, not decoded from it */
		return my_put_packet(&s->s.out, p, len, &seq);
	}
	case MY_COM_CHANGE_USER:
		return change_user(m, p, len);
	case MY_COM_STMT_FETCH:
		return my_fetch(m, p, len);
	default: {
		static const char *const names[] = {
		    [0x00] = "COM_SLEEP",	  [0x05] = "COM_CREATE_DB",
		    [0x06] = "COM_DROP_DB",	  [0x07] = "COM_REFRESH",
		    [0x08] = "COM_SHUTDOWN",	  [0x0a] = "COM_PROCESS_INFO",
		    [0x0b] = "COM_CONNECT",	  [0x0d] = "COM_DEBUG",
		    [0x0f] = "COM_TIME",	  [0x10] = "COM_DELAYED_INSERT",
		    [0x12] = "COM_BINLOG_DUMP",
		    [0x13] = "COM_TABLE_DUMP",	  [0x14] = "COM_CONNECT_OUT",
		    [0x15] = "COM_REGISTER_SLAVE", [0x1d] = "COM_DAEMON",
		    [0x1e] = "COM_BINLOG_DUMP_GTID",
		};
		const char *n = p[0] < sizeof(names) / sizeof(names[0]) && names[p[0]]
					? names[p[0]]
					: "unknown";

		snprintf(text, sizeof(text), "hoop: command 0x%02x (%s) is not allowed through hoopd",
			 p[0], n);
		hlog_conn(HLOG_INFO, s->id, s->peer, "%s", text);
		return refuse_errno(m, MY_ER_UNKNOWN_COM_ERROR, "08S01", text);
	}
	}
}

/* ---- KILL of a held statement ---- */

struct kill_key {
	const struct session *by;
	uint32_t id;
};

static int match_conn(struct session *s, void *arg)
{
	const struct kill_key *k = arg;
	struct my *m = s->est;

	return s->eng == &mysql_engine && m && m->conn_id == k->id && s->held && m->held &&
	       !strcmp(s->dst, k->by->dst) && s->cap_cgid == k->by->cap_cgid &&
	       !strcmp(s->user, k->by->user);
}

/* KILL [QUERY] id of a connection whose statement hoopd holds: it never reached the server,
 * so hoopd fails it (ER_QUERY_INTERRUPTED) and answers the KILL itself. Only the same
 * database user from the same agent cgroup may (the server would check the user too). */
static int kill_held(struct my *m, uint32_t id, int *answered)
{
	struct kill_key k = {.by = m->s, .id = id};
	struct session *t = sess_find(match_conn, &k);

	*answered = 0;
	if (!t)
		return 0;
	my_cancel_held(t->est);
	ev_cancel(sess_agent(m->s), "held statement cancelled by hoopd", (int)id);
	*answered = 1;
	return my_put_ok(&m->s->a.out, 1, 0x0002);
}

/* Is the text `KILL [QUERY|CONNECTION] n` (one statement)? n into *id. */
static int is_kill(const char *sql, size_t len, uint32_t *id)
{
	char buf[96], w1[16], w2[16];
	unsigned long v;
	int k;

	if (len >= sizeof(buf))
		return 0;
	memcpy(buf, sql, len);
	buf[len] = '\0';
	while (len && (buf[len - 1] == ';' || buf[len - 1] == ' ' || buf[len - 1] == '\n'))
		buf[--len] = '\0';
	if (sscanf(buf, " %15s %15s %lu %n", w1, w2, &v, &k) == 3 && !buf[k] &&
	    !strcasecmp(w1, "kill") && (!strcasecmp(w2, "query") || !strcasecmp(w2, "connection")))
		;
	else if (sscanf(buf, " %15s %lu %n", w1, &v, &k) == 2 && !buf[k] && !strcasecmp(w1, "kill"))
		;
	else
		return 0;
	if (v > 0xffffffffUL)
		return 0;
	*id = (uint32_t)v;
	return 1;
}

/* ---- COM_QUERY ---- */

static int all_denied_unparsed(const struct gate_batch *b, struct sqlfacts *const *f)
{
	int any = 0;

	for (int i = 0; i < b->n; i++)
		if (b->st[i].v == VERDICT_DENY) {
			if (!f[i] || !f[i]->parse_error)
				return 0;
			any = 1;
		}
	return any || b->parse_error;
}

/* Does statement i leave the lexer's settings as they were? */
static int keeps_settings(const struct sqlfacts *f)
{
	const uint64_t risky = 1ULL << SK_SET | 1ULL << SK_CALL | 1ULL << SK_EXECUTE |
			       1ULL << SK_OTHER | 1ULL << SK_DO;

	return f && !f->parse_error && !(f->kinds & risky);
}

int my_query(struct my *m, const uint8_t *pkt, size_t plen, int judge)
{
	const char *sql = (const char *)pkt + 1;
	size_t len = plen - 1;
	struct dialect_split *sp = NULL;
	struct dialect_settings ds;
	struct sql_error err;
	struct gate_stmt st[MY_MAX_STMTS];
	struct sqlfacts *f[MY_MAX_STMTS] = {0};
	struct gate_batch b = {.protocol = "simple", .text = sql, .len = len, .may_hold = 1,
			       .st = st};
	char why[200] = "";
	uint8_t seq = 0;
	uint32_t kid;
	int r = -1, resettle = 0;

	memset(st, 0, sizeof(st));
	/* an approver sees the whole sql_mode and the current database: PIPES_AS_CONCAT,
	 * HIGH_NOT_PRECEDENCE and others change what a text does, the database what its
	 * unqualified names are */
	b.reading = m->sql_mode;
	b.schema = m->curdb;
	if (judge && is_kill(sql, len, &kid)) {
		int answered = 0;

		if (kill_held(m, kid, &answered))
			return -1;
		if (answered)
			return 0;
	}
	if (len > limits()->statement_bytes) {
		char msg[160];

		snprintf(msg, sizeof(msg),
			 "hoop: statement of %zu bytes is over the policy's limits.statement_bytes "
			 "(%u)",
			 len, limits()->statement_bytes);
		gate_record_oversized(&m->g, "simple", NULL, sql, 256, len, NULL,
				      "limits.statement_bytes"); /* refused either way */
		return my_refuse(m, m->g.seq, "54000", msg);
	}
	if (!(sp = malloc(sizeof(*sp))))
		return -1;
	my_ds(m, &m->lex, &ds);
	if (m->g.dialect->split(&ds, sql, len, sp, &err)) {
		b.parse_error = 1;
		snprintf(why, sizeof(why), "%s", err.message);
	} else if (sp->n > MY_MAX_STMTS) {
		b.parse_error = 1;
		snprintf(why, sizeof(why), "more than %d statements in one query", MY_MAX_STMTS);
	}
	if (b.parse_error) {
		st[0].text = sql;
		st[0].len = len;
		b.n = 1;
		if ((f[0] = calloc(1, sizeof(*f[0])))) {
			f[0]->parse_error = 1;
			snprintf(f[0]->error, sizeof(f[0]->error), "%s", why);
		}
		st[0].facts = f[0];
		resettle = 1;
	} else {
		b.n = sp->n;
		for (int i = 0; i < sp->n; i++) {
			st[i].text = sql + sp->off[i];
			st[i].len = sp->len[i];
			if (!(f[i] = calloc(1, sizeof(*f[i]))))
				goto out;
			m->g.dialect->facts(&ds, st[i].text, st[i].len, f[i]);
			note_made(m, f[i]);
			my_mask_probes(m, st[i].text, st[i].len, f[i]);
			st[i].facts = f[i];
			if (!keeps_settings(f[i]))
				resettle = 1;
		}
	}
	for (int i = 0; i < b.n; i++)
		if (!st[i].facts)
			goto out; /* out of memory */
	if (judge) {
		gate_judge(&m->g, &b);
		/* An SQL PREPARE held for approval would, once approved, let every later EXECUTE
		 * of it run unheld (EXECUTE is judged as itself, not by the text it runs): it is
		 * refused instead, as the binary protocol's are. */
		for (int i = 0; b.v == VERDICT_HOLD && i < b.n; i++)
			if (st[i].v == VERDICT_HOLD && f[i] && (f[i]->kinds & (1ULL << SK_PREPARE))) {
				st[i].v = VERDICT_DENY;
				b.v = VERDICT_DENY;
				snprintf(b.message, sizeof(b.message),
					 "hoop: a PREPARE cannot wait for approval (its EXECUTEs would "
					 "then run without one): send the statement itself");
			}
	} else {
		for (int i = 0; i < b.n; i++)
			st[i].v = VERDICT_ALLOW;
		b.v = VERDICT_ALLOW;
	}
	switch (gate_commit(&m->g, &b)) {
	case GATE_FORWARD:
		my_resp_begin(m, MR_RESULT, b.n ? st[0].seq : m->g.seq);
		m->first_seq = b.n ? st[0].seq : m->g.seq;
		m->nseq = b.n ? b.n : 1;
		m->resettle |= resettle;
		my_mask_begin(m, sql, len, b.n ? f[0] : NULL, b.n);
		r = my_put_packet(&m->s->s.out, pkt, plen, &seq);
		break;
	case GATE_REFUSE:
		if (b.sqlstate && !strcmp(b.sqlstate, "42501") && all_denied_unparsed(&b, f)) {
			char msg[320];
			struct ev_error ee = {.seq = m->g.seq, .severity = "ERROR",
					      .sqlstate = "42000", .message = msg,
					      .from_hoopd = 1};

			const char *t = b.message[0] ? b.message : why;

			snprintf(msg, sizeof(msg), "%s%s", strncmp(t, "hoop:", 5) ? "hoop: " : "", t);
			if (why[0] && !strstr(msg, why) && strlen(msg) + strlen(why) + 4 < sizeof(msg))
				snprintf(msg + strlen(msg), sizeof(msg) - strlen(msg), " (%s)", why);
			ev_error(sess_agent(m->s), &ee);
			r = my_put_err(&m->s->a.out, m->out_seq, MY_ER_PARSE_ERROR, "42000", msg);
		} else {
			r = my_refuse(m, m->g.seq, b.sqlstate, b.message);
		}
		break;
	case GATE_HOLD:
		if (!(m->held = malloc(plen))) {
			hold_ops->forget(m->s, "out of memory");
			break;
		}
		memcpy(m->held, pkt, plen);
		m->held_len = plen;
		sess_hold(m->s);
		r = 0;
		break;
	default:
		break;
	}
out:
	for (int i = 0; i < MY_MAX_STMTS; i++)
		free(f[i]);
	free(sp);
	return r;
}

/* ---- prepared statements ---- */

int my_prepare(struct my *m, const uint8_t *p, size_t len)
{
	const char *sql = (const char *)p + 1;
	size_t n = len - 1;
	struct sqlfacts *f = calloc(1, sizeof(*f));
	struct gate_stmt st = {.text = sql, .len = n, .prepared = "?"};
	struct gate_batch b = {.protocol = "extended", .text = sql, .len = n, .st = &st, .n = 1};
	struct dialect_split *sp = NULL;
	struct dialect_settings ds;
	struct sql_error err = {0};
	uint8_t seq = 0;
	int r;

	if (!f)
		return -1;
	if (n > limits()->statement_bytes) {
		free(f);
		gate_record_oversized(&m->g, "extended", "?", sql, 256, n, NULL,
				      "limits.statement_bytes");
		return my_refuse(m, m->g.seq, "54000",
				 "hoop: statement over the policy's limits.statement_bytes");
	}
	if (m->prep_bytes + n > MY_PREPARED_BYTES) {
		free(f);
		return refuse_errno(m, 1461, "42000",
				    "hoop: this session keeps too many prepared statements' text "
				    "(16 MiB); close some (COM_STMT_CLOSE) before preparing more");
	}
	/* one statement only: the server refuses more, and so does hoopd, before judging */
	my_ds(m, &m->lex, &ds);
	if (!(sp = malloc(sizeof(*sp))) || m->g.dialect->split(&ds, sql, n, sp, &err) ||
	    sp->n != 1) {
		f->parse_error = 1;
		snprintf(f->error, sizeof(f->error), "%s",
			 sp && err.message[0] ? err.message
					      : "a prepared statement is exactly one statement");
	} else {
		m->g.dialect->facts(&ds, sql + sp->off[0], sp->len[0], f);
		note_made(m, f);
		my_mask_probes(m, sql + sp->off[0], sp->len[0], f);
	}
	free(sp);
	st.facts = f;
	r = gate_run(&m->g, &b);
	if (r == GATE_FORWARD) {
		free(m->prep_text);
		free(m->prep_facts);
		m->prep_text = strndup(sql, n);
		m->prep_facts = f;
		m->prep_lex = m->lex;
		if (!m->prep_text)
			return -1;
		my_resp_begin(m, MR_PREPARE, st.seq);
		return my_put_packet(&m->s->s.out, p, len, &seq);
	}
	free(f);
	if (r == GATE_REFUSE)
		return my_refuse(m, m->g.seq, b.sqlstate, b.message);
	return -1;
}

/* The server said OK to the PREPARE in flight: the statement is the session's now. */
int my_prepared(struct my *m, uint32_t id, uint16_t ncols, uint16_t nparams)
{
	struct my_stmt *t;

	if (m->nstmts >= MY_MAX_PREPARED)
		return my_violation(m, "agent", "more prepared statements than hoopd keeps");
	if (!(t = calloc(1, sizeof(*t))))
		return -1;
	stmt_drop(m, id);
	t->id = id;
	t->lex = m->prep_lex;
	if (nparams && !(t->long_data = calloc(nparams, 1))) {
		free(t);
		return -1;
	}
	m->prep_bytes += strlen(m->prep_text);
	t->text = m->prep_text;
	t->facts = m->prep_facts;
	t->ncols = ncols;
	t->nparams = nparams;
	m->prep_text = NULL;
	m->prep_facts = NULL;
	t->next = m->stmts;
	m->stmts = t;
	m->nstmts++;
	m->last_stmt = id;
	return 0;
}

/* One binary parameter of type t at p[*off..n) as JSON into j (strings for every value, as
 * PostgreSQL's text parameters are recorded; {"binary": hex} for bytes that are not text).
 * 0, or -1 when it overruns. */
static int param_json(struct jbuf *j, uint8_t t, int unsig, const uint8_t *p, size_t n,
		      size_t *off)
{
	char v[128];
	size_t o = *off, w = 0;

	switch (t) {
	case 0x06: /* MYSQL_TYPE_NULL */
		jb_raw(j, "null");
		return 0;
	case 0x01:
		w = 1;
		break;
	case 0x02:
	case 0x0d:
		w = 2;
		break;
	case 0x03:
	case 0x09:
	case 0x04:
		w = 4;
		break;
	case 0x08:
	case 0x05:
		w = 8;
		break;
	case 0x07:
	case 0x0a:
	case 0x0c:
	case 0x0b: { /* a length byte, then its fields */
		uint8_t l;

		if (o >= n || (l = p[o]) > n - o - 1 || l > 12)
			return -1;
		if (t == 0x0b) {
			uint32_t days = l >= 8 ? my_le32(p + o + 2) : 0;

			snprintf(v, sizeof(v), "%s%u:%02u:%02u", l >= 8 && p[o + 1] ? "-" : "",
				 days * 24 + (l >= 8 ? p[o + 6] : 0), l >= 8 ? p[o + 7] : 0,
				 l >= 8 ? p[o + 8] : 0);
		} else {
			snprintf(v, sizeof(v), "%04u-%02u-%02u", l >= 4 ? my_le16(p + o + 1) : 0,
				 l >= 4 ? p[o + 3] : 0, l >= 4 ? p[o + 4] : 0);
			if (l >= 7)
				snprintf(v + 10, sizeof(v) - 10, " %02u:%02u:%02u", p[o + 5], p[o + 6],
					 p[o + 7]);
		}
		if (l >= 11 || (t == 0x0b && l >= 12))
			snprintf(v + strlen(v), sizeof(v) - strlen(v), ".%06u",
				 my_le32(p + o + 1 + l - 4));
		*off = o + 1 + l;
		jb_str_val(j, v);
		return 0;
	}
	default: { /* strings, decimals, blobs, JSON, ... */
		const uint8_t *sv;
		uint64_t sl;
		int text = 1;

		if (my_lenenc_str(p, n, &o, &sv, &sl))
			return -1;
		for (uint64_t i = 0; i < sl && text; i++)
			text = sv[i] != 0;
		if (text) {
			char *c = strndup((const char *)sv, (size_t)sl);

			if (!c)
				return -1;
			jb_str_val(j, c);
			free(c);
		} else {
			char *h = malloc((size_t)sl * 2 + 1);

			if (!h)
				return -1;
			for (uint64_t i = 0; i < sl; i++)
				snprintf(h + 2 * i, 3, "%02x", sv[i]);
			jb_obj_open(j);
			jb_kv_str(j, "binary", h);
			jb_obj_close(j);
			free(h);
		}
		*off = o;
		return 0;
	}
	}
	if (n - o < w)
		return -1;
	if (t == 0x04) {
		float f;

		memcpy(&f, p + o, 4);
		snprintf(v, sizeof(v), "%.9g", (double)f);
	} else if (t == 0x05) {
		double d;

		memcpy(&d, p + o, 8);
		snprintf(v, sizeof(v), "%.17g", d);
	} else {
		uint64_t u = 0;

		for (size_t i = 0; i < w; i++)
			u |= (uint64_t)p[o + i] << (8 * i);
		if (unsig)
			snprintf(v, sizeof(v), "%llu", (unsigned long long)u);
		else if (w == 8)
			snprintf(v, sizeof(v), "%lld", (long long)u);
		else
			snprintf(v, sizeof(v), "%lld",
				 (long long)((int64_t)(u << (64 - 8 * w)) >> (64 - 8 * w)));
	}
	*off = o + w;
	jb_str_val(j, v);
	return 0;
}

/* COM_STMT_EXECUTE's parameters as a JSON array for the record (malloc'd), or NULL when
 * there are none or they cannot be read. The types come with the packet when it says so, and
 * are kept for the executions that do not repeat them. */
static char *exec_params(struct my_stmt *t, const uint8_t *p, size_t n)
{
	size_t off = 10, nb = ((size_t)t->nparams + 7) / 8;
	struct jbuf j;
	char *out = NULL;

	if (!t->nparams || n - off < nb + 1)
		return NULL;
	if (p[off + nb]) {
		if (n - off - nb - 1 < 2u * t->nparams)
			return NULL;
		free(t->types);
		if (!(t->types = malloc(2u * t->nparams)))
			return NULL;
		memcpy(t->types, p + off + nb + 1, 2u * t->nparams);
		off += nb + 1 + 2u * t->nparams;
	} else {
		off += nb + 1;
	}
	if (!t->types)
		return NULL;
	jb_init(&j);
	jb_arr_open(&j);
	for (unsigned i = 0; i < t->nparams; i++) {
		if (p[10 + i / 8] & (1u << (i % 8))) {
			jb_raw(&j, "null");
		} else if (t->long_data && t->long_data[i]) {
			/* sent before in pieces (COM_STMT_SEND_LONG_DATA): not in this packet */
			jb_obj_open(&j);
			jb_kv_bool(&j, "long_data", 1);
			jb_obj_close(&j);
		} else if (param_json(&j, t->types[2 * i], t->types[2 * i + 1] & 0x80, p, n, &off)) {
			goto bad;
		}
	}
	if (off != n)
		goto bad; /* bytes the server does not read: no record says they were values */
	jb_arr_close(&j);
	if (!j.oom)
		out = strdup(jb_str(&j));
bad:
	jb_free(&j);
	return out;
}

int my_execute(struct my *m, const uint8_t *p, size_t len)
{
	struct my_stmt *t;
	char name[16];
	struct gate_stmt st = {0};
	struct gate_batch b = {.protocol = "extended", .st = &st, .n = 1};
	uint8_t seq = 0;
	char *params;
	int r;

	if (len < 10)
		return my_violation(m, "agent", "malformed COM_STMT_EXECUTE");
	if (!(t = my_stmt_find(m, my_le32(p + 1))))
		return refuse_errno(m, 1243, "HY000",
				    "hoop: unknown prepared statement handler given to "
				    "mysqld_stmt_execute");
	/* any execution closes the statement's cursor for hoopd, as for the client (libmariadb
	 * and libmysqlclient forget theirs when they send one), refused or not: a fetch hoopd
	 * then refuses is one the client would not send */
	my_cursor_close(t);
	t->cursor_withheld = 0;
	/* a read-only cursor, or none: clients send no other cursor type (libmysqlclient and
	 * libmariadb refuse to set one), MariaDB ignores FOR_UPDATE and SCROLLABLE without
	 * READ_ONLY, and the other bits mean nothing here (MySQL's PARAMETER_COUNT_AVAILABLE
	 * needs CLIENT_QUERY_ATTRIBUTES, which hoopd clears): what hoopd cannot name is refused */
	if (p[5] & ~MY_CURSOR_TYPE_READ_ONLY)
		return refuse_errno(m, MY_ER_NOT_SUPPORTED_YET, "42000",
				    "hoop: COM_STMT_EXECUTE flags other than a read-only cursor "
				    "(FOR_UPDATE, SCROLLABLE, ...) are not supported through hoopd");
	snprintf(name, sizeof(name), "%u", t->id);
	st.text = t->text;
	st.len = strlen(t->text);
	st.prepared = name;
	st.facts = t->facts;
	st.params_json = params = exec_params(t, p, len);
	b.text = st.text;
	b.len = st.len;
	r = gate_run(&m->g, &b);
	free(params);
	if (r == GATE_REFUSE)
		return my_refuse(m, m->g.seq, b.sqlstate, b.message);
	if (r != GATE_FORWARD)
		return -1;
	my_resp_begin(m, MR_RESULT, st.seq);
	m->first_seq = st.seq;
	m->nseq = 1;
	m->binary = 1;
	m->cursor_req = p[5] & MY_CURSOR_TYPE_READ_ONLY; /* it may open another */
	m->exec_pol_gen = hoopd.pol_gen;
	m->exec_stmt = t->id;
	if (!keeps_settings(t->facts))
		m->resettle = 1;
	{
		/* read as the server read it: under the settings of its PREPARE */
		struct myl_settings now = m->lex;

		m->lex = t->lex;
		my_mask_begin(m, t->text, st.len, t->facts, 1);
		m->lex = now;
	}
	if (t->long_data)
		memset(t->long_data, 0, t->nparams); /* the server forgets them after EXECUTE */
	return my_put_packet(&m->s->s.out, p, len, &seq);
}

/*
 * COM_STMT_FETCH: more rows of the cursor the statement's last execution opened. Not judged
 * again: it continues that execution, whose statement record allowed it, and its rows are
 * masked by the plan that execution made (kept with the statement) and recorded against it
 * (fetch_packet). hoopd answers alone, as the server would, for a statement it does not know
 * (1243) or one without a cursor open as hoopd followed it (1421: never executed with one,
 * its last row sent, closed, reset, executed again since), and when the rest of the cursor's
 * result is withheld: what is forwarded is always a fetch whose rows hoopd can read and mask.
 */
int my_fetch(struct my *m, const uint8_t *p, size_t len)
{
	struct my_stmt *t;
	char msg[200];
	uint8_t seq = 0;

	if (len != 9)
		return my_violation(m, "agent", "malformed COM_STMT_FETCH");
	if (!(t = my_stmt_find(m, my_le32(p + 1)))) {
		snprintf(msg, sizeof(msg),
			 "hoop: unknown prepared statement handler (%u) given to mysqld_stmt_fetch",
			 my_le32(p + 1));
		return refuse_errno(m, MY_ER_UNKNOWN_STMT_HANDLER, "HY000", msg);
	}
	if (t->cursor &&
	    (!my_mask_usable(t->cursor_mk) || t->cursor_pol_gen != hoopd.pol_gen)) {
		/* opened while masking was off (its rows were never planned for masking), or
		 * under a policy since replaced: what the new one denies or masks would come
		 * out of a cursor the old one judged and planned */
		my_cursor_close(t);
		t->cursor_withheld = 1;
	}
	if (t->cursor_withheld)
		return refuse_errno(m, MY_ER_UNKNOWN_ERROR, "HY000",
				    "hoop: the rest of this cursor's result is withheld (a value "
				    "could not be masked, or the policy changed since it was "
				    "opened); execute the statement again");
	if (!t->cursor) {
		snprintf(msg, sizeof(msg), "The statement (%u) has no open cursor", t->id);
		return refuse_errno(m, MY_ER_STMT_HAS_NO_OPEN_CURSOR, "HY000", msg);
	}
	my_resp_begin(m, MR_FETCH, t->cursor_seq);
	m->binary = 1;
	m->exec_stmt = t->id;
	my_mask_attach(m, t->cursor_mk);
	t->cursor_mk = NULL;
	return my_put_packet(&m->s->s.out, p, len, &seq);
}

/* ---- held statements (engine_ops) ---- */

int my_fail_held(void *st, const char *sqlstate, const char *message)
{
	struct my *m = st;
	int r;

	if (!m || !m->held)
		return -1;
	free(m->held);
	m->held = NULL;
	m->out_seq = 1;
	r = my_refuse(m, 0, sqlstate, message);
	sess_resume(m->s);
	return r;
}

int my_cancel_held(void *st)
{
	struct my *m = st;

	if (hold_ops)
		hold_ops->forget(m->s, "cancelled by KILL QUERY");
	return my_fail_held(m, "57014", "Query execution was interrupted");
}

static int my_resume_held(void *st, enum verdict v, const char *message)
{
	struct my *m = st;
	uint8_t *pkt;
	int r;

	if (!m || !m->held)
		return -1;
	pkt = m->held;
	m->held = NULL;
	m->s->held = 0;
	m->out_seq = 1;
	if (v == VERDICT_DENY)
		r = my_refuse(m, 0, "42501", message ? message : "hoop: statement denied");
	else
		r = my_query(m, pkt, m->held_len, 0);
	free(pkt);
	sess_resume(m->s);
	return r;
}

/* ---- engine entry points ---- */

static void *my_open(struct session *s)
{
	struct my *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->s = s;
	m->phase = MP_GREET;
	gate_init(&m->g, s, NULL, m);
	m->g.dialect = &dialect_mysql; /* its settings go with every call (my_ds) */
	return m;
}

static void my_end_info(void *st, struct ev_session_end *e)
{
	struct my *m = st;

	if (m->end_reason)
		e->reason = m->end_reason;
	e->statements = m->g.seq;
}

static void my_close(void *st, const char *why)
{
	struct my *m = st;

	if (m->held && hold_ops)
		hold_ops->forget(m->s, "session ended");
	my_mask_end(m);
	stmts_clear(m);
	gate_free(&m->g);
	free(m->prep_text);
	free(m->prep_facts);
	free(m->held_ok);
	free(m->login);
	free(m->held);
	free(m->params_json);
	free(m->cat);
	free(m->cat_buf);
	free(m->made);
	free(m);
}

/* The logical packet at the head of in: its payload in *pl (in the buffer itself when it is one
 * frame; else joined into memory the caller frees when *frames != 1). MYW_OK, MYW_MORE,
 * MYW_BAD (why says), or -1 without memory. */
static int take_packet(struct buf *in, size_t max, size_t *total, size_t *plen, uint8_t *seq,
		       unsigned *frames, uint8_t **pl, const char **why)
{
	int r = my_packet(buf_head(in), in->len, max, total, plen, seq, frames, why);

	if (r != MYW_OK)
		return r;
	if (*frames == 1) {
		*pl = buf_head(in) + 4;
		return MYW_OK;
	}
	if (!(*pl = malloc(*plen ? *plen : 1)))
		return -1;
	my_join(buf_head(in), *total, *pl);
	return MYW_OK;
}

static int agent_data(void *st, struct buf *in)
{
	struct my *m = st;
	struct session *s = m->s;

	while (in->len && !s->closing && !s->held) {
		size_t total, plen;
		uint8_t seq, *pl = NULL;
		unsigned frames;
		const char *why = "";
		int r;

		if (m->phase == MP_QUIT) {
			buf_consume(in, in->len);
			return 0;
		}
		/* the agent speaks when it is its turn: after the greeting, when authentication
		 * asks, and when the server has answered its last command */
		if (m->phase == MP_GREET || (m->phase == MP_AUTH && !m->agent_turn) || s->a.handshaking ||
		    (m->phase == MP_READY && m->resp != MR_NONE))
			return 0;
		r = take_packet(in, m->phase == MP_READY ? hoopd.o.max_message : MY_PRELOGIN_MAX,
				&total, &plen, &seq, &frames, &pl, &why);
		if (r == MYW_MORE)
			return 0;
		if (r == MYW_BAD) {
			m->out_seq = (uint8_t)(buf_head(in)[3] + 1); /* after the packet refused */
			return my_violation(m, "agent", why);
		}
		if (r < 0)
			return -1;
		/* what the agent reads next, were it hoopd's: after the packet's last frame */
		m->out_seq = (uint8_t)(seq + frames);
		if (m->phase == MP_LOGIN) {
			m->agent_in_left = in->len > total;
			r = agent_login(m, pl, plen, seq);
		} else if (m->phase == MP_AUTH) {
			m->agent_turn = 0;
			seq = (uint8_t)(seq + m->seq_shift);
			r = my_put_packet(&s->s.out, pl, plen, &seq); /* relayed, never kept */
		} else if (seq != 0) {
			r = my_violation(m, "agent", "command packet with a sequence id other than 0");
		} else {
			r = agent_command(m, pl, plen);
		}
		if (frames != 1)
			free(pl);
		if (r < 0)
			return -1;
		buf_consume(in, total);
	}
	return 0;
}

static int server_data(void *st, struct buf *in)
{
	struct my *m = st;
	struct session *s = m->s;

	while (in->len && !s->closing) {
		size_t total, plen;
		uint8_t seq, *pl = NULL;
		unsigned frames;
		const char *why = "";
		int r;

		r = take_packet(in, hoopd.o.max_message, &total, &plen, &seq, &frames, &pl, &why);
		if (r == MYW_MORE)
			return 0;
		if (r == MYW_BAD)
			return my_violation(m, "database", why);
		if (r < 0)
			return -1;
		switch (m->phase) {
		case MP_GREET:
			r = server_greeting(m, pl, plen, seq);
			break;
		case MP_AUTH:
			r = server_auth(m, pl, plen, seq);
			break;
		case MP_READY:
			r = my_server_answer(m, pl, plen);
			break;
		default:
			r = my_violation(m, "database", "data where none was asked for");
			break;
		}
		if (frames != 1)
			free(pl);
		if (r < 0)
			return -1;
		buf_consume(in, total);
	}
	return 0;
}

/* The settings query answered (my_server_answer): the login goes on, or the next command. */
int my_settings_done(struct my *m, int ok)
{
	if (!ok) {
		my_put_err(&m->s->a.out, m->held_ok ? (uint8_t)(m->held_ok_seq) : 1,
			   MY_ER_UNKNOWN_ERROR, "HY000",
			   "hoop: the server did not say its sql_mode and character set; hoopd "
			   "cannot read this session's statements");
		m->end_reason = "settings unknown";
		sess_close(m->s, "settings query failed");
		return -1;
	}
	if (m->held_ok) {
		uint8_t seq = m->held_ok_seq;
		int r = my_put_packet(&m->s->a.out, m->held_ok, m->held_ok_len, &seq);

		free(m->held_ok);
		m->held_ok = NULL;
		hlog_conn(HLOG_DEBUG, m->s->id, m->s->peer,
			  "logged in as %s to %s (%s), sql_mode read", m->user,
			  m->db[0] ? m->db : "no database", m->server_version);
		return r;
	}
	return 0;
}

/* The answer to the command in flight is complete. */
int my_resp_done(struct my *m)
{
	m->resp = MR_NONE;
	m->binary = 0;
	my_mask_end(m);
	if (m->reset_pending) {
		m->reset_pending = 0;
		stmts_clear(m);
	}
	if (m->resettle) {
		m->resettle = 0;
		return send_settings_query(m);
	}
	return 0;
}

static void my_tls_done(void *st, int agent_side, int ok)
{
	struct my *m = st;

	if (ok && !agent_side && m->login) {
		if (send_login(m))
			sess_close(m->s, "out of memory");
		return;
	}
	if (ok)
		return; /* the agent's TLS is up: its login comes next */
	if (!agent_side)
		my_put_err(&m->s->a.out, (uint8_t)(2 + m->agent_tls), MY_ER_HANDSHAKE_ERROR, "08S01",
			   "hoop: TLS handshake with the database failed");
	m->end_reason = agent_side ? "agent TLS handshake failed" : "upstream TLS handshake failed";
	sess_close(m->s, m->end_reason);
}

static void my_status(void *st, struct jbuf *j)
{
	struct my *m = st;

	jb_kv_str(j, "db_user", m->user);
	jb_kv_str(j, "database", m->db);
	jb_kv_str(j, "server_version", m->server_version);
	jb_kv_uint(j, "connection_id", m->conn_id);
	jb_kv_uint(j, "statements", m->g.seq);
	jb_kv_int(j, "prepared_statements", m->nstmts);
}

static size_t my_agent_cap(void *st)
{
	struct my *m = st;

	if (m->phase == MP_LOGIN && !m->agent_tls) {
		/*
		 * The first packet exactly, not a byte more: after an SSLRequest a client sends
		 * its TLS ClientHello at once, without waiting for an answer, and those bytes must
		 * stay in the socket for the TLS layer (read here, they would be lost to it). The
		 * header first, then its payload.
		 */
		const struct buf *in = &m->s->a.in;
		const uint8_t *h = buf_head(in);
		size_t n;

		if (in->len < 4)
			return 4;
		n = (size_t)h[0] | (size_t)h[1] << 8 | (size_t)h[2] << 16;
		return n > MY_PRELOGIN_MAX ? MY_PRELOGIN_MAX + 4 : n + 4;
	}
	return m->phase == MP_READY ? 0 : MY_PRELOGIN_MAX + 4;
}

static int my_partial(void *st, const struct buf *in, int agent_side)
{
	size_t total, plen;
	uint8_t seq;
	unsigned frames;
	const char *why;

	(void)st;
	(void)agent_side;
	if (!in->len)
		return 0;
	return my_packet(buf_head(in), in->len, SIZE_MAX, &total, &plen, &seq, &frames, &why) ==
	       MYW_MORE;
}

/* A MySQL client reads an ERR packet in place of the greeting as the server's refusal. */
static int my_refuse_conn(struct buf *out, const char *sqlstate, const char *message)
{
	const char *ms;
	unsigned e = my_errno_for(sqlstate, &ms);

	return my_put_err(out, 0, e, ms, message);
}

static char *my_held_runs(void *st, const char *text, size_t len)
{
	(void)st;
	(void)text;
	(void)len;
	return NULL; /* SQL EXECUTE's texts are not followed yet (docs/mysql.md) */
}

const struct engine_ops mysql_engine = {
	.name = "mysql",
	.open = my_open,
	.close = my_close,
	.login = 1,
	.end_info = my_end_info,
	.agent_data = agent_data,
	.server_data = server_data,
	.tls_done = my_tls_done,
	.status = my_status,
	.agent_cap = my_agent_cap,
	.partial = my_partial,
	.refuse_conn = my_refuse_conn,
	.resume_held = my_resume_held,
	.fail_held = my_fail_held,
	.cancel_held = my_cancel_held,
	.held_runs = my_held_runs,
};
