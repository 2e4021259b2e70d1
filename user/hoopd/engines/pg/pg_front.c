/*
 * The PostgreSQL engine's frontend: the agent's messages once the session is ready. A Query
 * is split, planned and judged by the statement gate, then forwarded with one track per
 * statement, refused, or parked for approval; a Parse is judged as the server will run it; a
 * Bind, Execute, Describe or Close is put on the queue for its answer (pg_back.c); COPY FROM
 * STDIN data goes through as the server takes it. A statement over the size limits is refused
 * before it is parsed, an oversized one read past without being kept. A denied request is
 * answered by hoopd alone or replaced by the poison (see the top of pg.c).
 */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_int.h"
#include "daemon.h"
#include "dialect.h"
#include "hex.h"
#include "log.h"
#include "policy.h"
#include "record.h"
#include "sqlsize.h"
#include "verdict.h"

/* Fails in parse analysis (no such function; only a superuser could create one in pg_catalog)
 * and so has no effect. */
#define POISON_SQL "SELECT pg_catalog.\"hoop: statement denied by policy\"()"

/* How much of a statement refused as too large the audit record keeps (with its SHA-256). */
#define PG_BIG_PREFIX 1024

/* Requests forwarded and not yet answered, per session. A pipelining client rarely has more
 * than a few thousand; one that keeps sending Syncs without reading its answers is refused
 * (docs/postgres.md). */
#define PG_MAX_PENDING 32768

/* An oversized Query or Parse read past without being kept: what its record needs. */
struct big {
	char type;	 /* 'Q' or 'P' */
	size_t left;	 /* bytes of the message still to come */
	size_t body;	 /* body bytes seen so far */
	int part;	 /* P: 0 in the name, 1 in the text, 2 after it; Q: 1 in the text */
	size_t text_len; /* text bytes seen */
	size_t q_text;	 /* Q: the text's length (the body less its NUL) */
	char name[64];
	size_t name_len;
	char prefix[PG_BIG_PREFIX];
	size_t prefix_len;
	EVP_MD_CTX *md;
};

static char *hexdup(const uint8_t *p, size_t n)
{
	char *s = malloc(n * 2 + 1);

	if (s)
		hex_encode(p, n, s);
	return s;
}

/* ---- refusals ---- */

/* What the agent is told of a refused request: sqlstate and message, and for text the server's
 * grammar rejects the rest of what the server would have said (NULL and 0 when none). */
struct refusal {
	const char *sqlstate, *message, *detail, *hint;
	int position;
};

/*
 * Answer a denied (or cancelled) request. Alone, outside a transaction, hoopd answers;
 * otherwise the poison goes to the server in its place (see the top of pg.c).
 */
static int refuse_as(struct pg *p, char kind, const char *stmt_name, const struct refusal *rf,
		     struct pend **out)
{
	struct session *s = p->s;
	struct pend *e;

	if (kind == 'Q' && !p->head && p->tx == 'I') {
		struct ev_error ee = {.seq = p->g.seq,
				      .severity = "ERROR",
				      .sqlstate = rf->sqlstate,
				      .message = rf->message,
				      .from_hoopd = 1};

		ev_error(sess_agent(s), &ee);
		if (pgw_put_error_at(&s->a.out, "ERROR", rf->sqlstate, rf->message, rf->detail,
				     rf->hint, rf->position) ||
		    pgw_put_ready(&s->a.out, 'I'))
			return -1;
		*out = NULL;
		return 0;
	}
	e = pg_pend_push(p, kind, 0);
	if (!e || !(e->deny = strdup(rf->message)) ||
	    (rf->detail && !(e->detail = strdup(rf->detail))) ||
	    (rf->hint && !(e->hint = strdup(rf->hint))))
		return -1;
	e->position = rf->position;
	e->poisoned = 1;
	snprintf(e->sqlstate, sizeof(e->sqlstate), "%s", rf->sqlstate);
	*out = e;
	if (kind == 'P' && !(e->name = strdup(stmt_name ? stmt_name : "")))
		return -1;
	if (kind == 'P')
		return pgw_put_parse(&s->s.out, stmt_name ? stmt_name : "", POISON_SQL);
	return pgw_put_query(&s->s.out, POISON_SQL); /* Q and F: answered by E + Z */
}

int pg_refuse(struct pg *p, char kind, const char *stmt_name, const char *sqlstate, const char *msg,
	      struct pend **out)
{
	struct refusal rf = {.sqlstate = sqlstate, .message = msg};

