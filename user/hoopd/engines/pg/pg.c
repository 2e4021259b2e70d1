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
 */
#include <arpa/inet.h>
#include <errno.h>
#include <openssl/evp.h>
#include <strings.h>
#include <ctype.h>
#include <pg_query.h>
#include <pg_query/pg_query.pb-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "record.h"
#include "gate.h"
#include "hex.h"
#include "daemon.h"
#include "policy.h"
#include "log.h"
#include "pg.h"
#include "pgerrcodes.h"
#include "pgrow.h"
#include "pgwire.h"
#include "catalog_fetch.h"
#include "maskplan.h"
#include "dialect.h"
#include "mask_live.h"
#include "pglex.h"
#include "sqlfacts.h"
#include "sqlshape.h"
#include "sqlsize.h"
#include "stmtcache.h"
#include "strutil.h"
#include "tls.h"
#include "verdict.h"

/* Fails in parse analysis (no such function; only a superuser could create one in pg_catalog)
 * and so has no effect. */
#define POISON_SQL "SELECT pg_catalog.\"hoop: statement denied by policy\"()"

/* Before login an agent sends a startup packet (PostgreSQL takes 10000 bytes at most) and
 * short authentication answers (a password, SCRAM messages): no message, and no buffer, needs
 * more. (PostgreSQL accepts GSSAPI tokens up to 64 KiB; hoopd refuses those beyond this.) */
#define PG_PRELOGIN_MAX (16 * 1024)

/* How much of a statement refused as too large the audit record keeps (with its SHA-256). */
#define PG_BIG_PREFIX 1024

/* A Query or Parse this much over limits.statement_bytes is not buffered at all: its bytes
 * are hashed and dropped as they arrive (struct big), then it is refused. Below, it is framed
 * whole and refused by check_size (Parse carries a name and parameter types beside its text). */
#define PG_BIG_SLACK (300 * 1024)

/* Statement text judged in one turn of a session before the others get theirs (s->more):
 * parsing costs the single event loop some 4 us per token. */
#define PG_TURN_TEXT (8 * 1024)

/* Requests forwarded and not yet answered, per session. A pipelining client rarely has more
 * than a few thousand; one that keeps sending Syncs without reading its answers is refused
 * (docs/postgres.md). */
#define PG_MAX_PENDING 32768

/* PostgreSQL's NAMEDATALEN: SQL identifiers are truncated to 63 bytes. */
#define PG_NAMEDATALEN 64

enum phase {
	PH_STARTUP,
	PH_SERVER_TLS, /* waiting for the server's answer to our SSLRequest, then its handshake */
	PH_AUTH,
	PH_READY,
	PH_CANCEL, /* a CancelRequest was passed on; nothing more is expected */
};

struct names;
struct query;

struct track {
	uint64_t seq;
	int64_t start_us;
	uint64_t rows, bytes;
	/* masking: the statement's provenance plan and, once its columns are known, the plan
	 * per column (mr). rd: the RowDescription of the portal an Execute runs. */
	struct masking *mk;
	struct mplan *plan;
	struct mask_result *mr;
	uint8_t *rd;
	size_t rdlen;
	/* the plan and the portal's text are taken when the server answers (track_resolve) */
	int resolved;
	/* a statement that defines or drops a name (PREPARE, DECLARE, DEALLOCATE, CLOSE,
	 * DISCARD): its text, applied when its command tag says it ran, and (a Query's) what
	 * its parse tree says of names (struct names) */
	char *text;
	struct names *ns;
};

struct pend {
	char kind;	/* the frontend message: Q P B D E C S F */
	int poisoned;	/* hoopd replaced it: the server's error becomes `deny` */
	int err_seen;
	char sqlstate[6];
	char *deny;	/* message for the agent */
	/* ...and, for text the grammar rejects, what the server would have said besides */
	char *detail, *hint;
	int position;
	struct track *st; /* statements whose results this entry carries */
	int nst, cur;
	char dkind;    /* Describe and Close: 'S' or 'P' */
	char *name;    /* Parse: statement; Bind: portal; Describe, Execute, Close: the target */
	int internal;  /* hoopd sent it (a Describe for masking): the agent sees no answer */
	int copy_cand; /* may start COPY FROM STDIN (see copy_wait) */
	int may_copy;  /* Parse: its statement may be a COPY FROM STDIN (or EXECUTE one) */
	/* pending definitions, recorded when the server acknowledges this entry */
	char *stmt;	    /* Bind: the statement bound */
	char *text;	    /* Parse: the statement's text */
	char *params;	    /* Bind: parameters as JSON */
	struct mplan *plan; /* Parse: the statement's plan (built by the engine of plan_gen) */
	uint64_t plan_gen;
	struct pend *next;
};

struct named {
	char *name;
	char *text;   /* prepared: its text; portal: its statement's text; cursor: the DECLARE */
	char *params; /* portal: parameters as JSON */
	struct mplan *plan; /* masking: the statement's provenance (built when first needed) */
	uint64_t plan_gen;  /* the masking engine plan was built by: another one re-plans */
	uint8_t *rd;	    /* portal: its RowDescription, once a Describe answered */
	size_t rdlen;
	int holdable;	    /* cursor WITH HOLD: outlives its transaction */
	int this_xact;	    /* made in the transaction now open */
	struct named *next;
};

struct pg {
	struct session *s;
	enum phase phase;
	uint8_t tx; /* transaction status from the last ReadyForQuery */
	struct pend *head, *tail;
	int npend;
	struct named *preps, *portals;
	/* the statement gate's view of this session: statements on record (g.seq), relations
	 * it made, its catalog */
	struct gate g;
	struct query *q; /* the Query being judged, for the gate's callbacks */
	char user[128], database[128], app[128];
	char *params_json;
	uint8_t *startup; /* the startup message, held while we negotiate TLS upstream */
	size_t startup_len;
	int32_t backend_pid, backend_key;
	int agent_tls_requested;
	/* The server's input states (see the top of this file). skip: an extended-protocol
	 * message failed and no Sync has been sent since; copy_in: the server is in COPY FROM
	 * STDIN and the agent has not sent CopyDone or CopyFail yet; copy_wait: the entry of a
	 * statement that may start a COPY FROM STDIN, whose answer is awaited before hoopd reads
	 * more from the agent. */
	int skip;
	int copy_in;
	struct pend *copy_wait;
	int xact_failed; /* an error or ROLLBACK since the last ReadyForQuery 'I' */
	struct named *described; /* portals Described since their last Bind, as forwarded */
	int ndescribed;
	int sasl;	    /* the server asked for SASL */
	int sasl_client_first; /* the agent's SASLInitialResponse was looked at */
	/* a message parked for a verdict (hold) */
	uint8_t *held;
	size_t held_len;
	const char *end_reason;
	/* masking */
	struct catbox *cat;
	int withhold;	       /* a result could not be masked: drop all but Z, N, A, S until Z */
	struct big *big;       /* an oversized Query or Parse being read past (PG_BIG_SLACK) */
	/* how the server lexes this session's text (its ParameterStatus): every parse of the
	 * session's statements runs under it (pg_lexed) */
	struct dialect_settings lex;
};

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

static int64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- small helpers ---- */

static struct named *named_find(struct named *l, const char *name)
{
	for (; l; l = l->next)
		if (!strcmp(l->name, name))
			return l;
	return NULL;
}

static void named_free(struct named *n)
{
	mplan_put(n->plan);
	free(n->rd);
	free(n->name);
	free(n->text);
	free(n->params);
	free(n);
}

/* Record name as the server now has it: text, params (taken) and plan (a reference taken). */
static struct named *named_set(struct named **l, const char *name, const char *text,
			       char *params, struct mplan *plan, uint64_t plan_gen)
{
	struct named *n = named_find(*l, name);

	if (!n) {
		n = calloc(1, sizeof(*n));
		if (!n || !(n->name = strdup(name))) {
			free(n);
			free(params);
			return NULL;
		}
		n->next = *l;
		*l = n;
	}
	free(n->text);
	free(n->params);
	mplan_put(n->plan);
	free(n->rd);
	n->rd = NULL;
	n->rdlen = 0;
	n->holdable = 0;
	n->this_xact = 0;
	n->text = strdup(text ? text : "");
	n->params = params;
	n->plan = mplan_ref(plan);
	n->plan_gen = plan_gen;
	return n;
}

static void named_drop(struct named **l, const char *name)
{
	for (struct named **pp = l; *pp; pp = &(*pp)->next) {
		if (!strcmp((*pp)->name, name)) {
			struct named *n = *pp;

			*pp = n->next;
			named_free(n);
			return;
		}
	}
}

/* Drop every entry for which keep() says no (NULL: all). */
static void named_prune(struct named **l, int (*keep)(const struct named *n))
{
	for (struct named **pp = l; *pp;) {
		struct named *n = *pp;

		if (keep && keep(n)) {
			pp = &n->next;
			continue;
		}
		*pp = n->next;
		named_free(n);
	}
}

