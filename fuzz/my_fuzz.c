/*
 * The harness both MySQL engine fuzz targets share (see my_fuzz.h): relay stubs, session
 * fixture, framing checks, the client's reading of the agent's side, audit trail stub,
 * masking policy, input reader.
 */
#include "my_fuzz.h"

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
#include "daemon.h"
#include "json.h"
#include "log.h"
#include "mask_live.h"
#include "record.h"

struct hoopd hoopd;
int mf_trace;
struct mf_stubs mf;
struct mf_events mf_events;

static int g_fake_ssl_obj;
SSL *const mf_fake_ssl = (SSL *)&g_fake_ssl_obj;

/* ---- the input ---- */

uint8_t mf_pick(struct mf_in *in)
{
	if (!in->n)
		return 0;
	in->n--;
	return in->p[in->n];
}

size_t mf_chunk(struct mf_in *in)
{
	uint8_t d = mf_pick(in);

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

size_t mf_take(struct mf_in *in, size_t max, const uint8_t **out)
{
	size_t n = max < in->n ? max : in->n;

	*out = in->p;
	in->p += n;
	in->n -= n;
	return n;
}

/* ---- the relay, reduced to what the engine calls ---- */

#define MF_MAX_SESSIONS 4
static struct mf_sess *g_sessions[MF_MAX_SESSIONS];

void sess_close(struct session *s, const char *why)
{
	if (!s->closing) {
		s->closing = 1;
		snprintf(s->close_why, sizeof(s->close_why), "%s", why);
	}
}

int sess_tls_agent(struct session *s)
{
	if (mf.agent_tls_result == 0) {
		mf.agent_tls_started++;
		s->a.handshaking = 1;
	}
	return mf.agent_tls_result;
}

int sess_tls_server(struct session *s, SSL_CTX *ctx, const char *sni)
{
	if (mf.server_tls_result == 0) {
		mf.server_tls_started++;
		s->s.handshaking = 1;
	} else {
		mf.server_tls_refused++;
	}
	return mf.server_tls_result;
}

void sess_set_login(struct session *s, const char *user, const char *database)
{
	snprintf(s->user, sizeof(s->user), "%s", user);
	snprintf(s->database, sizeof(s->database), "%s", database);
}

int sess_record_change_user(struct session *s, const char *user, const char *database,
			    const char *plugin)
{
	return ev_change_user(sess_agent(s), user, database, plugin);
}

void sess_change_login(struct session *s, const char *user, const char *database)
{
	snprintf(s->user, sizeof(s->user), "%s", user);
	snprintf(s->database, sizeof(s->database), "%s", database);
	s->login_changed = 1;
}

void sess_record_start(struct session *s, const struct ev_session_start *e)
{
	REQUIRE(!s->recorded); /* once */
	s->recorded = 1;
	mf_events.sessions_started++;
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

int catalog_for(struct session *s, const char *db_user, const char *database, struct catbox **out)
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
	for (int i = 0; i < MF_MAX_SESSIONS; i++)
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
	return mf.agent_tls;
}

enum upstream_tls tls_upstream_mode(const struct session *s)
{
	return mf.upstream;
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

static int g_srv_sock[2] = {-1, -1};

void mf_open(struct mf_sess *f, const char *id)
{
	int i;

	uint8_t stale[64];

	mf_server_socket_drain(stale, sizeof(stale)); /* an earlier session's SSLRequest */
	memset(f, 0, sizeof(*f));
	snprintf(f->s.id, sizeof(f->s.id), "%s", id);
	snprintf(f->s.peer, sizeof(f->s.peer), "127.0.0.1:40000");
	snprintf(f->s.dst, sizeof(f->s.dst), "127.0.0.1:3306");
	f->s.a.fd = -1;
	f->s.s.fd = g_srv_sock[0];
	f->s.eng = &mysql_engine;
	f->e = mysql_engine.open(&f->s);
	REQUIRE(f->e != NULL);
	f->s.est = f->e;
	for (i = 0; i < MF_MAX_SESSIONS && g_sessions[i]; i++)
		;
	REQUIRE(i < MF_MAX_SESSIONS);
	g_sessions[i] = f;
}

static void check_json(const char *text, size_t n, struct json_object **out);

void mf_close(struct mf_sess *f)
{
	struct jbuf j;

	for (int i = 0; i < MF_MAX_SESSIONS; i++)
		if (g_sessions[i] == f)
			g_sessions[i] = NULL;
	/* What `hoopctl status` would show about it is valid JSON too. */
	jb_init(&j);
	jb_obj_open(&j);
	mysql_engine.status(f->e, &j);
	jb_obj_close(&j);
	REQUIRE(!j.oom);
	check_json(j.s, j.len, NULL);
	jb_free(&j);
	{
		/* As the relay ends a session: the engine's part of session_end, close, record. */
		struct ev_session_end e = {.reason = "fuzz input done"};

		if (f->s.recorded)
			mysql_engine.end_info(f->e, &e);
		mysql_engine.close(f->e, "fuzz input done");
		if (f->s.recorded)
			ev_session_end(sess_agent(&f->s), &e);
	}
	f->e = NULL;
	buf_free(&f->s.a.in);
	buf_free(&f->s.a.out);
	buf_free(&f->s.s.in);
	buf_free(&f->s.s.out);
}

size_t mf_server_socket_drain(uint8_t *out, size_t cap)
{
	uint8_t c[256];
	size_t total = 0;
	ssize_t r;

	while ((r = recv(g_srv_sock[1], c, sizeof(c), MSG_DONTWAIT)) > 0) {
		for (ssize_t i = 0; i < r; i++)
			if (total + (size_t)i < cap)
				out[total + (size_t)i] = c[i];
		total += (size_t)r;
	}
	REQUIRE(r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
	return total;
}

void mf_dump(const char *what, const uint8_t *p, size_t len, uint8_t seq)
{
	if (!mf_trace)
		return;
	fprintf(stderr, "%s: seq %u, %zu bytes: ", what, seq, len);
	for (size_t i = 0; i < len && i < 120; i++)
		fprintf(stderr, p[i] >= 32 && p[i] < 127 ? "%c" : "\\x%02x", p[i]);
	fprintf(stderr, "%s\n", len > 120 ? "..." : "");
}

/* ---- framing ---- */

static uint32_t le24(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16;
}

int mf_packets(struct buf *b, void (*fn)(void *arg, const uint8_t *p, size_t len, uint8_t seq),
	       void *arg)
{
	int n = 0;

	while (b->len) {
		const uint8_t *h = buf_head(b);
		size_t off = 0, plen = 0, frames = 0;
		uint8_t *joined = NULL;

		/* whole frames, one logical packet */
		for (;;) {
			uint32_t l;

			if (b->len - off < 4)
				fprintf(stderr,
					"my fuzz: a partial packet header, %zu bytes left\n",
					b->len - off);
			REQUIRE(b->len - off >= 4);
			l = le24(h + off);
			if (b->len - off - 4 < l)
				fprintf(stderr, "my fuzz: a packet of %u bytes with %zu there\n", l,
					b->len - off - 4);
			REQUIRE(b->len - off - 4 >= l);
			REQUIRE(h[off + 3] ==
				(uint8_t)(h[3] + frames)); /* continuations numbered */
			off += 4 + l;
			plen += l;
			frames++;
			if (l < MY_FRAME_MAX)
				break;
		}
		if (frames > 1) {
			size_t o = 0, w = 0;

			joined = malloc(plen ? plen : 1);
			REQUIRE(joined != NULL);
			while (o < off) {
				uint32_t l = le24(h + o);

				memcpy(joined + w, h + o + 4, l);
				w += l;
				o += 4 + l;
			}
		}
		if (fn)
			fn(arg, joined ? joined : h + 4, plen, h[3]);
		free(joined);
		buf_consume(b, off);
		n++;
	}
	return n;
}

/* ---- the client: what the agent reads ---- */

enum { CR_FIRST = 0, CR_COLS, CR_COLEOF, CR_ROWS, CR_PREP };

void mf_client_init(struct mf_client *c, int trusted, int strict, int marker)
{
	memset(c, 0, sizeof(*c));
	c->trusted = trusted;
	c->strict = strict;
	c->marker = marker;
}

static void columns_free(struct mf_client *c)
{
	free(c->types);
	free(c->flags);
	free(c->phi);
	c->types = NULL;
	c->flags = NULL;
	c->phi = NULL;
}

/* The client forgets the statement's cursor (an execution, COM_STMT_RESET or CLOSE, its last
 * row; id ~0: every one, COM_RESET_CONNECTION). */
static void cursor_forget(struct mf_client *c, uint32_t id)
{
	for (int i = 0; i < c->ncursors; i++) {
		struct mf_cursor *k = &c->cursors[i];

		if (id != ~0u && k->id != id)
			continue;
		free(k->types);
		free(k->flags);
		free(k->phi);
		*k = c->cursors[--c->ncursors];
		i--;
	}
}

static struct mf_cursor *cursor_find(struct mf_client *c, uint32_t id)
{
	for (int i = 0; i < c->ncursors; i++)
		if (c->cursors[i].id == id)
			return &c->cursors[i];
	return NULL;
}

/* The result just read opened a cursor: its columns are the cursor's now. */
static void cursor_keep(struct mf_client *c, uint32_t id)
{
	struct mf_cursor *k;

	cursor_forget(c, id);
	k = realloc(c->cursors, (size_t)(c->ncursors + 1) * sizeof(*k));
	REQUIRE(k != NULL);
	c->cursors = k;
	k = &c->cursors[c->ncursors++];
	k->id = id;
	k->ncols = c->ncols;
	k->types = c->types;
	k->flags = c->flags;
	k->phi = c->phi;
	c->types = NULL;
	c->flags = NULL;
	c->phi = NULL;
	c->ncols = 0;
}

void mf_client_free(struct mf_client *c)
{
	columns_free(c);
	cursor_forget(c, ~0u);
	free(c->cursors);
	c->cursors = NULL;
}

int mf_client_idle(const struct mf_client *c)
{
	return c->qn == 0 && !c->in_answer;
}

static void expect(struct mf_client *c, uint8_t want, int binary, int phi)
{
	struct mf_answer *a;

	REQUIRE(c->qn < MF_MAX_PENDING); /* hoopd takes one command at a time */
	a = &c->q[(c->qh + c->qn++) % MF_MAX_PENDING];
	a->want = want;
	a->binary = (uint8_t)binary;
	a->reads_phi = (uint8_t)phi;
}

/* A length-encoded integer (the client's own reading, not mywire.c's): 0, or -1. */
static int rd_lenenc(const uint8_t *p, size_t n, size_t *off, uint64_t *v)
{
	size_t o = *off, w;

	if (o >= n)
		return -1;
	switch (p[o]) {
	case 0xfb:
	case 0xff:
		return -1;
	case 0xfc:
		w = 2;
		break;
	case 0xfd:
		w = 3;
		break;
	case 0xfe:
		w = 8;
		break;
	default:
		*v = p[o];
		*off = o + 1;
		return 0;
	}
	if (n - o - 1 < w)
		return -1;
	*v = 0;
	for (size_t i = 0; i < w; i++)
		*v |= (uint64_t)p[o + 1 + i] << (8 * i);
	*off = o + 1 + w;
	return 0;
}

static int rd_str(const uint8_t *p, size_t n, size_t *off, const uint8_t **s, uint64_t *l)
{
	size_t o = *off;

	if (rd_lenenc(p, n, &o, l) || *l > n - o)
		return -1;
	*s = p + o;
	*off = o + (size_t)*l;
	return 0;
}

/* An OK packet (0x00, or 0xfe ending rows under CLIENT_DEPRECATE_EOF) as a client reads it:
 * affected rows, last insert id, status, warnings; its status, or -1 when malformed. */
static int ok_status(const uint8_t *p, size_t len)
{
	size_t off = 1;
	uint64_t a, id;

	if (!len || (p[0] != 0x00 && p[0] != 0xfe))
		return -1;
	if (rd_lenenc(p, len, &off, &a) || rd_lenenc(p, len, &off, &id) || len - off < 2)
		return -1;
	return (int)(p[off] | p[off + 1] << 8);
}

/* An EOF packet: 0xfe, shorter than 9 bytes; its status (0 when it has none). */
static int is_eof(const uint8_t *p, size_t len)
{
	return len && len < 9 && p[0] == 0xfe;
}

static int eof_status(const uint8_t *p, size_t len)
{
	return len >= 5 ? p[3] | p[4] << 8 : 0;
}

/* An ERR packet as a client reads it: 0xff, errno, and "#" plus 5 bytes of SQLSTATE when it
 * says it has one. */
static int is_err(const uint8_t *p, size_t len)
{
	return len && p[0] == 0xff;
}

static void check_err(const uint8_t *p, size_t len)
{
	if (len < 3 || (len > 3 && p[3] == '#' && len < 9))
		fprintf(stderr, "my fuzz: to the agent: a malformed ERR packet of %zu bytes\n",
			len);
	REQUIRE(len >= 3);
	REQUIRE(len == 3 || p[3] != '#' || len >= 9);
}

/* An OK's status as the client reads it; one it cannot read is a bug (fixed bug 1: read as
 * status 0, as hoopd does, when steering around it). */
static int ok_read(const uint8_t *p, size_t len, const char *what)
{
	int st = ok_status(p, len);

	if (st < 0) {
		fprintf(stderr, "my fuzz: to the agent: %s (%zu bytes, first 0x%02x)\n", what, len,
			len ? p[0] : 0);
		REQUIRE(!"an OK packet the client can read");
	}
	return st < 0 ? 0 : st;
}

static int ieq(const uint8_t *s, uint64_t l, const char *w)
{
	return l == strlen(w) && !strncasecmp((const char *)s, w, l);
}

/* A column definition (Protocol::ColumnDefinition41); field_list: COM_FIELD_LIST's, which may
 * end with a default value. 0 with its type, flags and whether it is patients.ssn; -1. */
static int coldef(const uint8_t *p, size_t len, int field_list, uint8_t *type, uint16_t *flags,
		  uint8_t *phi)
{
	const uint8_t *s[6];
	uint64_t l[6], fixed;
	size_t off = 0;

	for (int i = 0; i < 6; i++)
		if (rd_str(p, len, &off, &s[i], &l[i]))
			return -1;
	if (rd_lenenc(p, len, &off, &fixed) || fixed != 0x0c || len - off < 12)
		return -1;
	*type = p[off + 6];
	*flags = (uint16_t)(p[off + 7] | p[off + 8] << 8);
	/* patients.ssn by its definition (any case: MySQL's column names are case-insensitive;
	 * fixed bug 6), or computed (no origin): masked either way */
	if (FZ_KNOWN_BUGS)
		*phi = (l[3] == 8 && !memcmp(s[3], "patients", 8) && l[5] == 3 &&
			!memcmp(s[5], "ssn", 3)) ||
		       !l[3] || !l[5];
	else
		*phi = (ieq(s[3], l[3], "patients") && ieq(s[5], l[5], "ssn")) || !l[3] || !l[5];
	off += 12;
	if (field_list && off < len) {
		const uint8_t *d;
		uint64_t dl;

		if (p[off] == 0xfb)
			off++;
		else if (rd_str(p, len, &off, &d, &dl))
			return -1;
	}
	return off == len ? 0 : -1;
}

static void no_marker(const struct mf_client *c, const uint8_t *v, size_t n, int phi)
{
	if (!c->marker || !phi)
		return;
	if (memmem(v, n, MF_MARKER, strlen(MF_MARKER)))
		fprintf(stderr, "my fuzz: the agent got an unmasked ssn: %.*s\n", (int)n, v);
	REQUIRE(!memmem(v, n, MF_MARKER, strlen(MF_MARKER)));
}

/* A text row: ncols values, each NULL (0xfb) or a length-encoded string. */
static int text_row(const struct mf_client *c, const struct mf_answer *a, const uint8_t *p,
		    size_t len)
{
	size_t off = 0;

	for (uint64_t i = 0; i < c->ncols; i++) {
		const uint8_t *v;
		uint64_t l;

		if (off < len && p[off] == 0xfb) {
			off++;
			continue;
		}
		if (rd_str(p, len, &off, &v, &l))
			return -1;
		no_marker(c, v, (size_t)l, a->reads_phi && c->phi[i]);
	}
	return off == len ? 0 : -1;
}

/* A binary row: 0x00, the NULL bitmap (offset 2), each value in its column type's form. */
static int binary_row(const struct mf_client *c, const struct mf_answer *a, const uint8_t *p,
		      size_t len)
{
	size_t nb = (size_t)(c->ncols + 7 + 2) / 8, off = 1 + nb;

	if (!len || p[0] != 0x00 || len - 1 < nb)
		return -1;
	for (uint64_t i = 0; i < c->ncols; i++) {
		size_t w = 0;

		if (p[1 + (i + 2) / 8] & (1u << ((i + 2) % 8)))
			continue;
		switch (c->types[i]) {
		case 0x06: /* NULL */
			break;
		case 0x01:
			w = 1;
			break;
		case 0x02:
		case 0x0d:
			w = 2;
			break;
		case 0x03:
		case 0x04:
		case 0x09:
			w = 4;
			break;
		case 0x05:
		case 0x08:
			w = 8;
			break;
		case 0x07:
		case 0x0a:
		case 0x0c:
		case 0x0b:
			if (off >= len)
				return -1;
			w = 1 + (size_t)p[off];
			break;
		case 0x00:
		case 0x0f:
		case 0x10:
		case 0xf5:
		case 0xf6:
		case 0xf7:
		case 0xf8:
		case 0xf9:
		case 0xfa:
		case 0xfb:
		case 0xfc:
		case 0xfd:
		case 0xfe:
		case 0xff: {
			const uint8_t *v;
			uint64_t l;

			if (rd_str(p, len, &off, &v, &l))
				return -1;
			no_marker(c, v, (size_t)l, a->reads_phi && c->phi[i]);
			continue;
		}
		default:
			return -1;
		}
		if (len - off < w)
			return -1;
		off += w;
	}
	return off == len ? 0 : -1;
}

static void answer_done(struct mf_client *c)
{
	c->in_answer = 0;
	c->qh = (c->qh + 1) % MF_MAX_PENDING;
	c->qn--;
	c->answers++;
	if (c->quit && !c->qn)
		c->phase = MC_GONE;
}

static void columns_begin(struct mf_client *c, uint64_t n)
{
	columns_free(c);
	c->ncols = n;
	c->coli = 0;
	c->types = calloc(n ? n : 1, 1);
	c->flags = calloc(n ? n : 1, sizeof(*c->flags));
	c->phi = calloc(n ? n : 1, 1);
	REQUIRE(c->types && c->flags && c->phi);
}

#define BAD(what)                                                                                  \
	do {                                                                                       \
		fprintf(stderr, "my fuzz: to the agent: %s (%zu bytes, first 0x%02x)\n", what,     \
			len, len ? p[0] : 0);                                                      \
		REQUIRE(!what);                                                                    \
	} while (0)

/* One packet of the answer at the head of the queue. */
static void answer_packet(struct mf_client *c, const uint8_t *p, size_t len)
{
	struct mf_answer *a = &c->q[c->qh];
	uint8_t t;
	uint16_t fl;
	uint8_t ph;
	int st;

	/* an ERR ends any answer, wherever it comes, as libmariadb reads it (fixed bug 5) */
	if (is_err(p, len) && a->want != MW_ONE) {
		check_err(p, len);
		c->errs++;
		answer_done(c);
		return;
	}
	switch (a->want) {
	case MW_OK:
		if (!len || p[0] != 0x00)
			BAD("neither OK nor ERR where one belongs");
		ok_read(p, len, "a malformed OK packet");
		answer_done(c);
		return;
	case MW_ONE:
		answer_done(c);
		return;
	case MW_EOF:
		/* fixed bug 4 */
		if (!is_eof(p, len) && !(c->deprecate_eof && len && p[0] == 0xfe))
			BAD("COM_SET_OPTION answered with neither EOF nor ERR");
		if (!is_eof(p, len) && len && p[0] == 0xfe)
			ok_read(p, len, "a malformed OK answering COM_SET_OPTION");
		answer_done(c);
		return;
	case MW_FIELDS:
		if (c->deprecate_eof ? (len && p[0] == 0xfe && len < MY_FRAME_MAX)
				     : is_eof(p, len)) {
			if (c->deprecate_eof && !FZ_KNOWN_BUGS) /* fixed bug 8 */
				ok_read(p, len, "a malformed OK ending COM_FIELD_LIST");
			answer_done(c);
			return;
		}
		/* hoopd passes these on unread (masking reads none of them) */
		if (c->trusted && coldef(p, len, 1, &t, &fl, &ph))
			BAD("a malformed column definition in COM_FIELD_LIST's answer");
		return;
	case MW_PREPARE:
		if (c->rs == CR_FIRST) {
			if (len < 12 || p[0] != 0x00)
				BAD("a malformed COM_STMT_PREPARE OK");
			c->stmt_id =
			    (uint32_t)(p[1] | p[2] << 8 | p[3] << 16 | (uint32_t)p[4] << 24);
			c->prep_nc = (uint16_t)(p[5] | p[6] << 8);
			c->prep_np = (uint16_t)(p[7] | p[8] << 8);
			c->stmt_params = c->prep_np;
			c->have_stmt = 1;
			c->prep_left = (uint32_t)c->prep_np + (c->prep_np && !c->deprecate_eof) +
				       c->prep_nc + (c->prep_nc && !c->deprecate_eof);
			c->prep_k = 0;
			c->rs = CR_PREP;
			if (!c->prep_left)
				answer_done(c);
			return;
		}
		/* the parameters' definitions, EOF, the columns', EOF (no EOFs under
		 * DEPRECATE_EOF, none after an empty list); hoopd counts them, reading none */
		if (c->trusted) {
			uint32_t k = c->prep_k, eof1 = c->prep_np && !c->deprecate_eof;

			if (k == c->prep_np && eof1) {
				if (!is_eof(p, len))
					BAD("no EOF after COM_STMT_PREPARE's parameters");
			} else if (k >= c->prep_np + eof1 + c->prep_nc) {
				if (!is_eof(p, len))
					BAD("no EOF after COM_STMT_PREPARE's columns");
			} else if (coldef(p, len, 0, &t, &fl, &ph)) {
				BAD("a malformed definition in COM_STMT_PREPARE's answer");
			}
		}
		c->prep_k++;
		if (!--c->prep_left)
			answer_done(c);
		return;
	case MW_RESULT:
		break;
	case MW_FETCH: {
		struct mf_cursor *k = cursor_find(c, a->stmt);
		uint64_t nc = c->ncols;
		uint8_t *ty = c->types, *phi = c->phi;
		int bad;

		if (c->deprecate_eof ? (len && p[0] == 0xfe && len < MY_FRAME_MAX)
				     : is_eof(p, len)) {
			st = c->deprecate_eof
				 ? ok_read(p, len, "a malformed OK ending fetched rows")
				 : eof_status(p, len);
			if (!(st & 0x40) || (st & 0x80)) /* CURSOR_EXISTS, LAST_ROW_SENT */
				cursor_forget(c, a->stmt);
			answer_done(c);
			return;
		}
		if (!k)
			BAD("fetched rows of a statement without an open cursor");
		c->rows++;
		/* read with the cursor's columns */
		c->ncols = k->ncols, c->types = k->types, c->phi = k->phi;
		bad = binary_row(c, a, p, len);
		c->ncols = nc, c->types = ty, c->phi = phi;
		if (bad && c->strict)
			BAD("a malformed fetched row");
		return;
	}
	default:
		REQUIRE(!"an answer of a known kind");
	}
	switch (c->rs) {
	case CR_FIRST: {
		size_t off = 0;
		uint64_t n;

		if (len && p[0] == 0x00) {
			st = ok_read(p, len, "a malformed OK packet");
			if (!(st & MY_SERVER_MORE_RESULTS))
				answer_done(c);
			return;
		}
		if (rd_lenenc(p, len, &off, &n) || off != len || !n || n > MF_MAX_COLS)
			BAD("a malformed result set header");
		columns_begin(c, n);
		c->rs = CR_COLS;
		return;
	}
	case CR_COLS:
		if (coldef(p, len, 0, &c->types[c->coli], &c->flags[c->coli], &c->phi[c->coli]) &&
		    c->strict)
			BAD("a malformed column definition");
		if (++c->coli == c->ncols)
			c->rs = c->deprecate_eof ? CR_ROWS : CR_COLEOF;
		return;
	case CR_COLEOF:
		if (!is_eof(p, len))
			BAD("no EOF after the column definitions");
		c->rs = CR_ROWS;
		if (a->binary && (eof_status(p, len) & 0x40)) { /* a cursor: no rows now */
			cursor_keep(c, a->stmt);
			c->rs = CR_FIRST;
			answer_done(c);
		}
		return;
	case CR_ROWS:
		if (c->deprecate_eof ? (len && p[0] == 0xfe && len < MY_FRAME_MAX)
				     : is_eof(p, len)) {
			st = c->deprecate_eof
				 ? ok_read(p, len, "a malformed OK ending a result set")
				 : eof_status(p, len);
			c->rs = CR_FIRST;
			if (a->binary &&
			    (st & 0x40)) /* DEPRECATE_EOF: a cursor, in place of rows */
				cursor_keep(c, a->stmt);
			if (!(st & MY_SERVER_MORE_RESULTS))
				answer_done(c);
			return;
		}
		c->rows++;
		if ((a->binary ? binary_row(c, a, p, len) : text_row(c, a, p, len)) && c->strict)
			BAD("a malformed row");
		return;
	}
}

/* The server's greeting, as hoopd passes it on. */
static void greeting(struct mf_client *c, const uint8_t *p, size_t len)
{
	size_t v, off;
	uint32_t caps, allowed = MY_CAPS_ALLOWED | (mf.agent_tls ? MY_CLIENT_SSL : 0);

	if (!len || p[0] != 10)
		BAD("a greeting that is not protocol 10");
	v = strnlen((const char *)p + 1, len - 1);
	REQUIRE(v < len - 1);
	off = 1 + v + 1;
	REQUIRE(len - off >= 4 + 8 + 1 + 2 + 1 + 2 + 2 + 1 + 10);
	off += 4 + 8 + 1;
	caps = (uint32_t)(p[off] | p[off + 1] << 8) | (uint32_t)(p[off + 5] | p[off + 6] << 8)
							  << 16;
	if (caps & ~allowed)
		fprintf(stderr,
			"my fuzz: the greeting offers capabilities 0x%x hoopd does not follow\n",
			caps & ~allowed);
	REQUIRE(!(caps & ~allowed));
	if (!(caps & MY_CLIENT_LONG_PASSWORD)) { /* MariaDB: its extended capabilities, none */
		const uint8_t *x = p + off + 2 + 1 + 2 + 2 + 1 + 6;

		REQUIRE(!x[0] && !x[1] && !x[2] && !x[3]);
	}
	c->srv_caps = caps;
	c->got_greeting = 1;
	c->phase = MC_LOGIN;
}

struct recv_ctx {
	struct mf_client *c;
	int closing;
	size_t left; /* packets still to read in this batch */
};

static void client_recv(void *arg, const uint8_t *p, size_t len, uint8_t seq)
{
	struct recv_ctx *x = arg;
	struct mf_client *c = x->c;

	x->left--;
	mf_dump("to the agent", p, len, seq);
	switch (c->phase) {
	case MC_GREETING:
		if (is_err(p, len)) { /* refused before any login */
			check_err(p, len);
			c->phase = MC_GONE;
			return;
		}
		REQUIRE(seq == 0 || !c->trusted);
		greeting(c, p, len);
		c->next_seq = 1;
		return;
	case MC_LOGIN:
	case MC_AUTH:
		/* hoopd's own refusal of the login, or the server's answers relayed: numbered
		 * after the agent's last packet, or a client reads "packets out of order" in place
		 * of it (fixed bugs 3 and 7) */
		if (is_err(p, len)) {
			if (!(FZ_KNOWN_BUGS && c->phase == MC_AUTH)) /* fixed bug 9 */
				check_err(p, len);
			if (seq != c->next_seq && c->seq_sane && c->trusted && !FZ_KNOWN_BUGS)
				fprintf(stderr,
					"my fuzz: an ERR in the login numbered %u, not %u: %.*s\n",
					seq, c->next_seq, (int)len, (const char *)p);
			REQUIRE(seq == c->next_seq || !c->seq_sane || !c->trusted || FZ_KNOWN_BUGS);
			c->phase = MC_GONE;
			return;
		}
		REQUIRE(c->phase == MC_AUTH);
		/* numbered on from the agent's packets, when the agent numbered those as a client
		 * does (hoopd relays what it gets; it need not repair an agent's numbering) */
		if (seq != c->next_seq && c->seq_sane && c->trusted)
			fprintf(stderr, "my fuzz: to the agent in authentication: seq %u, not %u\n",
				seq, c->next_seq);
		REQUIRE(seq == c->next_seq || !c->seq_sane || !c->trusted);
		c->next_seq = (uint8_t)(seq + 1);
		if (len && p[0] == 0x00) {
			ok_read(p, len, "a malformed OK ending the login");
			c->phase = MC_READY;
			c->logged_in = 1;
		} else if (!(len == 2 && p[0] == 0x01 && p[1] == 0x03)) {
			c->auth_turns++; /* an auth switch or more data: the agent's turn */
		}
		return;
	case MC_READY:
		break;
	case MC_GONE:
		/* after COM_QUIT, or after a refusal: only hoopd's last ERR of a closing session */
		REQUIRE(x->closing && is_err(p, len) && x->left == 0);
		check_err(p, len);
		return;
	}
	if (!c->qn) {
		if (!(x->closing && is_err(p, len) && x->left == 0))
			fprintf(stderr,
				"my fuzz: to the agent: a packet (0x%02x, %zu bytes) with no "
				"command in flight\n",
				len ? p[0] : 0, len);
		REQUIRE(x->closing && is_err(p, len) && x->left == 0);
		check_err(p, len);
		/* hoopd's ERR refusing a command it could not take (fixed bug 7) */
		if (c->refused && seq != c->refused_seq && c->refused_sane && c->trusted &&
		    !FZ_KNOWN_BUGS)
			fprintf(stderr,
				"my fuzz: an ERR refusing a command numbered %u, not %u: %.*s\n",
				seq, c->refused_seq, (int)len, (const char *)p);
		REQUIRE(!c->refused || seq == c->refused_seq || !c->refused_sane || !c->trusted ||
			FZ_KNOWN_BUGS);
		c->phase = MC_GONE;
		return;
	}
	if (!c->in_answer) {
		c->in_answer = 1;
		c->rs = CR_FIRST;
		c->next_seq = 1;
	}
	/* answers are numbered from 1 (the command was 0); hoopd's own last ERR of a closing
	 * session may say anything */
	if (seq != c->next_seq && !(x->closing && is_err(p, len) && x->left == 0))
		fprintf(stderr, "my fuzz: to the agent: seq %u where %u belongs\n", seq,
			c->next_seq);
	REQUIRE(seq == c->next_seq || (x->closing && is_err(p, len) && x->left == 0));
	c->next_seq = (uint8_t)(seq + 1);
	answer_packet(c, p, len);
}

static void count_packet(void *arg, const uint8_t *p, size_t len, uint8_t seq)
{
	(*(size_t *)arg)++;
}

void mf_client_read(struct mf_client *c, struct buf *b, int closing)
{
	struct recv_ctx x = {.c = c, .closing = closing};
	struct buf copy = {0};

	if (!b->len)
		return;
	/* count first: hoopd's last ERR of a closing session is the last packet */
	REQUIRE(buf_append(&copy, buf_head(b), b->len) == 0);
	mf_packets(&copy, count_packet, &x.left);
	buf_free(&copy);
	mf_packets(b, client_recv, &x);
}

void mf_client_sent(struct mf_client *c, const uint8_t *p, size_t len, uint8_t seq)
{
	switch (c->phase) {
	case MC_GREETING:
		REQUIRE(!"hoopd takes nothing from the agent before the greeting");
		return;
	case MC_LOGIN:
		REQUIRE(len >= 4);
		{
			uint32_t caps = (uint32_t)(p[0] | p[1] << 8 | p[2] << 16) | (uint32_t)p[3]
											<< 24;

			if ((caps & MY_CLIENT_SSL) && !c->tls) {
				c->tls = 1; /* an SSLRequest: TLS, then the login again */
				return;
			}
			c->caps = caps & c->srv_caps;
			c->deprecate_eof = (c->caps & MY_CLIENT_DEPRECATE_EOF) != 0;
		}
		c->phase = MC_AUTH;
		c->seq_sane = seq == 1 + c->tls;
		c->next_seq = (uint8_t)(seq + 1);
		return;
	case MC_AUTH:
		c->seq_sane &= seq == c->next_seq;
		c->next_seq = (uint8_t)(seq + 1);
		return;
	case MC_GONE:
		return;
	case MC_READY:
		break;
	}
	REQUIRE(seq == 0 && len > 0); /* hoopd takes commands numbered 0 only */
	REQUIRE(!c->quit);	      /* ...and none after COM_QUIT */
	switch (p[0]) {
	case MY_COM_QUIT:
		/* gone once the commands before it are answered */
		c->quit = 1;
		if (mf_client_idle(c))
			c->phase = MC_GONE;
		return;
	case MY_COM_QUERY:
		expect(c, MW_RESULT, 0, 1);
		return;
	case MY_COM_STMT_EXECUTE:
	case MY_COM_STMT_FETCH: {
		uint32_t id =
		    len >= 5 ? (uint32_t)(p[1] | p[2] << 8 | p[3] << 16) | (uint32_t)p[4] << 24 : 0;

		/* a client forgets its cursor when it executes; MariaDB's "prepared last" (~0)
		 * may be no statement for hoopd (after a failed PREPARE): forgetting nothing
		 * then only keeps the client readier for rows than hoopd */
		if (p[0] == MY_COM_STMT_EXECUTE && id != ~0u)
			cursor_forget(c, id);
		if (id == ~0u)
			id = c->stmt_id;
		expect(c, p[0] == MY_COM_STMT_EXECUTE ? MW_RESULT : MW_FETCH, 1, 1);
		c->q[(c->qh + c->qn - 1) % MF_MAX_PENDING].stmt = id;
		return;
	}
	case MY_COM_STMT_RESET:
	case MY_COM_STMT_CLOSE:
		if (len >= 5 && (p[1] & p[2] & p[3] & p[4]) != 0xff)
			cursor_forget(c, (uint32_t)(p[1] | p[2] << 8 | p[3] << 16) | (uint32_t)p[4]
											 << 24);
		if (p[0] == MY_COM_STMT_RESET)
			expect(c, MW_OK, 0, 0);
		return; /* COM_STMT_CLOSE: no answer */
	case MY_COM_RESET_CONNECTION:
		cursor_forget(c, ~0u);
		expect(c, MW_OK, 0, 0);
		return;
	case MY_COM_STMT_PREPARE:
		expect(c, MW_PREPARE, 0, 0);
		return;
	case MY_COM_FIELD_LIST:
		expect(c, MW_FIELDS, 0, 0);
		return;
	case MY_COM_STATISTICS:
		expect(c, MW_ONE, 0, 0);
		return;
	case MY_COM_SET_OPTION:
		expect(c, MW_EOF, 0, 0);
		return;
	case MY_COM_STMT_SEND_LONG_DATA:
		return; /* no answer */
	default:
		expect(c, MW_OK, 0, 0);
		return;
	}
}

void mf_agent_mark(struct mf_taken *t, const struct buf *in)
{
	free(t->copy);
	t->len = in->len;
	t->copy = malloc(in->len ? in->len : 1);
	REQUIRE(t->copy != NULL);
	memcpy(t->copy, buf_head(in), in->len);
}

struct taken_ctx {
	struct mf_client *c;
};

static void taken_packet(void *arg, const uint8_t *p, size_t len, uint8_t seq)
{
	struct taken_ctx *x = arg;

	mf_dump("hoopd took from the agent", p, len, seq);
	mf_client_sent(x->c, p, len, seq);
}

void mf_agent_taken(struct mf_taken *t, const struct buf *in, struct mf_client *c, int closing)
{
	struct buf b = {0};
	struct taken_ctx x = {.c = c};
	size_t used;

	REQUIRE(in->len <= t->len);
	used = t->len - in->len;
	/* what is left is what was there, minus what was taken from its front (a login hoopd
	 * rewrote and then failed on stays, rewritten, in a closing session) */
	if (in->len && memcmp(buf_head(in), t->copy + used, in->len) && !closing)
		fprintf(stderr, "my fuzz: hoopd took %zu of %zu bytes and changed the rest\n", used,
			t->len);
	REQUIRE(!in->len || closing || !memcmp(buf_head(in), t->copy + used, in->len));
	if (used && c->phase != MC_GONE && !c->quit) {
		/* after COM_QUIT hoopd drops the rest, whole or not */
		size_t off = 0;

		while (off < used && c->phase != MC_GONE && !c->quit) {
			uint32_t l;

			REQUIRE(used - off >= 4);
			l = le24(t->copy + off);
			REQUIRE(used - off - 4 >= l); /* hoopd takes whole packets */
			REQUIRE(buf_append(&b, t->copy + off, 4 + (size_t)l) == 0);
			mf_packets(&b, taken_packet, &x);
			off += 4 + (size_t)l;
		}
	}
	if (closing && in->len >= 4) {
		/* hoopd refused the packet at the head of what is left: its ERR, after the answers
		 * to what it took before, is numbered after that packet (when the agent numbered it
		 * as a client does) */
		uint8_t seq = buf_head(in)[3];

		if (c->phase == MC_LOGIN) {
			c->seq_sane = seq == 1 + c->tls;
			c->next_seq = (uint8_t)(seq + 1);
		} else if (c->phase == MC_AUTH) {
			c->seq_sane &= seq == c->next_seq;
			c->next_seq = (uint8_t)(seq + 1);
		} else if (c->phase == MC_READY) {
			c->refused = 1;
			c->refused_sane = seq == 0;
			c->refused_seq = (uint8_t)(seq + 1);
		}
	}
	buf_free(&b);
	free(t->copy);
	t->copy = NULL;
	t->len = 0;
}

/* ---- approvals: a request opens (or not) and is forgotten ---- */

static int hold_open(struct session *s, const char *rule, const char *message, const char *text,
		     size_t len, const char *split, char *id, size_t idn)
{
	REQUIRE(s->eng == &mysql_engine && !s->held);
	if (split)
		check_json(split, strlen(split), NULL);
	if (mf.hold_open_result)
		return mf.hold_open_result;
	snprintf(id, idn, "a%u", (unsigned)len);
	return 0;
}

static void hold_forget(struct session *s, const char *why)
{
	mf.holds_forgotten++;
}

static const struct hold_ops mf_hold_ops = {.open = hold_open, .forget = hold_forget};

/* ---- the audit trail, reduced to a check of every record ---- */

static struct json_tokener *g_tok;

static void check_json(const char *text, size_t n, struct json_object **out)
{
	struct json_object *o;

	json_tokener_reset(g_tok);
	o = json_tokener_parse_ex(g_tok, text, (int)n);
	if (!o || json_tokener_get_parse_end(g_tok) != n)
		fprintf(stderr, "my fuzz: not JSON: %.*s\n", (int)n, text);
	REQUIRE(o != NULL && json_tokener_get_parse_end(g_tok) == n);
	if (out)
		*out = o;
	else
		json_object_put(o);
}

static const char *str_member(struct json_object *o, const char *key, size_t *len)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	if (len)
		*len = (size_t)json_object_get_string_len(v);
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

static void keep_statement(struct json_object *o)
{
	struct mf_record *r;
	const char *v = str_member(o, "verdict", NULL), *t, *pr;
	size_t tl = 0;

	t = str_member(o, "text", &tl);
	pr = str_member(o, "prepared", NULL);
	REQUIRE(v != NULL && t != NULL);
	if (mf_events.nst == mf_events.capst) {
		mf_events.capst = mf_events.capst ? 2 * mf_events.capst : 16;
		mf_events.st = realloc(mf_events.st, (size_t)mf_events.capst * sizeof(*r));
		REQUIRE(mf_events.st != NULL);
	}
	r = &mf_events.st[mf_events.nst++];
	memset(r, 0, sizeof(*r));
	snprintf(r->verdict, sizeof(r->verdict), "%s", v);
	r->text = malloc(tl + 1);
	REQUIRE(r->text != NULL);
	memcpy(r->text, t, tl + 1);
	r->len = tl;
	if (pr) {
		r->prepared = strdup(pr);
		REQUIRE(r->prepared != NULL);
	}
}

void mf_records_clear(void)
{
	for (int i = 0; i < mf_events.nst; i++) {
		free(mf_events.st[i].text);
		free(mf_events.st[i].prepared);
	}
	mf_events.nst = 0;
}

int audit_append(const char *obj, size_t len)
{
	struct json_object *o;
	const char *kind, *dir;

	check_json(obj, len, &o);
	REQUIRE(json_object_is_type(o, json_type_object));
	kind = str_member(o, "kind", NULL);
	REQUIRE(kind != NULL);
	REQUIRE(str_member(o, "session", NULL) != NULL);
	if (!strcmp(kind, "protocol_error")) {
		dir = str_member(o, "direction", NULL);
		REQUIRE(dir != NULL);
		if (!strcmp(dir, "agent"))
			mf_events.protocol_error_agent++;
		else if (!strcmp(dir, "database"))
			mf_events.protocol_error_database++;
		else
			REQUIRE(!"a protocol_error has a direction");
	}
	mf_events.records++;
	if (mf.audit_fail) {
		mf_events.failed++;
		json_object_put(o);
		return -ENOSPC;
	}
	if (!strcmp(kind, "statement"))
		keep_statement(o);
	json_object_put(o);
	return 0;
}

char *mf_as_recorded(const char *p, size_t len, size_t *n)
{
	struct jbuf j;
	struct json_object *o;
	char *z = strndup(p, len), *out;

	REQUIRE(z != NULL);
	jb_init(&j);
	jb_str_val(&j, z);
	REQUIRE(!j.oom);
	check_json(j.s, j.len, &o);
	REQUIRE(json_object_is_type(o, json_type_string));
	*n = (size_t)json_object_get_string_len(o);
	out = malloc(*n + 1);
	REQUIRE(out != NULL);
	memcpy(out, json_object_get_string(o), *n + 1);
	json_object_put(o);
	jb_free(&j);
	free(z);
	return out;
}

/* ---- policy ---- */

void mf_masking(int on)
{
	static int is_on = -1;
	static struct mask_policy mp;
	static const uint8_t key[32] = "hoop fuzz masking key, 32 bytes";
	char err[256];

	if (on == is_on)
		return;
	is_on = on;
	if (!on) {
		masking_stop();
		return;
	}
	memset(&mp, 0, sizeof(mp));
	mp.enabled = 1;
	/* no detectors: building their Hyperscan database takes milliseconds, and the input
	 * turns masking on and off; the rule and unknown provenance are what is checked */
	mp.detectors = 0;
	mp.unknown_style = MASK_REDACT;
	mp.detector_style = MASK_PARTIAL;
	mp.on_unmaskable = UNMASKABLE_WITHHOLD;
	snprintf(mp.mrn_pattern, sizeof(mp.mrn_pattern), "MRN-[0-9]{8}");
	snprintf(mp.rules[0].table, sizeof(mp.rules[0].table), "patients");
	snprintf(mp.rules[0].column, sizeof(mp.rules[0].column), "ssn");
	mp.rules[0].style = MASK_PARTIAL;
	mp.rules[0].keep_last = 4;
	mp.nrules = 1;
	if (masking_install(&mp, key, err, sizeof(err)))
		fprintf(stderr, "my fuzz: masking_install: %s\n", err);
	REQUIRE(masking_enabled());
}

void mf_settings(struct myl_settings *st, const char *version, const char *sql_mode,
		 const char *charset)
{
	unsigned a = 0, b = 0, c = 0;
	char mode[512], *save = NULL;

	memset(st, 0, sizeof(*st));
	st->mariadb = strstr(version, "MariaDB") != NULL;
	if (!strncmp(version, "5.5.5-", 6) && st->mariadb)
		version += 6;
	if (sscanf(version, "%u.%u.%u", &a, &b, &c) == 3 && a < 100 && b < 100 && c < 100)
		st->version = a * 10000 + b * 100 + c;
	snprintf(mode, sizeof(mode), "%s", sql_mode);
	for (char *t = strtok_r(mode, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (!strcasecmp(t, "ANSI_QUOTES"))
			st->ansi_quotes = 1;
		else if (!strcasecmp(t, "NO_BACKSLASH_ESCAPES"))
			st->no_backslash_escapes = 1;
		else if (!strcasecmp(t, "MSSQL") || !strcasecmp(t, "ORACLE"))
			st->unread_mode = 1;
	}
	st->unsafe_charset = myl_charset_unsafe(charset);
}

/* ---- setup ---- */

void mf_init(void)
{
	hoopd.o.max_message = 1 << 20;
	mf_trace = getenv("MF_TRACE") != NULL;
	/* Warnings for every protocol error the fuzzer provokes would drown libFuzzer's output. */
	hlog_setup("hoop-fuzz", 0, HLOG_ERROR);
	hold_ops = &mf_hold_ops;
	g_tok = json_tokener_new();
	REQUIRE(g_tok != NULL);
	json_tokener_set_flags(g_tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, g_srv_sock) == 0);
}