	return refuse_as(p, kind, stmt_name, &rf, out);
}

/* The refusal the gate decided on (gate_commit's GATE_REFUSE): text the grammar rejects is
 * answered with what the server itself would say of it (docs/audit.md, Refused unparsed). */
static int refuse_batch(struct pg *p, char kind, const char *stmt_name,
			const struct gate_batch *b, struct pend **out)
{
	struct refusal rf = {.sqlstate = b->sqlstate, .message = b->message};

	if (b->unparsed) {
		rf.sqlstate = b->err.sqlstate;
		rf.message = b->err.message;
		rf.detail = b->err.detail[0] ? b->err.detail : NULL;
		rf.hint = b->err.hint[0] ? b->err.hint : NULL;
		rf.position = b->err.position;
	}
	return refuse_as(p, kind, stmt_name, &rf, out);
}

/* ---- limits: statements too large to judge on the event loop (issue 14 point 10) ---- */

const struct policy_limits *pg_limits(void)
{
	static const struct policy_limits dflt = {
		.statement_bytes = LIMITS_STATEMENT_BYTES,
		.statement_tokens = LIMITS_STATEMENT_TOKENS,
		.statement_depth = LIMITS_STATEMENT_DEPTH,
	};

	return hoopd.pol ? &hoopd.pol->limits : &dflt;
}

/* Refuse a Query or Parse over a limit with 54000. Its record keeps a prefix of the text, its
 * length and its SHA-256, never the whole text (it may be megabytes, and JSON escaping makes
 * that up to six times more on disk). */
static int refuse_oversized(struct pg *p, char kind, const char *name, const char *prefix,
			    size_t plen, size_t total, const char *sha, const char *limit,
			    const char *msg)
{
	struct pend *e;

	hoopd.st.statements_oversized++;
	hlog_conn(HLOG_WARN, p->s->id, p->s->peer, "statement of %zu bytes refused: %s", total,
		  msg);
	/* refused either way: a failed write cannot let it through */
	gate_record_oversized(&p->g, kind == 'Q' ? "simple" : "extended", kind == 'P' ? name : NULL,
			      prefix, plen, total, sha, limit);
	return pg_refuse(p, kind, name, "54000", msg, &e);
}

static void sha256_hex(const void *d, size_t n, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int ml = 0;

	if (!EVP_Digest(d, n, md, &ml, EVP_sha256(), NULL) || ml != 32) {
		snprintf(out, 65, "%s", "(unavailable)");
		return;
	}
	hex_encode(md, 32, out);
}

/* Is this text within limits.statement_{bytes,tokens,depth}? 0 yes; 1 refused; -1 error.
 * Counted by a linear scan before libpg_query sees it: parsing costs the event loop about
 * 7 us per token and recurses as deep as the expression tree (sqlsize.h). */
static int check_size(struct pg *p, char kind, const char *name, const char *sql, size_t len)
{
	const struct policy_limits *l = pg_limits();
	struct sqlsize z;
	const char *limit;
	char msg[200], sha[65];

	if (len > l->statement_bytes) {
		limit = "limits.statement_bytes";
		snprintf(msg, sizeof(msg),
			 "hoop: statement of %zu bytes is over the limit of %u bytes "
			 "(limits.statement_bytes)",
			 len, l->statement_bytes);
	} else if (dialect_pg.size(&p->lex, sql, len, l->statement_tokens, l->statement_depth,
				   &z)) {
		if (z.tokens > l->statement_tokens) {
			limit = "limits.statement_tokens";
			snprintf(msg, sizeof(msg),
				 "hoop: statement has more than %u tokens, the limit "
				 "(limits.statement_tokens)",
				 l->statement_tokens);
		} else {
			limit = "limits.statement_depth";
			snprintf(msg, sizeof(msg),
				 "hoop: statement nests expressions deeper than %u levels, the "
				 "limit (limits.statement_depth)",
				 l->statement_depth);
		}
	} else {
		return 0;
	}
	sha256_hex(sql, len, sha);
	return refuse_oversized(p, kind, name, sql, len < PG_BIG_PREFIX ? len : PG_BIG_PREFIX, len,
				sha, limit, msg) < 0
		       ? -1
		       : 1;
}

void pg_big_free(struct big *b)
{
	if (b)
		EVP_MD_CTX_free(b->md);
	free(b);
}