static struct pend *pend_push(struct pg *p, char kind, int nst)
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

static void pend_pop(struct pg *p)
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

static struct track *cur_track(struct pg *p)
{
	struct pend *e = p->head;

	if (!e || !e->st || e->cur >= e->nst)
		return NULL;
	return &e->st[e->cur];
}

/* Close the session with a FATAL ErrorResponse the agent can read. */
static int protocol_violation(struct pg *p, const char *dir, const char *why)
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

static int fwd(struct buf *out, const struct pgw_msg *m)
{
	/* The header is whatever precedes the body: 4 bytes (startup form) or 5 (typed, even
	 * when the type byte is 0). */
	return buf_append(out, m->body - (m->total - m->len), m->total);
}

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
 * otherwise the poison goes to the server in its place (see the top of this file).
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
	e = pend_push(p, kind, 0);
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

static int refuse(struct pg *p, char kind, const char *stmt_name, const char *sqlstate,
		  const char *msg, struct pend **out)
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

static const struct policy_limits *limits(void)
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
	return refuse(p, kind, name, "54000", msg, &e);
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
	const struct policy_limits *l = limits();
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

static void big_free(struct big *b)
{
	if (b)
		EVP_MD_CTX_free(b->md);
	free(b);
}

/* A Query or Parse whose header says it is far over limits.statement_bytes: read past it. */
static int big_start(struct pg *p, struct buf *in, uint32_t len)
{
	struct big *b = calloc(1, sizeof(*b));

	if (!b || !(b->md = EVP_MD_CTX_new()) || !EVP_DigestInit_ex(b->md, EVP_sha256(), NULL)) {
		big_free(b);
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
static int big_take(struct pg *p, struct buf *in)
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
		 b->text_len, limits()->statement_bytes);
	r = refuse_oversized(p, b->type, b->name, b->prefix, b->prefix_len, b->text_len, sha,
			     "limits.statement_bytes", msg);
	big_free(b);
	return r < 0 ? -1 : 0;
}

/* ---- masking ---- */

static const struct catalog *pg_cat(const struct pg *p)
{
	return p->cat ? p->cat->cat : NULL;
}

/* The plan of a recorded statement, portal or cursor (a reference), built from its text by mk
 * when it has none or one of another masking engine (a reload renumbers the rules). */
static struct mplan *named_plan(struct pg *p, struct masking *mk, struct named *n)
{
	if (!n->text[0])
		return mplan_unknown(); /* bound from a statement hoopd does not know */
	if (!n->plan || n->plan_gen != mk->gen) {
		struct mplan *pl = gate_plan(&p->g, mk, n->text, strlen(n->text));

		if (!pl)
			return NULL;
		mplan_put(n->plan);
		n->plan = pl;
		n->plan_gen = mk->gen;
	}
	return mplan_ref(n->plan);
}

/* EXECUTE name and FETCH name take the plan of what the name is now (a reference). Called when
 * the server answers such a statement (so "now" is when it ran), or for a verdict before. */
static struct mplan *plan_indirect(struct pg *p, struct masking *mk, struct mplan *pl, int depth)
{
	struct named *n = NULL;
	struct mplan *r, *q;

	if (pl->p.execute_name[0])
		n = named_find(p->preps, pl->p.execute_name);
	else if (pl->p.fetch_cursor[0])
		n = named_find(p->portals, pl->p.fetch_cursor);
	else
		return mplan_ref(pl);
	if (!n || depth >= 4 || !(q = named_plan(p, mk, n)))
		return mplan_unknown();
	r = plan_indirect(p, mk, q, depth + 1);
	mplan_put(q);
	return r;
}

/* Everything for the agent from the database in the ready phase goes through here: while a
 * result is withheld, only ReadyForQuery and asynchronous messages pass. */
static int to_agent(struct pg *p, const struct pgw_msg *m)
{
	if (p->withhold && m->type != 'Z' && m->type != 'N' && m->type != 'A' && m->type != 'S')
		return 0;
	return fwd(&p->s->a.out, m);
}

/* A result that cannot be masked is not sent: the agent gets an error in its place and the
 * rest of the server's answer up to ReadyForQuery is dropped. */
static int withhold(struct pg *p, struct track *t, const char *why)
{
	char msg[512];
	struct ev_error ee = {.seq = t ? t->seq : 0, .severity = "ERROR", .sqlstate = "42501",
			      .from_hoopd = 1};

	if (p->withhold)
		return 0;
	snprintf(msg, sizeof(msg), "hoop: result withheld: %s", why);
	ee.message = msg;
	ev_error(sess_agent(p->s), &ee);
	hlog_conn(HLOG_INFO, p->s->id, p->s->peer, "%s", msg);
	p->withhold = 1;
	if (t && t->mr)
		t->mr->counts.withheld++;
	return pgw_put_error(&p->s->a.out, "ERROR", "42501", msg, NULL, NULL);
}

/* The per-column plan of a row result, from its RowDescription. */
static int track_plan_rows(struct pg *p, struct track *t, const struct pgw_msg *m)
{
	int n = pgw_row_columns(m, NULL, 0), r;
	struct col_desc *f;

	if (n < 0)
		return -EINVAL;
	f = calloc((size_t)(n ? n : 1), sizeof(*f));
	t->mr = calloc(1, sizeof(*t->mr));
	if (!f || !t->mr) {
		free(f);
		free(t->mr);
		t->mr = NULL;
		return -ENOMEM;
	}
	pgw_row_columns(m, f, n);
	r = masking_plan_rows(t->mr, t->mk, pg_cat(p), t->plan ? &t->plan->p : NULL, f, n,
			      &pgrow_datarow);
	free(f);
	if (r) {
		free(t->mr);
		t->mr = NULL;
		return r;
	}
	if (t->mr->unknown_oid)
		catalog_stale(p->s, p->database);
	return 0;
}

static int mask_row(struct pg *p, struct track *t, const struct pgw_msg *m)
{
	int r;

	if (p->withhold)
		return 0;
	if (!t->mr && t->rd) {
		struct pgw_msg rm;
		const char *why;

		if (pgw_frame(t->rd, t->rdlen, 0, UINT32_MAX, &rm, &why) == PGW_OK &&
		    track_plan_rows(p, t, &rm) == -ENOMEM)
			return -1;
	}
	if (!t->mr || t->mr->copy)
		return withhold(p, t, "hoop did not see the result's column description, so it "
				      "cannot tell which columns to mask");
	r = masking_rows(t->mr, t->mk, m->body, m->len, &p->s->a.out);
	if (r == 0)
		return 0;
	if (r == 1)
		return withhold(p, t, t->mr->counts.why);
	return withhold(p, t, "a row of the result could not be read for masking");
}

/* CopyOutResponse: int8 overall format, int16 count, int16 formats. */
static int mask_copy_start(struct pg *p, struct track *t, const struct pgw_msg *m)
{
	struct pgw_rd rd;
	int overall, n, r;
	int16_t *fmts;

	pgw_rd_init(&rd, m);
	overall = pgw_u8(&rd);
	n = pgw_i16(&rd);
	if (rd.bad || n < 0)
		return withhold(p, t, "a malformed COPY header");
	fmts = calloc((size_t)(n ? n : 1), sizeof(*fmts));
	if (!fmts)
		return -1;
	for (int i = 0; i < n; i++)
		fmts[i] = pgw_i16(&rd);
	t->mr = calloc(1, sizeof(*t->mr));
	if (!t->mr) {
		free(fmts);
		return -1;
	}
	r = masking_plan_copy(t->mr, t->mk, pg_cat(p), t->plan ? &t->plan->p : NULL, overall,
			      fmts, n);
	free(fmts);
	if (r == -ENOMEM)
		return -1;
	if (r)
		return withhold(p, t, "hoop cannot tell which columns this COPY carries, so it "
				      "cannot mask them");
	pgrow_copy_codec(&t->mr->codec, &t->mr->copy_opts);
	return 0;
}

static int mask_copy_data(struct pg *p, struct track *t, const struct pgw_msg *m)
{
	int r;

	if (p->withhold)
		return 0;
	if (!t->mr || !t->mr->copy)
		return withhold(p, t, "COPY data without a COPY header");
	r = masking_rows(t->mr, t->mk, m->body, m->len, &p->s->a.out);
	if (r == 0)
		return 0;
	if (r == 1)
		return withhold(p, t, t->mr->counts.why);
	return withhold(p, t, "COPY data that could not be read for masking");
}

/* Quoted parts of a message ("...") become "***": PostgreSQL quotes the offending value. */
static int unquote_values(const char *s, size_t n, struct buf *out)
{
	size_t i = 0;

	while (i < n) {
		const char *q = memchr(s + i, '"', n - i);
		const char *e;

		if (!q || !(e = memchr(q + 1, '"', n - (size_t)(q + 1 - s))))
			return buf_append(out, s + i, n - i);
		if (buf_append(out, s + i, (size_t)(q - (s + i))) || buf_append(out, "\"***\"", 5))
			return -1;
		i = (size_t)(e + 1 - s);
	}
	return 0;
}

/* Could this statement have read a masked value, or one hoop cannot trace? */
static int plan_reads_masked(const struct mplan *pl)
{
	const struct maskplan *mp;

	if (!pl)
		return 1;
	mp = &pl->p;
	if ((mp->all_unknown && !mp->all_clean) || mp->probes_masked || mp->probes_unknown ||
	    mp->writes_masked || mp->reads_masked || mp->unknown_rel[0])
		return 1;
	for (int i = 0; i < mp->ncols; i++)
		if (mp->cols[i].rule != MASK_RULE_NONE)
			return 1;
	return 0;
}

/*
 * Does the error or notice at hand belong to a statement that read a masked (or untraceable)
 * value? It belongs to the head entry's current statement; once an error has ended a Query
 * hoop no longer knows which of its statements failed, so any of them counts. A Parse,
 * Describe or Close reads no rows (parse analysis sees only the agent's own text); a Bind
 * plans, with the portal's statement. Anything else (a Sync's commit, a message with no entry)
 * cannot be tied to a statement and counts as one that read masked values.
 */
static int notice_reads_masked(struct pg *p)
{
	struct pend *e = p->head;
	struct track *t = cur_track(p);
	struct named *po;

	if (t)
		return plan_reads_masked(t->plan);
	if (!e)
		return 1;
	if (e->nst) {
		for (int i = 0; i < e->nst; i++)
			if (plan_reads_masked(e->st[i].plan))
				return 1;
		return 0;
	}
	switch (e->kind) {
	case 'P':
	case 'D':
	case 'C':
		return 0;
	case 'B':
		po = e->name ? named_find(p->portals, e->name) : NULL;
		return !po || plan_reads_masked(po->plan);
	default:
		return 1;
	}
}

/*
 * The fixed text that replaces a message: severity and SQLSTATE stay, every field that can
 * carry a value goes. A RAISE chooses its own SQLSTATE (USING ERRCODE), which can spell a
 * value: it becomes P0001, RAISE's default.
 */
static int put_reduced(struct pg *p, const struct pgw_msg *m, const char *sev, const char *vsev,
		       const char *code, int raise)
{
	char msg[384];
	const char *name, *cls;
	struct buf body = {0};
	int r = -1;

	if (raise)
		code = "P0001";
	if (strlen(code) != 5)
		code = "XX000";
	name = pgerr_name(code);
	cls = pgerr_class(code);
	snprintf(msg, sizeof(msg),
		 "hoop: %s (SQLSTATE %s%s%s): the server's text is withheld while masking is on, "
		 "because this statement read masked or untraceable values and PostgreSQL can "
		 "quote them in its messages%s",
		 name ? name : "unknown condition", code, cls ? ", " : "", cls ? cls : "",
		 m->type == 'E' ? " (the original is in the audit trail)" : "");
	if (buf_append(&body, "S", 1) || buf_append(&body, sev, strlen(sev) + 1) ||
	    (vsev && (buf_append(&body, "V", 1) || buf_append(&body, vsev, strlen(vsev) + 1))) ||
	    buf_append(&body, "C", 1) || buf_append(&body, code, 6) ||
	    buf_append(&body, "M", 1) || buf_append(&body, msg, strlen(msg) + 1) ||
	    buf_append(&body, "", 1))
		goto out;
	r = pgw_put(&p->s->a.out, m->type, buf_head(&body), body.len);
out:
	buf_free(&body);
	return r;
}

/*
 * An ErrorResponse or NoticeResponse from the server while masking is on. Messages can carry
 * values: `invalid input syntax for type integer: "123-45-6789"`, a unique violation's
 * Key (ssn)=(...), `relation "Okafor" does not exist` from a cast to regclass, a RAISE of
 * anything. So, in the ready phase: a message from a statement that read a masked or
 * untraceable value (notice_reads_masked), from code below the statement (a Context field:
 * PL/pgSQL, SQL functions, SPI as in query_to_xml) or from a RAISE is reduced to its severity,
 * its SQLSTATE and a fixed text for that code (put_reduced). Every other message keeps its
 * fields, with quoted values of data and integrity errors (classes 22, 23) made "***", their
 * Detail, Context, internal query and its position dropped, and every remaining text field
 * through the detectors. During startup and authentication there is no statement: what the
 * server says there is about the agent's own startup values and gets the second treatment.
 */
static int mask_notice(struct pg *p, const struct pgw_msg *m)
{
	struct masking *mk = masking_get();
	struct buf body = {0}, val = {0};
	const char *code = "", *routine = "", *sev = NULL, *vsev = NULL;
	size_t off = 0;
	int r = -1, nested = 0;

	if (!mk)
		return to_agent(p, m);
	if (p->withhold && m->type != 'N') {
		masking_put(mk);
		return 0;
	}
	/* first pass: the fields that decide */
	while (off < m->len && m->body[off]) {
		const char *v = (const char *)m->body + off + 1;
		size_t l = strnlen(v, m->len - off - 1);

		if (m->body[off] == 'C')
			code = v;
		else if (m->body[off] == 'R')
			routine = v;
		else if (m->body[off] == 'S')
			sev = v;
		else if (m->body[off] == 'V')
			vsev = v;
		else if (m->body[off] == 'W')
			nested = 1;
		off += l + 2;
	}
	if (p->phase == PH_READY &&
	    (nested || !strcmp(routine, "exec_stmt_raise") || notice_reads_masked(p))) {
		r = put_reduced(p, m, sev ? sev : m->type == 'E' ? "ERROR" : "NOTICE", vsev, code,
				!strcmp(routine, "exec_stmt_raise"));
		masking_put(mk);
		return r;
	}
	off = 0;
	while (off < m->len && m->body[off]) {
		uint8_t f = m->body[off];
		const char *v = (const char *)m->body + off + 1;
		size_t l = strnlen(v, m->len - off - 1);
		int data = !strncmp(code, "22", 2) || !strncmp(code, "23", 2);

		off += l + 2;
		if (data && (f == 'D' || f == 'W' || f == 'q' || f == 'p'))
			continue;
		val.len = 0;
		if (f == 'M' || f == 'D' || f == 'H' || f == 'W' || f == 'q') {
			struct buf uq = {0};

			if ((data && f == 'M' ? unquote_values(v, l, &uq) : buf_append(&uq, v, l)) ||
			    masking_text(mk, (const char *)buf_head(&uq), uq.len, &val)) {
				buf_free(&uq);
				goto out;
			}
			buf_free(&uq);
		} else if (buf_append(&val, v, l)) {
			goto out;
		}
		if (buf_append(&body, &f, 1) || buf_append(&body, buf_head(&val), val.len) ||
		    buf_append(&body, "", 1))
			goto out;
	}
	if (buf_append(&body, "", 1))
		goto out;
	r = pgw_put(&p->s->a.out, m->type, buf_head(&body), body.len);
out:
	buf_free(&body);
	buf_free(&val);
	masking_put(mk);
	return r;
}

/* NotificationResponse: int32 pid, channel, payload. Another session's NOTIFY can carry
 * anything: the payload goes through the detectors. */
static int mask_notification(struct pg *p, const struct pgw_msg *m)
{
	struct masking *mk = masking_get();
	struct pgw_rd rd;
	struct buf body = {0}, val = {0};
	const char *chan, *payload;
	size_t clen, plen;
	uint8_t pid[4];
	int r = -1;

	pgw_rd_init(&rd, m);
	pgw_i32(&rd);
	chan = pgw_str(&rd, &clen);
	payload = pgw_str(&rd, &plen);
	if (!mk || !chan || !payload) {
		masking_put(mk);
		return protocol_violation(p, "database", "malformed NotificationResponse");
	}
	memcpy(pid, m->body, 4);
	if (!masking_text(mk, payload, plen, &val) && !buf_append(&body, pid, 4) &&
	    !buf_append(&body, chan, clen + 1) && !buf_append(&body, buf_head(&val), val.len) &&
	    !buf_append(&body, "", 1))
		r = pgw_put(&p->s->a.out, 'A', buf_head(&body), body.len);
	buf_free(&body);
	buf_free(&val);
	masking_put(mk);
	return r;
}

/* ---- frontend messages in the ready phase ---- */

/* Could this statement define, use or drop a name (PREPARE, EXECUTE, DEALLOCATE, DECLARE,
 * CLOSE, DISCARD)? Only "no" is sure: it starts with a word that is none of them (keywords are
 * ASCII, any case; quoting makes an identifier). */