/* A Query or Parse whose header says it is far over limits.statement_bytes: read past it. */
int pg_big_start(struct pg *p, struct buf *in, uint32_t len)
{
	struct big *b = calloc(1, sizeof(*b));

	if (!b || !(b->md = EVP_MD_CTX_new()) || !EVP_DigestInit_ex(b->md, EVP_sha256(), NULL)) {
		pg_big_free(b);
		return -1;
	}
	b->type = (char)buf_head(in)[0];
	b->part = b->type == 'Q' ? 1 : 0;
	b->q_text = len - 5; /* the body less its NUL */
	b->left = (size_t)len - 4;
	buf_consume(in, 5);
	p->big = b;
	return 0;
}

static void big_text(struct big *b, const uint8_t *d, size_t n)
{
	size_t k = PG_BIG_PREFIX - b->prefix_len;

	if (k > n)
		k = n;
	memcpy(b->prefix + b->prefix_len, d, k);
	b->prefix_len += k;
	EVP_DigestUpdate(b->md, d, n);
	b->text_len += n;
}

/* Take what has arrived of p->big; at its end, refuse it. 0, or -1. */
int pg_big_take(struct pg *p, struct buf *in)
{
	struct big *b = p->big;
	size_t n = in->len < b->left ? in->len : b->left, i = 0;
	const uint8_t *d = buf_head(in);
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int ml = 0;
	char msg[200], sha[65];
	int r;

	while (i < n) {
		const uint8_t *z;
		size_t k;

		if (b->type == 'Q') {
			k = b->body < b->q_text ? b->q_text - b->body : 0;
			k = k < n - i ? k : n - i;
			big_text(b, d + i, k);
			b->body += n - i;
			i = n;
			break;
		}
		if (b->part == 2) {
			b->body += n - i;
			i = n;
			break;
		}
		z = memchr(d + i, 0, n - i);
		k = z ? (size_t)(z - (d + i)) : n - i;
		if (b->part == 0) {
			size_t room = sizeof(b->name) - 1 - b->name_len;

			memcpy(b->name + b->name_len, d + i, k < room ? k : room);
			b->name_len += k < room ? k : room;
		} else {
			big_text(b, d + i, k);
		}
		if (z) {
			b->part++;
			k++;
		}
		b->body += k;
		i += k;
	}
	buf_consume(in, n);
	b->left -= n;
	if (b->left)
		return 0;
	p->big = NULL;
	if (!EVP_DigestFinal_ex(b->md, md, &ml) || ml != 32)
		snprintf(sha, sizeof(sha), "%s", "(unavailable)");
	else
		hex_encode(md, 32, sha);
	snprintf(msg, sizeof(msg),
		 "hoop: statement of %zu bytes is over the limit of %u bytes "
		 "(limits.statement_bytes)",
		 b->text_len, pg_limits()->statement_bytes);
	r = refuse_oversized(p, b->type, b->name, b->prefix, b->prefix_len, b->text_len, sha,
			     "limits.statement_bytes", msg);
	pg_big_free(b);
	return r < 0 ? -1 : 0;
}

/* ---- Query ---- */

/* The loop thread's scratch for a Query's split (not on the stack, and not malloc'd per
 * statement: a 32 KiB malloc makes glibc consolidate its free lists every time). */
static struct dialect_split g_split;

static void query_free(struct query *q)
{
	for (int i = 0; q->st && i < q->sp->n; i++)
		mplan_put(q->st[i].plan);
	free(q->st);
	free(q->ns);
	masking_put(q->mk);
}

/* Split a Query into statements, plan them and read what they do to names (shape: look its
 * shape up first; a statement of a shape seen before is not parsed again, stmtcache.h).
 * 0, or -1 without memory (q is to be freed either way). */
static int query_prepare(struct pg *p, struct query *q, const char *sql, size_t len, int shape)
{
	struct dialect_split *sp = &g_split;
	struct mplan *hit = NULL;
	int shaped = 0, n;

	memset(q, 0, sizeof(*q));
	q->sql = sql;
	q->len = len;
	q->sp = sp;
	q->mk = masking_get();
	if (shape)
		shaped = gate_shape_find(&p->g, q->mk, 'Q', sql, len, &q->sh);
	if (q->sh.cached) {
		sp->n = 1;
		sp->parse_error = 0;
		sp->off[0] = (int)q->sh.off;
		sp->len[0] = (int)q->sh.len;
		hit = q->sh.hit.plan; /* the entry's reference: ours now */
	} else {
		gate_split(&p->g, sql, len, sp, &q->err);
		q->sh.shaped = shaped && sp->n == 1 && !sp->parse_error &&
			       sp->off[0] == (int)q->sh.off && sp->len[0] == (int)q->sh.len;
	}
	/* Sized by the statements there are, not the most there could be. */
	n = sp->n ? sp->n : 1;
	q->st = calloc((size_t)n, sizeof(*q->st));
	q->ns = calloc((size_t)n, sizeof(*q->ns));
	if (!q->st || !q->ns) {
		mplan_put(hit);
		return -1;
	}
	for (int i = 0; i < sp->n; i++) {
		struct gate_stmt *t = &q->st[i];

		t->text = sql + sp->off[i];
		t->len = (size_t)sp->len[i];
		if (q->sh.cached) {
			t->plan = hit;
			if (q->mk && !hit)
				return -1;
			continue;
		}
		/* The provenance plan first: the verdict reads its inference facts too. */
		if (q->mk && !(t->plan = gate_plan(&p->g, q->mk, t->text, t->len)))
			return -1;
		pg_sql_names(t->text, t->len, &q->ns[i]);
		if (q->ns[i].kind == DIALECT_NAME_EXECUTE)
			t->execute = q->ns[i].name;
		if (pg_may_copy_in(t->text, t->len) ||
		    (q->ns[i].kind == DIALECT_NAME_EXECUTE && pg_text_may_copy_in(p, t->text, t->len, 0)))
			q->copy_cand = 1;
	}
	return 0;
}

static void query_batch(struct query *q, struct gate_batch *b)
{
	memset(b, 0, sizeof(*b));
	b->protocol = "simple";
	b->text = q->sql;
	b->len = q->len;
	b->parse_error = q->sp->parse_error;
	b->err = q->err;
	b->may_hold = 1;
	b->mk = q->mk;
	b->shape = &q->sh;
	b->st = q->st;
	b->n = q->sp->n;
}

/* The Query is on record: forward it, with one track per statement for its results. */
static int query_forward(struct pg *p, const struct pgw_msg *m, struct query *q)
{
	int n = q->sp->n;
	struct pend *e = pg_pend_push(p, 'Q', n ? n : 1);

	if (!e)
		return -1;
	for (int i = 0; i < e->nst; i++) {
		e->st[i].seq = p->g.seq - (uint64_t)(n ? n : 1) + 1 + (uint64_t)i;
		e->st[i].start_us = pg_now_us();
		if (i < n && q->ns[i].kind != DIALECT_NAME_NONE &&
		    (!(e->st[i].text = strndup(q->st[i].text, q->st[i].len)) ||
		     !(e->st[i].ns = malloc(sizeof(q->ns[i])))))
			return -1;
		if (i < n && e->st[i].ns)
			*e->st[i].ns = q->ns[i];
		if (i < n && q->mk) {
			e->st[i].mk = masking_get();
			e->st[i].plan = q->st[i].plan;
			q->st[i].plan = NULL;
		}
	}
	if (q->copy_cand) {
		/* Nothing more is read from the agent until the server says whether a COPY FROM
		 * STDIN started (CopyInResponse) or this Query is answered. */
		e->copy_cand = 1;
		p->copy_wait = e;
	}
	return pg_fwd(&p->s->s.out, m);
}

/* The gate opened an approval request for this Query: park it until it is decided. */
static int park(struct pg *p, const struct pgw_msg *m, const struct gate_batch *b)
{
	char note[512];

	snprintf(note, sizeof(note),
		 "hoop: waiting for approval %s: %s; ask an approver to run `hoopctl approve %s`",
		 b->hold_id, b->rule[0] ? b->rule : "policy", b->hold_id);
	if (pgw_put_notice(&p->s->a.out, note) || !(p->held = malloc(m->total))) {
		hold_ops->forget(p->s, "out of memory");
		return -1;
	}
	memcpy(p->held, m->body - 5, m->total);
	p->held_len = m->total;
	sess_hold(p->s);
	return 0;
}

/* Do what the gate said of a Query (outcome: gate_commit's). */
static int query_act(struct pg *p, const struct pgw_msg *m, struct query *q,
		     const struct gate_batch *b, int outcome)
{
	struct pend *e;

	switch (outcome) {
	case GATE_FORWARD:
		return query_forward(p, m, q);
	case GATE_REFUSE:
		return refuse_batch(p, 'Q', NULL, b, &e);
	case GATE_HOLD:
		return park(p, m, b);
	default:
		return -1;
	}
}