static int may_name(const char *s, size_t n)
{
	static const char *const kw[] = {"prepare", "execute", "deallocate",
					 "declare", "close",   "discard"};
	size_t i = 0, w;

	while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
		i++;
	for (w = i; w < n && isalpha((unsigned char)s[w]) && !(s[w] & 0x80); w++)
		;
	if (w == i || (w < n && (isalnum((unsigned char)s[w]) || s[w] == '_' || s[w] == '$' ||
				 (s[w] & 0x80))))
		return 1; /* no plain word first (a comment, a parenthesis...): look closer */
	for (size_t k = 0; k < sizeof(kw) / sizeof(kw[0]); k++)
		if (w - i == strlen(kw[k]) && !strncasecmp(s + i, kw[k], w - i))
			return 1;
	return 0;
}

/* Could this text run COPY ... FROM STDIN? Its grammar needs COPY and STDIN or STDOUT (the
 * grammar takes COPY t FROM STDOUT as FROM STDIN), keywords that cannot be quoted or escaped,
 * so a text without them cannot. */
static int has_word(const char *s, size_t n, const char *w)
{
	size_t l = strlen(w);

	for (size_t i = 0; i + l <= n; i++)
		if (!strncasecmp(s + i, w, l))
			return 1;
	return 0;
}

static int may_copy_in(const char *s, size_t n)
{
	return has_word(s, n, "copy") && (has_word(s, n, "stdin") || has_word(s, n, "stdout"));
}

enum nkind {
	NK_NONE,
	NK_PREPARE,
	NK_EXECUTE,
	NK_DEALLOCATE, /* name "": ALL */
	NK_DECLARE,
	NK_CLOSE, /* name "": ALL */
	NK_DISCARD_ALL,
};

/* What one statement does to the session's names, read from PostgreSQL's parse tree: names
 * are as the server resolves them (case folded, quoted, U&"..." decoded, truncated to 63). */
struct names {
	enum nkind kind;
	char name[PG_NAMEDATALEN];
	int holdable;
	size_t body; /* PREPARE: where the prepared statement's text starts */
};

/* Where PREPARE's statement starts: after the first AS outside parentheses (tokens from
 * PostgreSQL's scanner). 0 when there is none. */
static size_t prepare_body(const char *sql)
{
	PgQueryScanResult sr = pg_query_scan(sql);
	PgQuery__ScanResult *r = NULL;
	size_t at = 0;
	int depth = 0;

	if (!sr.error)
		r = pg_query__scan_result__unpack(NULL, sr.pbuf.len, (const uint8_t *)sr.pbuf.data);
	for (size_t i = 2; r && i + 1 < r->n_tokens; i++) {
		if (r->tokens[i]->token == '(') {
			depth++;
		} else if (r->tokens[i]->token == ')') {
			depth--;
		} else if (!depth && r->tokens[i]->token == PG_QUERY__TOKEN__AS) {
			at = (size_t)r->tokens[i + 1]->start;
			break;
		}
	}
	if (r)
		pg_query__scan_result__free_unpacked(r, NULL);
	pg_query_free_scan_result(sr);
	return at;
}

static void sql_names(const char *stmt, size_t len, struct names *ns)
{
	PgQueryProtobufParseResult pr;
	PgQuery__ParseResult *r = NULL;
	const PgQuery__Node *n;
	const char *name = NULL;
	char *sql;

	memset(ns, 0, sizeof(*ns));
	if (!may_name(stmt, len) || !(sql = strndup(stmt, len)))
		return;
	pr = pg_query_parse_protobuf(sql);
	if (!pr.error)
		r = pg_query__parse_result__unpack(NULL, pr.parse_tree.len,
						   (const uint8_t *)pr.parse_tree.data);
	if (!r || r->n_stmts != 1 || !r->stmts[0]->stmt)
		goto out;
	n = r->stmts[0]->stmt;
	switch (n->node_case) {
	case PG_QUERY__NODE__NODE_PREPARE_STMT:
		ns->body = prepare_body(sql);
		if (ns->body) {
			ns->kind = NK_PREPARE;
			name = n->prepare_stmt->name;
		}
		break;
	case PG_QUERY__NODE__NODE_EXECUTE_STMT:
		ns->kind = NK_EXECUTE;
		name = n->execute_stmt->name;
		break;
	case PG_QUERY__NODE__NODE_DEALLOCATE_STMT:
		ns->kind = NK_DEALLOCATE;
		name = n->deallocate_stmt->name;
		break;
	case PG_QUERY__NODE__NODE_DECLARE_CURSOR_STMT:
		ns->kind = NK_DECLARE;
		name = n->declare_cursor_stmt->portalname;
		ns->holdable = !!(n->declare_cursor_stmt->options & 0x0020); /* CURSOR_OPT_HOLD */
		break;
	case PG_QUERY__NODE__NODE_CLOSE_PORTAL_STMT:
		ns->kind = NK_CLOSE;
		name = n->close_portal_stmt->portalname;
		break;
	case PG_QUERY__NODE__NODE_DISCARD_STMT:
		if (n->discard_stmt->target == PG_QUERY__DISCARD_MODE__DISCARD_ALL)
			ns->kind = NK_DISCARD_ALL;
		break;
	default:
		break;
	}
	snprintf(ns->name, sizeof(ns->name), "%s", name ? name : "");
out:
	if (r)
		pg_query__parse_result__free_unpacked(r, NULL);
	pg_query_free_protobuf_parse_result(pr);
	free(sql);
}

/* A statement's command tag says it ran: record what it did to the session's names. text is
 * the statement, plan (may be NULL) its plan by the engine of gen. */
static void names_done(struct pg *p, const char *text, const char *tag, struct mplan *plan,
		       uint64_t gen)
{
	struct names ns;
	struct named *n;
	int depth = 0;

	if (strcmp(tag, "PREPARE") && strncmp(tag, "DEALLOCATE", 10) &&
	    strcmp(tag, "DECLARE CURSOR") && strncmp(tag, "CLOSE CURSOR", 12) &&
	    strcmp(tag, "DISCARD ALL"))
		return;
	if (!strcmp(tag, "DEALLOCATE ALL") || !strcmp(tag, "DISCARD ALL"))
		named_prune(&p->preps, NULL);
	if (!strcmp(tag, "CLOSE CURSOR ALL") || !strcmp(tag, "DISCARD ALL"))
		named_prune(&p->portals, NULL);
	if (!text)
		return;
	sql_names(text, strlen(text), &ns);
	/* EXECUTE of a statement made by Parse may run any statement: it is that one that ran */
	while (ns.kind == NK_EXECUTE && depth++ < 4) {
		if (!(n = named_find(p->preps, ns.name)))
			return;
		text = n->text;
		plan = NULL;
		sql_names(text, strlen(text), &ns);
	}
	if (!strcmp(tag, "PREPARE") && ns.kind == NK_PREPARE) {
		named_set(&p->preps, ns.name, text + ns.body, NULL, NULL, 0);
	} else if (!strcmp(tag, "DEALLOCATE") && ns.kind == NK_DEALLOCATE && ns.name[0]) {
		named_drop(&p->preps, ns.name);
	} else if (!strcmp(tag, "DECLARE CURSOR") && ns.kind == NK_DECLARE) {
		n = named_set(&p->portals, ns.name, text, NULL,
			      plan && plan->p.declare_cursor[0] ? plan : NULL, gen);
		if (n) {
			n->holdable = ns.holdable;
			n->this_xact = 1;
		}
	} else if (!strcmp(tag, "CLOSE CURSOR") && ns.kind == NK_CLOSE && ns.name[0]) {
		named_drop(&p->portals, ns.name);
	}
}

/* The loop thread's scratch for a Query's split (not on the stack, and not malloc'd per
 * statement: a 32 KiB malloc makes glibc consolidate its free lists every time). */
static struct dialect_split g_split;

/* ---- what the gate asks the engine (struct gate_ops) ---- */

/* The text of the latest definition of prepared statement name still waiting for the
 * server's answer (a Parse, or a PREPARE inside a Query), or NULL. */
static const char *inflight_text(const struct pg *p, const char *name)
{
	const char *t = NULL;

	for (const struct pend *e = p->head; e; e = e->next) {
		if (e->kind == 'P' && !e->poisoned && e->text && e->name && !strcmp(e->name, name))
			t = e->text;
		for (int i = 0; i < e->nst; i++) {
			const struct names *tn = e->st[i].ns;

			if (tn && tn->kind == NK_PREPARE && !strcmp(tn->name, name))
				t = e->st[i].text + tn->body;
		}
	}
	return t;
}

/* What approvers are shown for EXECUTE/FETCH name: the definition the server has, or, when the
 * only one is still on its way (the gate holds only when every candidate is this text), that
 * one. */
static const char *named_text(struct pg *p, int cursor, const char *name)
{
	struct named *n = named_find(cursor ? p->portals : p->preps, name); /* cursors: portals */

	if (n)
		return n->text;
	return cursor ? NULL : inflight_text(p, name);
}