static int on_query(struct pg *p, const struct pgw_msg *m)
{
	const char *sql = (const char *)m->body;
	size_t len = m->len ? m->len - 1 : 0;
	struct query q;
	struct gate_batch b;
	int r;

	if (!m->len || memchr(sql, 0, m->len) != sql + len)
		return pg_protocol_violation(p, "agent", "Query text is not NUL-terminated");
	if ((r = check_size(p, 'Q', NULL, sql, len)) != 0)
		return r < 0 ? -1 : 0;
	r = query_prepare(p, &q, sql, len, 1);
	if (!r) {
		query_batch(&q, &b);
		p->q = &q;
		gate_judge(&p->g, &b);
		r = gate_commit(&p->g, &b);
		p->q = NULL;
		r = query_act(p, m, &q, &b, r);
	}
	query_free(&q);
	return r;
}

/* An approver allowed the Query parked by park(): it runs as it was judged, and its records
 * say so (the gate judges nothing again). */
int pg_run_held_query(struct pg *p, const struct pgw_msg *m)
{
	const char *sql = (const char *)m->body;
	struct query q;
	struct gate_batch b;
	int r;

	r = query_prepare(p, &q, sql, m->len - 1, 0);
	if (!r) {
		query_batch(&q, &b);
		for (int i = 0; i < b.n; i++)
			b.st[i].v = VERDICT_ALLOW;
		b.v = VERDICT_ALLOW;
		p->q = &q;
		r = gate_commit(&p->g, &b);
		p->q = NULL;
		r = query_act(p, m, &q, &b, r);
	}
	query_free(&q);
	return r;
}

/* ---- Parse ---- */

static int on_parse(struct pg *p, const struct pgw_msg *m)
{
	struct pgw_rd rd;
	const char *name, *sql;
	size_t sql_len;
	struct pend *e;
	struct dialect_split *sp = &g_split;
	struct masking *mk;
	struct mplan *pl = NULL;
	struct gate_shape sh;
	struct gate_stmt st = {0};
	struct gate_batch b = {.protocol = "extended", .quiet_allow = 1, .shape = &sh, .st = &st,
			       .n = 1};
	struct dialect_names ns = {0};
	int r;

	pgw_rd_init(&rd, m);
	name = pgw_str(&rd, NULL);
	sql = pgw_str(&rd, &sql_len);
	if (!name || !sql)
		return pg_protocol_violation(p, "agent", "malformed Parse message");
	if ((r = check_size(p, 'P', name, sql, sql_len)) != 0)
		return r < 0 ? -1 : 0;
	mk = masking_get();
	r = gate_shape_find(&p->g, mk, 'P', sql, sql_len, &sh);
	if (sh.cached) {
		sp->parse_error = 0;
		if (mk && !sh.hit.plan) {
			masking_put(mk);
			return -1;
		}
		pl = sh.hit.plan; /* the entry's reference */
	} else {
		gate_split(&p->g, sql, sql_len, sp, &b.err);
		sh.shaped = r && sp->n == 1 && !sp->parse_error;
		if (mk && !(pl = gate_plan(&p->g, mk, sql, sql_len))) {
			masking_put(mk);
			return -1;
		}
		pg_sql_names(sql, sql_len, &ns);
	}
	/* The extended protocol takes one statement; judge the whole text as the server will. */
	st.text = sql;
	st.len = sql_len;
	st.plan = pl;
	st.prepared = name;
	st.execute = ns.kind == DIALECT_NAME_EXECUTE ? ns.name : NULL;
	b.text = sql;
	b.len = sql_len;
	b.parse_error = sp->parse_error;
	b.mk = mk;
	if (gate_run(&p->g, &b) != GATE_FORWARD) {
		mplan_put(pl);
		masking_put(mk);
		/* The poison fails in its place: the server keeps what it had under this name
		 * (nothing, for the unnamed statement), and so does hoopd. */
		return refuse_batch(p, 'P', name, &b, &e);
	}
	/* Recorded as name's definition when the server says ParseComplete. */
	if (!(e = pg_pend_push(p, 'P', 0)) || !(e->name = strdup(name)) ||
	    !(e->text = strdup(sql))) {
		mplan_put(pl);
		masking_put(mk);
		return -1;
	}
	e->plan = pl;
	e->plan_gen = mk ? mk->gen : 0;
	e->may_copy = pg_may_copy_in(sql, sql_len) || ns.kind == DIALECT_NAME_EXECUTE;
	masking_put(mk);
	return pg_fwd(&p->s->s.out, m);
}

/* ---- Bind, Execute, FunctionCall ---- */

/* Portals hoopd Described (or saw Described) since their last Bind, as forwarded: an Execute of
 * one needs no Describe of hoopd's own. Only saves round trips: if it is wrong, the Execute's
 * rows have no description and are withheld. */
static int described(struct pg *p, const char *portal)
{
	return pg_named_find(p->described, portal) != NULL;
}

static void set_described(struct pg *p, const char *portal, int on)
{
	if (!on) {
		pg_named_drop(&p->described, portal);
		return;
	}
	if (described(p, portal))
		return;
	if (p->ndescribed >= 256) {
		pg_named_prune(&p->described, NULL);
		p->ndescribed = 0;
	}
	if (pg_named_set(&p->described, portal, NULL, NULL, NULL, 0))
		p->ndescribed++;
}

static int on_bind(struct pg *p, const struct pgw_msg *m)
{
	struct pgw_rd rd;
	const char *portal, *stmt;
	struct pend *e;
	int nfmt, nparams;
	int16_t fmts[64] = {0};
	struct jbuf j;

	pgw_rd_init(&rd, m);
	portal = pgw_str(&rd, NULL);
	stmt = pgw_str(&rd, NULL);
	nfmt = pgw_i16(&rd);
	if (!portal || !stmt || nfmt < 0)
		return pg_protocol_violation(p, "agent", "malformed Bind message");
	for (int i = 0; i < nfmt; i++) {
		int16_t f = pgw_i16(&rd);

		if (i < 64)
			fmts[i] = f;
	}
	nparams = pgw_i16(&rd);
	if (rd.bad || nparams < 0)
		return pg_protocol_violation(p, "agent", "malformed Bind message");
	jb_init(&j);
	jb_arr_open(&j);
	for (int i = 0; i < nparams; i++) {
		int32_t l = pgw_i32(&rd);
		const uint8_t *v;
		int fmt = nfmt == 1 ? fmts[0] : (i < nfmt && i < 64 ? fmts[i] : 0);

		if (rd.bad)
			break;
		if (l < 0) {
			jb_raw(&j, "null");
			continue;
		}
		v = pgw_bytes(&rd, (size_t)l);
		if (!v)
			break;
		if (fmt == 0 && !memchr(v, 0, (size_t)l)) {
			char *t = strndup((const char *)v, (size_t)l);

			jb_str_val(&j, t ? t : "");
			free(t);
		} else {
			char *h = hexdup(v, (size_t)l > 4096 ? 4096 : (size_t)l);

			jb_obj_open(&j);
			jb_kv_str(&j, "binary", h ? h : "");
			if ((size_t)l > 4096)
				jb_kv_int(&j, "length", l);
			jb_obj_close(&j);
			free(h);
		}
	}
	jb_arr_close(&j);
	if (rd.bad) {
		jb_free(&j);
		return pg_protocol_violation(p, "agent", "malformed Bind message");
	}
	/* Recorded as the portal when the server says BindComplete, with the statement as it is
	 * then. */
	e = pg_pend_push(p, 'B', 0);
	if (!e || !(e->name = strdup(portal)) || !(e->stmt = strdup(stmt)) ||
	    !(e->params = strdup(jb_str(&j)))) {
		jb_free(&j);
		return -1;
	}
	jb_free(&j);
	set_described(p, portal, 0);
	return pg_fwd(&p->s->s.out, m);
}

/* The statement text a portal will have when an Execute sent now runs, as far as hoopd can
 * tell before the server answers (for the record; masking takes the portal when it runs):
 * the last Bind of it in flight, else the recorded portal. params: its parameters. */
static const char *portal_text_ahead(struct pg *p, const char *portal, const char **params)
{
	const struct pend *b = NULL;
	const struct named *n;

	for (const struct pend *e = p->head; e; e = e->next)
		if (e->kind == 'B' && !strcmp(e->name, portal))
			b = e;
	if (!b) {
		n = pg_named_find(p->portals, portal);
		*params = n ? n->params : NULL;
		return n ? n->text : NULL;
	}
	*params = b->params;
	{
		const char *t = NULL;

		for (const struct pend *e = p->head; e && e != b; e = e->next)
			if (e->kind == 'P' && !e->poisoned && !strcmp(e->name, b->stmt))
				t = e->text;
		if (t)
			return t;
	}
	n = pg_named_find(p->preps, b->stmt);
	return n ? n->text : NULL;
}