/* One Query's statements as the gate sees them, and what the engine keeps of them. */
struct query {
	const char *sql;
	size_t len;
	struct dialect_split *sp;
	struct sql_error err; /* why it could not be split */
	struct gate_stmt *st;
	struct names *ns; /* what each does to the session's names */
	struct masking *mk;
	struct gate_shape sh;
	int copy_cand; /* one may start a COPY FROM STDIN */
};

static const char *gate_prepared_text(void *ctx, const char *name)
{
	struct named *n = named_find(((struct pg *)ctx)->preps, name);

	return n ? n->text : NULL;
}

static struct mplan *gate_resolve_plan(void *ctx, struct masking *mk, struct mplan *pl)
{
	return plan_indirect(ctx, mk, pl, 0);
}

/* Definitions of name in flight, and (in a Query) earlier in it than statement i. */
static int gate_execute_texts(void *ctx, int i, const char *name, char **alt, int max)
{
	struct pg *p = ctx;
	const struct query *q = p->q;
	int nalt = 0;

	for (struct pend *e = p->head; e && nalt < max; e = e->next) {
		if (e->kind == 'P' && !e->poisoned && e->text && !strcmp(e->name, name))
			alt[nalt++] = strdup(e->text);
		for (int k = 0; k < e->nst && nalt < max; k++) {
			const struct names *tn = e->st[k].ns;

			if (tn && tn->kind == NK_PREPARE && !strcmp(tn->name, name))
				alt[nalt++] = strdup(e->st[k].text + tn->body);
		}
	}
	for (int k = 0; q && k < i && nalt < max; k++)
		if (q->ns[k].kind == NK_PREPARE && !strcmp(q->ns[k].name, name))
			alt[nalt++] = strndup(q->sql + q->sp->off[k] + q->ns[k].body,
					      (size_t)q->sp->len[k] - q->ns[k].body);
	return nalt;
}

static const char *gate_shown_text(void *ctx, const char *name)
{
	return named_text(ctx, 0, name);
}

/* For the record of EXECUTE name: the text name will most likely have when it runs (the last
 * definition forwarded before it: earlier in this Query, in flight, or recorded). malloc'd. */
static char *gate_prepared_ahead(void *ctx, int i, const char *name)
{
	struct pg *p = ctx;
	const struct query *q = p->q;
	const char *t;
	struct named *n;

	for (int k = (q ? i : 0) - 1; k >= 0; k--)
		if (q->ns[k].kind == NK_PREPARE && !strcmp(q->ns[k].name, name))
			return strndup(q->sql + q->sp->off[k] + q->ns[k].body,
				       (size_t)q->sp->len[k] - q->ns[k].body);
	if ((t = inflight_text(p, name)))
		return strdup(t);
	n = named_find(p->preps, name);
	return n ? strdup(n->text) : NULL;
}

static const struct gate_ops pg_gate_ops = {
	.prepared_text = gate_prepared_text,
	.resolve_plan = gate_resolve_plan,
	.execute_texts = gate_execute_texts,
	.shown_text = gate_shown_text,
	.prepared_ahead = gate_prepared_ahead,
};

/* Could this text, run when every request before it is answered, start a COPY FROM STDIN?
 * EXECUTE name runs what name is then (a Parse may have made it a COPY): recorded or in
 * flight. */
static int text_may_copy_in(struct pg *p, const char *text, size_t len, int depth)
{
	struct names ns;
	const struct named *n;

	if (may_copy_in(text, len))
		return 1;
	if (depth >= 4 || !may_name(text, len))
		return depth >= 4;
	sql_names(text, len, &ns);
	if (ns.kind != NK_EXECUTE)
		return 0;
	if ((n = named_find(p->preps, ns.name)) &&
	    text_may_copy_in(p, n->text, strlen(n->text), depth + 1))
		return 1;
	for (const struct pend *e = p->head; e; e = e->next)
		if (e->kind == 'P' && e->may_copy && !strcmp(e->name, ns.name))
			return 1;
	return 0;
}

/* ---- Query ---- */

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
		sql_names(t->text, t->len, &q->ns[i]);
		if (q->ns[i].kind == NK_EXECUTE)
			t->execute = q->ns[i].name;
		if (may_copy_in(t->text, t->len) ||
		    (q->ns[i].kind == NK_EXECUTE && text_may_copy_in(p, t->text, t->len, 0)))
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
	struct pend *e = pend_push(p, 'Q', n ? n : 1);

	if (!e)
		return -1;
	for (int i = 0; i < e->nst; i++) {
		e->st[i].seq = p->g.seq - (uint64_t)(n ? n : 1) + 1 + (uint64_t)i;
		e->st[i].start_us = now_us();
		if (i < n && q->ns[i].kind != NK_NONE &&
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
	return fwd(&p->s->s.out, m);
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
		return protocol_violation(p, "agent", "Query text is not NUL-terminated");
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
static int run_held_query(struct pg *p, const struct pgw_msg *m)
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
	struct names ns = {0};
	int r;

	pgw_rd_init(&rd, m);
	name = pgw_str(&rd, NULL);
	sql = pgw_str(&rd, &sql_len);
	if (!name || !sql)
		return protocol_violation(p, "agent", "malformed Parse message");
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
		sql_names(sql, sql_len, &ns);
	}
	/* The extended protocol takes one statement; judge the whole text as the server will. */
	st.text = sql;
	st.len = sql_len;
	st.plan = pl;
	st.prepared = name;
	st.execute = ns.kind == NK_EXECUTE ? ns.name : NULL;
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
	if (!(e = pend_push(p, 'P', 0)) || !(e->name = strdup(name)) || !(e->text = strdup(sql))) {
		mplan_put(pl);
		masking_put(mk);
		return -1;
	}
	e->plan = pl;
	e->plan_gen = mk ? mk->gen : 0;
	e->may_copy = may_copy_in(sql, sql_len) || ns.kind == NK_EXECUTE;
	masking_put(mk);
	return fwd(&p->s->s.out, m);
}

/* Portals hoopd Described (or saw Described) since their last Bind, as forwarded: an Execute of
 * one needs no Describe of hoopd's own. Only saves round trips: if it is wrong, the Execute's
 * rows have no description and are withheld. */
static int described(struct pg *p, const char *portal)
{
	return named_find(p->described, portal) != NULL;
}

static void set_described(struct pg *p, const char *portal, int on)
{
	if (!on) {
		named_drop(&p->described, portal);
		return;
	}
	if (described(p, portal))
		return;
	if (p->ndescribed >= 256) {
		named_prune(&p->described, NULL);
		p->ndescribed = 0;
	}
	if (named_set(&p->described, portal, NULL, NULL, NULL, 0))
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
		return protocol_violation(p, "agent", "malformed Bind message");
	for (int i = 0; i < nfmt; i++) {
		int16_t f = pgw_i16(&rd);

		if (i < 64)
			fmts[i] = f;
	}
	nparams = pgw_i16(&rd);
	if (rd.bad || nparams < 0)
		return protocol_violation(p, "agent", "malformed Bind message");
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
		return protocol_violation(p, "agent", "malformed Bind message");
	}
	/* Recorded as the portal when the server says BindComplete, with the statement as it is
	 * then. */
	e = pend_push(p, 'B', 0);
	if (!e || !(e->name = strdup(portal)) || !(e->stmt = strdup(stmt)) ||
	    !(e->params = strdup(jb_str(&j)))) {
		jb_free(&j);
		return -1;
	}
	jb_free(&j);
	set_described(p, portal, 0);
	return fwd(&p->s->s.out, m);
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
		n = named_find(p->portals, portal);
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
	n = named_find(p->preps, b->stmt);
	return n ? n->text : NULL;
}

/* Could an Execute of portal sent now start a COPY FROM STDIN? Every text the portal may have
 * by then is looked at (in one pass over the queue: a Parse in flight counts when it could be
 * one, whatever its name); a portal hoopd knows nothing of may. */