/* Could an Execute of portal sent now start a COPY FROM STDIN? Every text the portal may have
 * by then is looked at (in one pass over the queue: a Parse in flight counts when it could be
 * one, whatever its name); a portal hoopd knows nothing of may. */
static int portal_may_copy_in(struct pg *p, const char *portal)
{
	const struct named *n = pg_named_find(p->portals, portal);
	int pcopy = 0, bound = 0, bcopy = 0, looked = 0;

	if (n && pg_text_may_copy_in(p, n->text, strlen(n->text), 0))
		return 1;
	for (const struct pend *e = p->head; e; e = e->next) {
		if (e->kind == 'P' && e->may_copy)
			pcopy = 1;
		if (e->kind != 'B' || strcmp(e->name, portal))
			continue;
		bound = 1;
		if (bcopy || !(n = pg_named_find(p->preps, e->stmt)))
			continue;
		/* (bounded: a pipeline of Binds of one portal costs one look each, not more) */
		bcopy = ++looked > 8 || pg_text_may_copy_in(p, n->text, strlen(n->text), 0);
	}
	if (bound)
		return pcopy || bcopy;
	return !pg_named_find(p->portals, portal);
}

static int on_execute(struct pg *p, const struct pgw_msg *m)
{
	struct pgw_rd rd;
	const char *portal;
	struct pend *e;
	struct masking *mk;
	struct gate_stmt st = {.v = VERDICT_ALLOW};
	struct gate_batch b = {.protocol = "extended", .v = VERDICT_ALLOW, .st = &st, .n = 1};

	pgw_rd_init(&rd, m);
	portal = pgw_str(&rd, NULL);
	pgw_i32(&rd);
	if (!portal || !pgw_done(&rd))
		return pg_protocol_violation(p, "agent", "malformed Execute message");
	/* Its statement was judged at Parse; what runs is on record now, with its parameters. */
	st.text = portal_text_ahead(p, portal, &st.params_json);
	if (!st.text)
		st.text = "";
	st.len = strlen(st.text);
	st.portal = portal;
	if (gate_commit(&p->g, &b) != GATE_FORWARD)
		/* In place of the Execute: a poisoned Parse, so the server errors right here and
		 * skips to Sync like for any error. */
		return pg_refuse(p, 'P', "hoop: unrecorded", b.sqlstate, b.message, &e);
	if ((mk = masking_get()) && !described(p, portal)) {
		/* The agent did not ask for the result's columns: hoopd does, for itself, so
		 * that it knows what to mask. */
		struct pend *d = pg_pend_push(p, 'D', 0);
		struct buf body = {0};

		if (!d || !(d->name = strdup(portal)) || buf_append(&body, "P", 1) ||
		    buf_append(&body, portal, strlen(portal) + 1) ||
		    pgw_put(&p->s->s.out, 'D', buf_head(&body), body.len)) {
			buf_free(&body);
			masking_put(mk);
			return -1;
		}
		buf_free(&body);
		d->dkind = 'P';
		d->internal = 1;
		set_described(p, portal, 1);
	}
	e = pg_pend_push(p, 'E', 1);
	if (!e || !(e->name = strdup(portal))) {
		masking_put(mk);
		return -1;
	}
	e->st[0].seq = st.seq;
	e->st[0].start_us = pg_now_us();
	e->st[0].mk = mk; /* the plan and description are the portal's when it runs */
	if (pg_fwd(&p->s->s.out, m))
		return -1;
	if (portal_may_copy_in(p, portal)) {
		/* Wait for the server's answer before reading more from the agent; the server
		 * holds an Execute's answers until Sync or Flush, so ask it to flush (Flush has
		 * no answer and no effect, and COPY ignores it). */
		e->copy_cand = 1;
		p->copy_wait = e;
		return pgw_put(&p->s->s.out, 'H', NULL, 0);
	}
	return 0;
}