static int portal_may_copy_in(struct pg *p, const char *portal)
{
	const struct named *n = named_find(p->portals, portal);
	int pcopy = 0, bound = 0, bcopy = 0, looked = 0;

	if (n && text_may_copy_in(p, n->text, strlen(n->text), 0))
		return 1;
	for (const struct pend *e = p->head; e; e = e->next) {
		if (e->kind == 'P' && e->may_copy)
			pcopy = 1;
		if (e->kind != 'B' || strcmp(e->name, portal))
			continue;
		bound = 1;
		if (bcopy || !(n = named_find(p->preps, e->stmt)))
			continue;
		/* (bounded: a pipeline of Binds of one portal costs one look each, not more) */
		bcopy = ++looked > 8 || text_may_copy_in(p, n->text, strlen(n->text), 0);
	}
	if (bound)
		return pcopy || bcopy;
	return !named_find(p->portals, portal);
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
		return protocol_violation(p, "agent", "malformed Execute message");
	/* Its statement was judged at Parse; what runs is on record now, with its parameters. */
	st.text = portal_text_ahead(p, portal, &st.params_json);
	if (!st.text)
		st.text = "";
	st.len = strlen(st.text);
	st.portal = portal;
	if (gate_commit(&p->g, &b) != GATE_FORWARD)
		/* In place of the Execute: a poisoned Parse, so the server errors right here and
		 * skips to Sync like for any error. */
		return refuse(p, 'P', "hoop: unrecorded", b.sqlstate, b.message, &e);
	if ((mk = masking_get()) && !described(p, portal)) {
		/* The agent did not ask for the result's columns: hoopd does, for itself, so
		 * that it knows what to mask. */
		struct pend *d = pend_push(p, 'D', 0);
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
	e = pend_push(p, 'E', 1);
	if (!e || !(e->name = strdup(portal))) {
		masking_put(mk);
		return -1;
	}
	e->st[0].seq = st.seq;
	e->st[0].start_us = now_us();
	e->st[0].mk = mk; /* the plan and description are the portal's when it runs */
	if (fwd(&p->s->s.out, m))
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
		return protocol_violation(p, "agent", "malformed FunctionCall message");
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
		return refuse(p, 'F', NULL, b.sqlstate, b.message, &e);
	e = pend_push(p, 'F', 1);
	if (!e)
		return -1;
	e->st[0].seq = st.seq;
	e->st[0].start_us = now_us();
	return fwd(&p->s->s.out, m);
}

/* The agent's messages while the server is in COPY FROM STDIN (copyfromparse.c CopyGetData):
 * CopyData, CopyDone and CopyFail go on; Sync and Flush, which the server ignores there, are
 * not forwarded at all (so that a server that has already left the COPY on an error cannot
 * answer them); anything else would fail the COPY, and closes the session. */
static int agent_copy_in(struct pg *p, const struct pgw_msg *m)
{
	char why[96];

	switch (m->type) {
	case 'd':
		return fwd(&p->s->s.out, m);
	case 'c':
	case 'f':
		p->copy_in = 0;
		/* An Execute runs one statement; a Query may start another COPY: wait again. */
		if (p->copy_wait && p->copy_wait->kind != 'Q')
			p->copy_wait = NULL;
		return fwd(&p->s->s.out, m);
	case 'S':
	case 'H':
		return 0;
	case 'X':
		p->end_reason = "agent terminated the session";
		return fwd(&p->s->s.out, m);
	default:
		snprintf(why, sizeof(why), "message type 0x%02x during COPY FROM STDIN", m->type);
		return protocol_violation(p, "agent", why);
	}
}

static int agent_ready(struct pg *p, const struct pgw_msg *m)
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
		return protocol_violation(p, "agent", why);
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
			return protocol_violation(p, "agent", m->type == 'C'
								? "malformed Close message"
								: "malformed Describe message");
		/* Close: the name goes when the server says CloseComplete. */
		if (!(e = pend_push(p, (char)m->type, 0)) || !(e->name = strdup(name)))
			return -1;
		e->dkind = (char)kind;
		if (kind == 'P')
			set_described(p, name, m->type == 'D');
		return fwd(&p->s->s.out, m);
	}
	case 'S':
		if (!pend_push(p, (char)m->type, 0))
			return -1;
		p->skip = 0;
		return fwd(&p->s->s.out, m);
	case 'H': /* Flush */
	case 'd': /* CopyData */
	case 'c': /* CopyDone */
	case 'f': /* CopyFail: outside a COPY the server ignores these three */
		return fwd(&p->s->s.out, m);
	case 'X':
		p->end_reason = "agent terminated the session";
		return fwd(&p->s->s.out, m);
	default: {
		char why[64];

		snprintf(why, sizeof(why), "unexpected message type 0x%02x", m->type);
		return protocol_violation(p, "agent", why);
	}
	}
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

static int pg_cancel_held(void *st);

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
		return protocol_violation(p, "agent", "malformed CancelRequest");
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
	return fwd(&p->s->s.out, m);
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
		return fwd(&s->s.out, m);
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
			return protocol_violation(p, "agent", "data after SSLRequest");
		buf_consume(in, m->total);
		if (answer == 'S') {
			/* One byte on an empty socket: send it now, before TLS takes the fd. */
			if (send(s->a.fd, "S", 1, MSG_NOSIGNAL) != 1 || sess_tls_agent(s))
				return protocol_violation(p, "agent", "cannot start TLS");
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
		return protocol_violation(p, "agent", why);
	}
	p->params_json = startup_params(p, m, refused, sizeof(refused));
	if (!p->params_json)
		return protocol_violation(p, "agent", "malformed startup packet");
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

/* ---- server messages ---- */

static void complete(struct pg *p, struct track *t, const char *tag)
{
	struct ev_complete c = {.seq = t->seq, .tag = tag, .rows = t->rows, .bytes = t->bytes,
				.duration_us = now_us() - t->start_us};
	char *masked = t->mr ? mask_result_json(t->mr) : NULL;

	c.masked_json = masked;
	ev_complete(sess_agent(p->s), &c);
	free(masked);
}

/* standard_conforming_strings as the server reports it (at login and after each change,
 * before ReadyForQuery): the one authority on how it lexes what the agent sends next. */
static void param_status(struct pg *p, const struct pgw_msg *m)
{
	const char *k = (const char *)m->body, *v;
	size_t kl = strnlen(k, m->len);

	if (kl + 1 >= m->len)
		return;
	v = k + kl + 1;
	if (!strnlen(v, m->len - kl - 1) || strnlen(v, m->len - kl - 1) == m->len - kl - 1)
		return;
	if (!strcmp(k, "standard_conforming_strings"))
		p->lex.pg_escape_strings = strcmp(v, "on") != 0;
}

static int server_auth(struct pg *p, const struct pgw_msg *m)
{
	struct session *s = p->s;
	struct pgw_rd rd;

	switch (m->type) {
	case 'R': {
		int32_t code;

		pgw_rd_init(&rd, m);
		code = pgw_i32(&rd);
		if (rd.bad)
			return protocol_violation(p, "database", "malformed Authentication message");
		if (code == 10) {
			p->sasl = 1;
			/* SASL mechanisms. Channel binding ties SCRAM to one TLS connection, and
			 * hoopd sits between two: offer the agent no -PLUS mechanism (over a
			 * plain agent leg libpq would refuse the offer outright). */
			struct buf body = {0};
			int32_t ten = htonl(10);
			int r;

			buf_append(&body, &ten, 4);
			for (;;) {
				size_t l;
				const char *mech = pgw_str(&rd, &l);

				if (!mech)
					break;
				if (!l)
					break;
				if (l > 5 && !strcmp(mech + l - 5, "-PLUS"))
					continue;
				buf_append(&body, mech, l + 1);
			}
			buf_append(&body, "", 1);
			r = pgw_put(&s->a.out, 'R', buf_head(&body), body.len);
			buf_free(&body);
			return r;
		}
		return fwd(&s->a.out, m);
	}
	case 'K':
		pgw_rd_init(&rd, m);
		p->backend_pid = pgw_i32(&rd);
		p->backend_key = pgw_i32(&rd);
		return fwd(&s->a.out, m);
	case 'Z':
		pgw_rd_init(&rd, m);
		p->tx = pgw_u8(&rd);
		p->phase = PH_READY;
		return fwd(&s->a.out, m);
	case 'E': {
		struct pgw_err_fields f;
		struct ev_error e = {0};

		if (pgw_error_fields(m, &f) == 0) {
			e.severity = f.severity;
			e.sqlstate = f.sqlstate;
			e.message = f.message;
			ev_error(sess_agent(s), &e);
		}
		p->end_reason = "authentication failed";
		/* about the agent's own startup values, but through the detectors all the same */
		return masking_enabled() ? mask_notice(p, m) : fwd(&s->a.out, m);
	}
	case 'N':
		return masking_enabled() ? mask_notice(p, m) : fwd(&s->a.out, m);
	default: /* ParameterStatus, NegotiateProtocolVersion */
		if (m->type == 'S')
			param_status(p, m);
		return fwd(&s->a.out, m);
	}
}

/* The server answered a poisoned request: tell the agent why its statement did not run. */
static int poisoned_error(struct pg *p, struct pend *e)
{
	struct ev_error ee = {.seq = p->g.seq, .severity = "ERROR", .sqlstate = e->sqlstate,
			      .message = e->deny, .from_hoopd = 1};

	e->err_seen = 1;
	ev_error(sess_agent(p->s), &ee);
	return pgw_put_error_at(&p->s->a.out, "ERROR", e->sqlstate, e->deny, e->detail, e->hint,
				e->position);
}

/* The database answered something the queue does not expect: hoopd no longer knows which
 * statement the answers belong to, so nothing more of this session is passed on. */
static int out_of_step(struct pg *p, const struct pgw_msg *m)
{
	char why[128];

	snprintf(why, sizeof(why), "answer '%c' does not match the requests hoop forwarded",
		 m->type);
	return protocol_violation(p, "database", why);
}

/* The statement the server is answering now: its plan and, for an Execute, the portal's text
 * and description are taken as they are now, when every earlier request has been answered. */
static struct track *cur_track_r(struct pg *p)
{
	struct pend *e = p->head;
	struct track *t = cur_track(p);
	struct named *po;
	struct mplan *pl;

	if (!t || t->resolved)
		return t;
	t->resolved = 1;
	if (e->kind == 'E') {
		po = named_find(p->portals, e->name);
		if (po && may_name(po->text, strlen(po->text)))
			t->text = strdup(po->text);
		if (t->mk) {
			t->plan = po ? named_plan(p, t->mk, po) : NULL;
			if (po && po->rd && (t->rd = malloc(po->rdlen))) {
				memcpy(t->rd, po->rd, po->rdlen);
				t->rdlen = po->rdlen;
			}
		}
	}
	if (t->mk && (!t->plan || t->plan->p.execute_name[0] || t->plan->p.fetch_cursor[0])) {
		pl = t->plan ? plan_indirect(p, t->mk, t->plan, 0) : mplan_unknown();
		mplan_put(t->plan);
		t->plan = pl; /* NULL only without memory: then nothing is masked by it (withheld) */
	}
	return t;
}

/* A ReadyForQuery: a transaction ended when the status is idle. Protocol portals and cursors
 * without HOLD end with it; a held cursor made in it stays if it committed. */
static int keep_after_xact(const struct named *n)
{
	return n->holdable;
}

static void xact_end(struct pg *p)
{
	for (struct named *n = p->portals; n; n = n->next)
		if (n->this_xact && p->xact_failed)
			n->holdable = 0; /* rolled back: it goes too */
		else
			n->this_xact = 0;
	named_prune(&p->portals, keep_after_xact);
	named_prune(&p->described, NULL);
	p->ndescribed = 0;
	p->xact_failed = 0;
}

/* DataRow, CopyData (COPY TO STDOUT) and CopyOutResponse: rows of the statement being
 * answered, through its masking plan. */
static int server_rows(struct pg *p, const struct pgw_msg *m)
{
	struct pend *e = p->head;
	struct track *t;

	if (m->type == 'D' && e && e->poisoned)
		return 0;
	t = cur_track_r(p);
	if (m->type == 'H') {
		if (t && t->mk && mask_copy_start(p, t, m))
			return -1;
		return to_agent(p, m);
	}
	if (t) {
		t->rows++;
		t->bytes += m->len;
		if (t->mk)
			return m->type == 'D' ? mask_row(p, t, m) : mask_copy_data(p, t, m);
		if (masking_enabled()) /* it started before a reload turned masking on */
			return withhold(p, t, "masking was turned on while it ran");
	} else if (masking_enabled()) {
		return withhold(p, NULL,
				m->type == 'D' ? "rows hoop cannot tie to a statement"
					       : "COPY data hoop cannot tie to a statement");
	}
	return to_agent(p, m);
}

/* RowDescription: of a Describe (the portal's, kept for its Execute), or of the statement
 * being answered (its columns on record, its per-column masking plan). */
static int server_rowdesc(struct pg *p, const struct pgw_msg *m)
{
	struct pend *e = p->head;
	struct col_desc f[64];
	int n = pgw_row_columns(m, f, 64);
	struct track *t;

	if (n < 0)
		return protocol_violation(p, "database", "malformed RowDescription");
	if (e && e->poisoned)
		return 0;
	if (e && e->kind == 'D') {
		int internal = e->internal;
		struct named *po;

		/* Every earlier request is answered: this describes the portal hoopd has on record
		 * under that name now. */
		if (e->dkind == 'P' && (po = named_find(p->portals, e->name))) {
			uint8_t *rdc = malloc(m->total);

			if (!rdc)
				return -1;
			memcpy(rdc, m->body - 5, m->total);
			free(po->rd);
			po->rd = rdc;
			po->rdlen = m->total;
		}
		pend_pop(p);
		return internal ? 0 : to_agent(p, m);
	}
	if ((t = cur_track_r(p))) {
		ev_columns(sess_agent(p->s), t->seq, f, n < 64 ? n : 64);
		if (t->mk && !t->mr && track_plan_rows(p, t, m) == -ENOMEM)
			return -1;
	}
	return to_agent(p, m);
}

/* ParseComplete, BindComplete, CloseComplete: the name is the server's now (or gone). */
static int server_named(struct pg *p, const struct pgw_msg *m)
{
	struct pend *e = p->head;
	struct named *ps, *po;

	if (!e || e->kind != (m->type == '1' ? 'P' : m->type == '2' ? 'B' : 'C'))
		return out_of_step(p, m);
	switch (m->type) {
	case '1': /* ParseComplete: the statement is the server's now */
		if (e->poisoned) {
			named_drop(&p->preps, e->name); /* cannot happen: the poison fails */
			pend_pop(p);
			return 0;
		}
		if (!named_set(&p->preps, e->name, e->text, NULL, e->plan, e->plan_gen))
			return -1;
		break;
	case '2': /* BindComplete: the portal, of the statement as it is now */
		ps = named_find(p->preps, e->stmt);
		po = named_set(&p->portals, e->name, ps ? ps->text : "", e->params,
			       ps ? ps->plan : NULL, ps ? ps->plan_gen : 0);
		e->params = NULL;
		if (!po)
			return -1;
		po->this_xact = 1;
		break;
	default: /* CloseComplete: the name is gone (closing a missing one is no error) */
		named_drop(e->dkind == 'S' ? &p->preps : &p->portals, e->name);
	}
	pend_pop(p);
	return to_agent(p, m);
}

/* CommandComplete, EmptyQueryResponse, PortalSuspended: the statement being answered ends. */
static int server_complete(struct pg *p, const struct pgw_msg *m)
{
	struct pend *e = p->head;
	struct track *t;
	char tag[64];

	if (e && e->poisoned)
		return 0;
	if (m->type == 'C')
		snprintf(tag, sizeof(tag), "%.*s", (int)(m->len ? m->len - 1 : 0),
			 (const char *)m->body);
	else
		snprintf(tag, sizeof(tag), "%s", m->type == 'I' ? "EMPTY" : "SUSPENDED");
	if ((t = cur_track_r(p))) {
		complete(p, t, p->withhold ? "WITHHELD" : tag);
		if (m->type == 'C')
			names_done(p, t->text, tag, t->plan, t->mk ? t->mk->gen : 0);
		e->cur++;
	}
	if (!strcmp(tag, "ROLLBACK"))
		p->xact_failed = 1;
	if (e && e->kind == 'E')
		pend_pop(p);
	return to_agent(p, m);
}

/* ErrorResponse in the ready phase: the poison's becomes the refusal; any other is on record
 * and goes to the agent (through masking); the extended protocol then skips to Sync. */
static int server_error(struct pg *p, const struct pgw_msg *m)
{
	struct pend *e = p->head;
	struct pgw_err_fields f;
	struct track *t;

	if (pgw_error_fields(m, &f))
		return protocol_violation(p, "database", "malformed ErrorResponse");
	p->xact_failed = 1;
	if (e && e->poisoned) {
		if (!p->withhold && poisoned_error(p, e))
			return -1;
	} else {
		struct ev_error ee = {.severity = f.severity, .sqlstate = f.sqlstate,
				      .message = f.message};

		if ((t = cur_track(p))) {
			ee.seq = t->seq;
			e->cur = e->nst; /* the rest of a multi-statement Query is skipped */
		}
		ev_error(sess_agent(p->s), &ee);
		if (p->withhold)
			;
		else if (masking_enabled() ? mask_notice(p, m) : to_agent(p, m))
			return -1;
	}
	/* A failed Parse or Bind of the unnamed statement or portal has already dropped the old
	 * one. */
	if (e && e->kind == 'P' && e->name && !e->name[0])
		named_drop(&p->preps, "");
	if (e && e->kind == 'B' && e->name && !e->name[0])
		named_drop(&p->portals, "");
	/* Extended protocol: the server skips everything up to Sync, and until one comes,
	 * whatever the agent sends. */
	if (e && strchr("PBDEC", e->kind)) {
		while (p->head && p->head->kind != 'S')
			pend_pop(p);
		if (!p->head)
			p->skip = 1;
	}
	return 0;
}