static int on_function(struct pg *p, const struct pgw_msg *m)
{
	struct pgw_rd rd;
	char desc[64];
	struct pend *e;
	int32_t oid;
	struct gate_stmt st = {.text = desc};
	struct gate_batch b = {.protocol = "function", .what = "function call", .text = desc,
			       .st = &st, .n = 1};

	pgw_rd_init(&rd, m);
	oid = pgw_i32(&rd);
	if (rd.bad)
		return pg_protocol_violation(p, "agent", "malformed FunctionCall message");
	snprintf(desc, sizeof(desc), "FunctionCall oid %u", (unsigned)oid);
	st.len = b.len = strlen(desc);
	gate_judge(&p->g, &b);
	if (b.v == VERDICT_ALLOW && masking_enabled()) {
		/* Its result has no column description to mask by. */
		b.v = st.v = VERDICT_DENY;
		snprintf(b.rule, sizeof(b.rule), "masking");
		snprintf(b.message, sizeof(b.message),
			 "hoop: FunctionCall results cannot be masked; call the function from SQL");
	}
	if (gate_commit(&p->g, &b) != GATE_FORWARD)
		return pg_refuse(p, 'F', NULL, b.sqlstate, b.message, &e);
	e = pg_pend_push(p, 'F', 1);
	if (!e)
		return -1;
	e->st[0].seq = st.seq;
	e->st[0].start_us = pg_now_us();
	return pg_fwd(&p->s->s.out, m);
}

/* ---- the agent's messages by type ---- */

/* The agent's messages while the server is in COPY FROM STDIN (copyfromparse.c CopyGetData):
 * CopyData, CopyDone and CopyFail go on; Sync and Flush, which the server ignores there, are
 * not forwarded at all (so that a server that has already left the COPY on an error cannot
 * answer them); anything else would fail the COPY, and closes the session. */
static int agent_copy_in(struct pg *p, const struct pgw_msg *m)
{
	char why[96];

	switch (m->type) {
	case 'd':
		return pg_fwd(&p->s->s.out, m);
	case 'c':
	case 'f':
		p->copy_in = 0;
		/* An Execute runs one statement; a Query may start another COPY: wait again. */
		if (p->copy_wait && p->copy_wait->kind != 'Q')
			p->copy_wait = NULL;
		return pg_fwd(&p->s->s.out, m);
	case 'S':
	case 'H':
		return 0;
	case 'X':
		p->end_reason = "agent terminated the session";
		return pg_fwd(&p->s->s.out, m);
	default:
		snprintf(why, sizeof(why), "message type 0x%02x during COPY FROM STDIN", m->type);
		return pg_protocol_violation(p, "agent", why);
	}
}

int pg_agent_ready(struct pg *p, const struct pgw_msg *m)
{
	struct pgw_rd rd;

	if (p->copy_in)
		return agent_copy_in(p, m);
	if (p->skip && m->type != 'S' && m->type != 'X') {
		/* The server ignores everything up to Sync after an extended-protocol error:
		 * nothing of this runs, and nothing answers it. */
		return 0;
	}
	if (p->npend >= PG_MAX_PENDING && strchr("QPBDECSF", m->type)) {
		char why[128];

		snprintf(why, sizeof(why),
			 "more than %d requests waiting for the database's answers (read them)",
			 PG_MAX_PENDING);
		return pg_protocol_violation(p, "agent", why);
	}
	switch (m->type) {
	case 'Q':
		return on_query(p, m);
	case 'P':
		return on_parse(p, m);
	case 'B':
		return on_bind(p, m);
	case 'E':
		return on_execute(p, m);
	case 'F':
		return on_function(p, m);
	case 'C':
	case 'D': {
		const char *name;
		uint8_t kind;
		struct pend *e;

		pgw_rd_init(&rd, m);
		kind = pgw_u8(&rd);
		name = pgw_str(&rd, NULL);
		if (!name || (kind != 'S' && kind != 'P'))
			return pg_protocol_violation(p, "agent",
						     m->type == 'C' ? "malformed Close message"
								    : "malformed Describe message");
		/* Close: the name goes when the server says CloseComplete. */
		if (!(e = pg_pend_push(p, (char)m->type, 0)) || !(e->name = strdup(name)))
			return -1;
		e->dkind = (char)kind;
		if (kind == 'P')
			set_described(p, name, m->type == 'D');
		return pg_fwd(&p->s->s.out, m);
	}
	case 'S':
		if (!pg_pend_push(p, (char)m->type, 0))
			return -1;
		p->skip = 0;
		return pg_fwd(&p->s->s.out, m);
	case 'H': /* Flush */
	case 'd': /* CopyData */
	case 'c': /* CopyDone */
	case 'f': /* CopyFail: outside a COPY the server ignores these three */
		return pg_fwd(&p->s->s.out, m);
	case 'X':
		p->end_reason = "agent terminated the session";
		return pg_fwd(&p->s->s.out, m);
	default: {
		char why[64];

		snprintf(why, sizeof(why), "unexpected message type 0x%02x", m->type);
		return pg_protocol_violation(p, "agent", why);
	}
	}
}