/* ReadyForQuery: a Query, FunctionCall or Sync is answered; the transaction status. */
static int server_idle(struct pg *p, const struct pgw_msg *m)
{
	struct pend *e = p->head;
	struct pgw_rd rd;

	if (!e || (e->kind != 'Q' && e->kind != 'F' && e->kind != 'S'))
		return out_of_step(p, m);
	pgw_rd_init(&rd, m);
	p->tx = pgw_u8(&rd);
	if (e->poisoned && !e->err_seen && !p->withhold && poisoned_error(p, e))
		return -1;
	if (e->kind == 'Q' || e->poisoned) {
		/* A simple Query (the poison in place of a FunctionCall is one too) replaces the
		 * unnamed statement and portal */
		named_drop(&p->preps, "");
		named_drop(&p->portals, "");
	}
	pend_pop(p);
	if (p->tx == 'I')
		xact_end(p);
	p->withhold = 0;
	return to_agent(p, m);
}

/* Everything the database sends once the session is ready, by message type. */
static int server_ready(struct pg *p, const struct pgw_msg *m)
{
	struct pend *e = p->head;
	struct track *t;

	switch (m->type) {
	case 'D': /* DataRow */
	case 'd': /* CopyData (COPY TO STDOUT) */
	case 'H': /* CopyOutResponse */
		return server_rows(p, m);
	case 'T':
		return server_rowdesc(p, m);
	case 'n': /* NoData */
		if (e && e->kind == 'D') {
			int internal = e->internal;

			pend_pop(p);
			if (internal)
				return 0;
		}
		return to_agent(p, m);
	case 't': /* ParameterDescription */
		return to_agent(p, m);
	case '1':
	case '2':
	case '3':
		return server_named(p, m);
	case 'C':
	case 'I':
	case 's':
		return server_complete(p, m);
	case 'E':
		return server_error(p, m);
	case 'Z':
		return server_idle(p, m);
	case 'G': /* CopyInResponse: the server reads CopyData now */
		if (!e || e != p->copy_wait || p->copy_in)
			return out_of_step(p, m);
		p->copy_in = 1;
		return to_agent(p, m);
	case 'W': /* CopyBothResponse: replication streaming */
		return protocol_violation(p, "database",
					  "COPY BOTH (replication streaming) is not relayed");
	case 'V': /* FunctionCallResponse */
		if (e && e->poisoned)
			return 0;
		if ((t = cur_track(p)))
			complete(p, t, "FUNCTION");
		if (e)
			e->cur = e->nst;
		return to_agent(p, m);
	case 'N':
		return masking_enabled() ? mask_notice(p, m) : to_agent(p, m);
	case 'A':
		return masking_enabled() ? mask_notification(p, m) : to_agent(p, m);
	default: /* S K v c: parameter status, COPY framing */
		if (m->type == 'S')
			param_status(p, m);
		return to_agent(p, m);
	}
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
		pend_pop(p);
	while (p->preps) {
		struct named *n = p->preps;

		p->preps = n->next;
		named_free(n);
	}
	while (p->portals) {
		struct named *n = p->portals;

		p->portals = n->next;
		named_free(n);
	}
	named_prune(&p->described, NULL);
	catbox_put(p->cat);
	big_free(p->big);
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
			if (big_take(p, in))
				return -1;
			continue;
		}
		if (p->phase == PH_STARTUP && buf_head(in)[0] == 0x16)
			return protocol_violation(p, "agent",
						  "TLS record where a startup message belongs");
		/* A message no state takes is refused by its header, before its body is
		 * buffered (it may say it is 64 MiB). */
		if (p->phase == PH_READY && !strchr("QPBDECSHdcfFX", buf_head(in)[0])) {
			char why[64];

			snprintf(why, sizeof(why), "unexpected message type 0x%02x",
				 buf_head(in)[0]);
			return protocol_violation(p, "agent", why);
		}
		if (p->phase == PH_READY && in->len >= 5 &&
		    (buf_head(in)[0] == 'Q' || buf_head(in)[0] == 'P')) {
			uint32_t len = pgw_be32(buf_head(in) + 1);

			if (len >= 5 && len <= hoopd.o.max_message &&
			    len - 4 > (size_t)limits()->statement_bytes + PG_BIG_SLACK) {
				if (big_start(p, in, len))
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
			return protocol_violation(p, "agent", why);
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
			r = fwd(&p->s->s.out, &m); /* passwords and SASL: relayed, never kept */
		else if ((m.type == 'Q' || m.type == 'P') && masking_enabled() &&
			 (r = pg_catalog_ready(p)) != 0)
			return r < 0 ? -1 : 0; /* waiting for the catalog: resumed when it is read */
		else if ((m.type == 'Q' || m.type == 'P') && settle_lexing(p, &m))
			return 0; /* resumed when the server has answered what is in flight */
		else
			r = agent_ready(p, &m);
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
					return protocol_violation(p, "database",
								  "data after the TLS answer");
				if (sess_tls_server(s, tls_upstream_ctx(s), tls_upstream_sni(s)))
					return protocol_violation(p, "database", "cannot start TLS");
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
			return protocol_violation(p, "database", why);
		if (p->phase == PH_READY)
			r = server_ready(p, &m);
		else if (p->phase == PH_AUTH)
			r = server_auth(p, &m);
		else
			r = fwd(&s->a.out, &m);
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

/* ---- held statements (engine_ops) ---- */

static int pg_fail_held(void *st, const char *sqlstate, const char *message)
{
	struct pg *p = st;
	struct pend *e;
	int r;

	if (!p || !p->held)
		return -1;
	free(p->held);
	p->held = NULL;
	/* An extended-protocol error arrived while it waited: the server would have ignored
	 * it, and answers nothing for it. */
	r = p->skip ? 0 : refuse(p, 'Q', NULL, sqlstate, message, &e);
	sess_resume(p->s);
	return r;
}

static int pg_cancel_held(void *st)
{
	struct pg *p = st;

	if (hold_ops)
		hold_ops->forget(p->s, "cancelled by the client");
	return pg_fail_held(p, "57014", "canceling statement due to user request");
}

static int pg_resume_held(void *st, enum verdict v, const char *message)
{
	struct pg *p = st;
	struct pgw_msg m;
	const char *why;
	uint8_t *msg;
	int r;

	if (!p || !p->held)
		return -1;
	msg = p->held;
	p->held = NULL;
	if (pgw_frame(msg, p->held_len, 0, UINT32_MAX, &m, &why) != PGW_OK) {
		free(msg);
		return -1;
	}
	p->s->held = 0;
	if (p->skip) {
		r = 0; /* the server ignores it (see pg_fail_held) */
	} else if (v == VERDICT_DENY) {
		struct pend *e;

		r = refuse(p, 'Q', NULL, "42501", message ? message : "hoop: statement denied", &e);
	} else {
		struct pglex_saved sv;

		pglex_set(p->lex.pg_escape_strings, &sv);
		r = run_held_query(p, &m);
		pglex_restore(&sv);
	}
	free(msg);
	sess_resume(p->s);
	return r;
}

/*
 * What the held text runs that its own words do not show: for each EXECUTE, the prepared
 * statement's text, and for each FETCH/MOVE, the cursor's, as this session recorded them (what
 * hoopd masks and judges by). A JSON array, or NULL when there is none.
 */
static char *pg_held_runs(void *st, const char *text, size_t len)
{
	struct pg *p = st;
	char *t = strndup(text, len);
	PgQuerySplitResult sp;
	struct jbuf j;
	int n = 0;
	char *out = NULL;

	if (!t)
		return NULL;
	sp = pg_query_split_with_parser(t);
	jb_init(&j);
	jb_arr_open(&j);
	for (int i = 0; !sp.error && i < sp.n_stmts; i++) {
		int off = sp.stmts[i]->stmt_location;
		int l = sp.stmts[i]->stmt_len ? sp.stmts[i]->stmt_len : (int)len - off;
		struct sqlfacts *f = calloc(1, sizeof(*f));
		struct maskplan mp;
		const char *kind = NULL, *name = NULL, *ran = NULL;

		if (!f)
			break;
		memset(&mp, 0, sizeof(mp));
		sqlfacts_analyze(t + off, (size_t)l, f);
		if (f->execute_name[0]) {
			kind = "prepared statement";
			name = f->execute_name;
			ran = named_text(p, 0, name);
		} else if (!maskplan_build(t + off, (size_t)l, NULL, &hoopd.pol->masking, &mp) &&
			   mp.fetch_cursor[0]) {
			kind = "cursor";
			name = mp.fetch_cursor;
			ran = named_text(p, 1, name);
		}
		if (kind) {
			jb_obj_open(&j);
			jb_kv_str(&j, "what", kind);
			jb_kv_str(&j, "name", name);
			if (ran && *ran)
				jb_kv_str(&j, "text", ran);
			else
				jb_kv_str(&j, "unknown", ran ? "hoopd did not record its text"
							     : "no such name in this session");
			jb_obj_close(&j);
			n++;
		}
		maskplan_free(&mp);
		free(f);
	}
	jb_arr_close(&j);
	pg_query_free_split_result(sp);
	free(t);
	if (n && !j.oom)
		out = strdup(jb_str(&j));
	jb_free(&j);
	return out;
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
