/* The statement gate (gate.h): shape, plan, verdict, record, hold, for every engine. */
#include "gate.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "record.h"
#include "daemon.h"
#include "json.h"
#include "mask_live.h"
#include "policy.h"
#include "session.h"
#include "sqlfacts.h"
#include "sqlshape.h"
#include "strutil.h"

static enum verdict allow_all(struct judgement *j)
{
	return VERDICT_ALLOW;
}

/* The verdict's plug points (verdict.h): the gate is what calls them. */
verdict_fn verdict_hook = allow_all;
const struct hold_ops *hold_ops;

/* The loop thread's scratch for a shape (not on the stack, and not malloc'd per statement: a
 * 32 KiB malloc makes glibc consolidate its free lists every time). */
static struct sqlshape g_shape;

void gate_init(struct gate *g, struct session *s, const struct gate_ops *ops, void *ctx)
{
	memset(g, 0, sizeof(*g));
	g->s = s;
	g->ops = ops;
	g->ctx = ctx;
}

void gate_free(struct gate *g)
{
	/* the session ends: approval_mode: retry requests it asked go with it (a held
	 * statement's engine has said so already) */
	if (g->retried && hold_ops && hold_ops->forget && g->s)
		hold_ops->forget(g->s, "session ended");
	free(g->made);
	g->made = NULL;
	g->nmade = 0;
}

/* ---- shapes and plans ---- */

/* May what was worked out about this one-statement text be kept by its shape? Only when it
 * depends on the text alone (stmtcache.h): plain reads and writes, transaction control and
 * SHOW, with a plan that names no relation the catalog lacks, makes none, runs nothing of the
 * session's (EXECUTE, cursors) and reads no constant's value. */
static int keep_shape(const struct gate *g, const struct sqlfacts *f, const struct mplan *pl)
{
	const uint64_t plain = 1ULL << SK_SELECT | 1ULL << SK_INSERT | 1ULL << SK_UPDATE |
			       1ULL << SK_DELETE | 1ULL << SK_MERGE | 1ULL << SK_TRANSACTION |
			       1ULL << SK_SHOW;

	if (!f->kinds || (f->kinds & ~plain) || f->parse_error || f->too_many ||
	    f->execute_name[0] || g->nmade || g->made_overflow)
		return 0;
	if (!pl)
		return 1;
	return !pl->p.created_rel[0] && !pl->p.unknown_rel[0] && !pl->p.execute_name[0] &&
	       !pl->p.fetch_cursor[0] && !pl->p.declare_cursor[0] && !pl->p.prepare_name[0] &&
	       !pl->p.copy && !pl->p.const_sensitive && !pl->p.error[0];
}

int gate_shape_find(struct gate *g, const struct masking *mk, char protocol, const char *sql,
		    size_t len, struct gate_shape *sh)
{
	memset(sh, 0, sizeof(*sh));
	sh->gens.policy = hoopd.pol_gen;
	sh->gens.masking = mk ? mk->gen : 0;
	sh->gens.catalog = mk ? cat_gen(g->cat) : 0;
	sh->gens.protocol = (uint64_t)protocol;
	if (g->nmade || g->made_overflow || !g->dialect || !g->dialect->shape ||
	    g->dialect->shape(g->ds, sql, len, &g_shape))
		return 0;
	sh->shaped = 1;
	sh->off = g_shape.off;
	sh->len = g_shape.len;
	sh->cached = stmtcache_get(g_shape.key, g_shape.klen, &sh->gens, &sh->hit);
	return 1;
}

int gate_split(struct gate *g, const char *sql, size_t len, struct dialect_split *out,
	       struct sql_error *err)
{
	return g->dialect->split(g->ds, sql, len, out, err);
}

/* After the verdict on a shaped text that was not kept: keep its facts (j->facts_out, taken)
 * and plan when keep_shape says they may be. */
static void shape_keep(const struct gate *g, const struct gate_shape *sh, struct judgement *j,
		       struct mplan *pl)
{
	if (j->facts_out && keep_shape(g, j->facts_out, pl))
		stmtcache_put(g_shape.key, g_shape.klen, &sh->gens, j->facts_out, pl);
	else
		free(j->facts_out);
	j->facts_out = NULL;
}

struct mplan *gate_plan(struct gate *g, struct masking *mk, const char *sql, size_t len)
{
	struct mplan *pl = mplan_build(mk, g->cat, sql, len, (const char (*)[64])g->made,
				       g->nmade);

	if (!pl)
		return NULL;
	if (pl->p.created_rel[0]) {
		int known = 0;

		for (int i = 0; i < g->nmade && !known; i++)
			known = !strcmp(g->made[i], pl->p.created_rel);
		if (!known && g->nmade < GATE_MAX_MADE) {
			char (*m)[64] = realloc(g->made, (size_t)(g->nmade + 1) * sizeof(*m));

			if (!m) {
				mplan_put(pl);
				return NULL;
			}
			g->made = m;
			snprintf(g->made[g->nmade++], 64, "%s", pl->p.created_rel);
		} else if (!known) {
			g->made_overflow = 1;
		}
		catalog_stale(g->s, g->s->database); /* other sessions see it at the next read */
	}
	if (g->made_overflow && !pl->p.execute_name[0] && !pl->p.fetch_cursor[0]) {
		/* more relation names than hoop keeps: nothing is trusted from now on */
		mplan_put(pl);
		pl = mplan_unknown();
		if (!pl)
			return NULL;
	}
	if (pl->p.unknown_rel[0])
		catalog_stale(g->s, g->s->database);
	return pl;
}

/* The plan the verdict reads (a reference): EXECUTE and FETCH by what their name is now. */
static struct mplan *resolve(struct gate *g, struct masking *mk, struct mplan *pl)
{
	if (!mk || !pl)
		return NULL;
	if (g->ops && g->ops->resolve_plan)
		return g->ops->resolve_plan(g->ctx, mk, pl);
	return mplan_ref(pl);
}

/* ---- verdicts ---- */

static const char *prepared_text(void *ctx, const char *name, int *escape)
{
	struct gate *g = ctx;

	if (g->cand_name && !strcmp(g->cand_name, name))
		return g->cand_text; /* not yet sent: the server will read it as it lexes now */
	return g->ops && g->ops->prepared_text ? g->ops->prepared_text(g->ctx, name, escape)
					       : NULL;
}

static enum verdict judge(struct gate *g, const char *protocol, const char *text, size_t len,
			  int parse_error, const struct mplan *plan, const struct sqlfacts *facts,
			  int want_facts, struct judgement *j)
{
	memset(j, 0, sizeof(*j));
	j->facts = facts;
	j->want_facts = want_facts;
	j->s = g->s;
	j->protocol = protocol;
	j->text = text;
	j->len = len;
	j->parse_error = parse_error;
	j->user = g->s->user; /* the login (sess_set_login) */
	j->database = g->s->database;
	j->prepared = prepared_text;
	j->prepared_ctx = g;
	j->cat = g->cat;
	j->plan = plan ? &plan->p : NULL;
	return verdict_hook(j);
}

static int stricter(enum verdict a, enum verdict b)
{
	static const int rank[] = {[VERDICT_ALLOW] = 0, [VERDICT_HOLD] = 1, [VERDICT_DENY] = 2};

	return rank[a] > rank[b];
}

/* Every text EXECUTE name may run (those in alt) is the one approvers are shown. */
static int one_text(const struct gate *g, const char *name, char *const *alt, int nalt)
{
	const char *shown = g->ops && g->ops->shown_text ? g->ops->shown_text(g->ctx, name) : NULL;

	if (!shown)
		return 0;
	for (int a = 0; a < nalt; a++)
		if (!alt[a] || strcmp(alt[a], shown))
			return 0;
	return 1;
}

/*
 * EXECUTE name is judged (verdict.c) by the text name has. Until the server acknowledges them,
 * definitions in flight (sent earlier, or earlier in this batch) may change that text before
 * the EXECUTE runs: each text it may then have is judged too, and the strictest verdict
 * stands. A hold needs every one of them to be the text the approver is shown.
 */
static enum verdict judge_execute(struct gate *g, struct gate_batch *b, int i, enum verdict v,
				  struct judgement *j)
{
	const struct gate_stmt *t = &b->st[i];
	char *alt[16];
	int nalt = 0;

	if (g->ops && g->ops->execute_texts)
		nalt = g->ops->execute_texts(g->ctx, i, t->execute, alt, 16);
	for (int a = 0; a < nalt; a++) {
		struct judgement ja;
		struct mplan *pl = NULL, *vp = NULL;
		enum verdict va;

		if (!alt[a])
			continue;
		if (b->mk && (pl = gate_plan(g, b->mk, alt[a], strlen(alt[a]))))
			vp = resolve(g, b->mk, pl);
		g->cand_name = t->execute;
		g->cand_text = alt[a];
		va = judge(g, "simple", t->text, t->len, 0, vp, NULL, 0, &ja);
		g->cand_name = g->cand_text = NULL;
		mplan_put(vp);
		mplan_put(pl);
		if (stricter(va, v)) {
			v = va;
			*j = ja;
		}
	}
	if (nalt && v == VERDICT_HOLD && !one_text(g, t->execute, alt, nalt)) {
		/* An approver is shown one text while another may be the one that runs: no hold
		 * while the name has definitions in flight that differ. */
		v = VERDICT_DENY;
		snprintf(j->message, sizeof(j->message),
			 "hoop: EXECUTE of %.63s cannot wait for approval while %.63s is being "
			 "redefined; send it once the new definition is answered",
			 t->execute, t->execute);
	}
	for (int a = 0; a < nalt; a++)
		free(alt[a]);
	return v;
}

void gate_judge(struct gate *g, struct gate_batch *b)
{
	struct gate_shape *sh = b->shape && b->shape->shaped && b->n == 1 ? b->shape : NULL;
	int can_hold = b->may_hold && hold_ops;
	struct judgement j, deny_j, hold_j;

	memset(&deny_j, 0, sizeof(deny_j));
	memset(&hold_j, 0, sizeof(hold_j));
	b->v = VERDICT_ALLOW;
	b->unparsed = 0;
	for (int i = 0; i < b->n; i++) {
		struct gate_stmt *t = &b->st[i];
		struct mplan *vp = resolve(g, b->mk, t->plan);

		t->v = judge(g, b->protocol, t->text, t->len, b->parse_error, vp,
			     t->facts ? t->facts : sh && sh->cached ? sh->hit.facts : NULL,
			     sh && !sh->cached && !t->facts, &j);
		mplan_put(vp);
		if (t->execute)
			t->v = judge_execute(g, b, i, t->v, &j);
		str_copy(t->rule, sizeof(t->rule), j.rule);
		if (sh && !sh->cached)
			shape_keep(g, sh, &j, t->plan);
		if (t->v == VERDICT_HOLD && !can_hold)
			t->v = VERDICT_DENY; /* nobody may decide it here (docs/events.md) */
		/* deny over hold over allow */
		if (t->v == VERDICT_DENY) {
			if (b->v != VERDICT_DENY)
				deny_j = j;
			b->v = VERDICT_DENY;
		} else if (t->v == VERDICT_HOLD && b->v == VERDICT_ALLOW) {
			b->v = VERDICT_HOLD;
			hold_j = j;
		}
	}
	if (b->v == VERDICT_ALLOW) {
		b->rule[0] = b->message[0] = '\0';
		return;
	}
	j = b->v == VERDICT_DENY ? deny_j : hold_j;
	str_copy(b->rule, sizeof(b->rule), j.rule);
	str_copy(b->message, sizeof(b->message), j.message);
	/* refused because the grammar rejects the text itself: the server's own answer says
	 * more to the agent than a rule's (a rule never sees such text) */
	b->unparsed = b->v == VERDICT_DENY && j.unparsed && b->parse_error &&
		      b->err.kind == SQL_ERR_GRAMMAR;
}

/* ---- acting on the verdict ---- */

static int refused(struct gate_batch *b, const char *sqlstate, const char *message)
{
	b->sqlstate = sqlstate;
	if (message != b->message)
		str_copy(b->message, sizeof(b->message), message);
	return GATE_REFUSE;
}

/* How hoopd reads a held text, for the approver: NULL when it is one statement read as it is
 * written under the server's defaults (there is nothing to add then), else malloc'd JSON. */
static char *held_split(const struct gate *g, const struct gate_batch *b)
{
	int escape = g->ds && g->ds->pg_escape_strings;
	struct jbuf j;
	char *out;

	if (b->n <= 1 && !escape && !b->reading && !b->schema)
		return NULL;
	jb_init(&j);
	jb_obj_open(&j);
	jb_key(&j, "statements");
	jb_arr_open(&j);
	for (int i = 0; i < b->n; i++) {
		char *t = strndup(b->st[i].text, b->st[i].len);

		jb_obj_open(&j);
		jb_key(&j, "text");
		jb_str_val(&j, t ? t : "");
		jb_kv_bool(&j, "held", b->st[i].v == VERDICT_HOLD);
		jb_kv_str(&j, "rule", b->st[i].rule);
		jb_obj_close(&j);
		free(t);
	}
	jb_arr_close(&j);
	if (escape)
		jb_kv_str(&j, "standard_conforming_strings", "off");
	if (b->reading)
		jb_kv_str(&j, "sql_mode", b->reading);
	if (b->schema)
		jb_kv_str(&j, "database", b->schema);
	jb_obj_close(&j);
	out = j.oom ? NULL : strdup(jb_str(&j));
	jb_free(&j);
	return out;
}

/* Park the whole batch: nothing of it runs until it is decided. */
static int hold(struct gate *g, struct gate_batch *b)
{
	char *split = held_split(g, b);
	int hr = hold_ops->open(g->s, b->rule, b->message, b->text, b->len, split, b->hold_id,
				sizeof(b->hold_id));

	free(split);

	if (hr == -EDQUOT)
		return refused(b, "53400",
			       "hoop: this statement needs approval, and too many statements from "
			       "this agent are already waiting for one: refused (retry once "
			       "approvers have decided)");
	if (hr)
		return refused(b, "42501",
			       "hoop: this statement needs approval, and no request could be opened");
	for (int i = 0; i < b->n; i++) {
		/* numbered as they will be when they run (the replay records them again) */
		struct ev_statement es = {.seq = g->seq + 1 + (uint64_t)i,
					  .protocol = b->protocol,
					  .text = b->st[i].text,
					  .text_len = b->st[i].len,
					  .verdict = "hold",
					  .parse_error = b->parse_error};

		ev_statement(sess_agent(g->s), &es);
	}
	return GATE_HOLD;
}

/* Does the session's target take approvals by retry (policy approval_mode)? */
static int retry_mode(const struct gate *g)
{
	const struct policy *pol = hoopd.pol;

	if (!pol || !g->s->target[0])
		return 0;
	for (int i = 0; i < pol->ntargets; i++)
		if (!strcmp(pol->targets[i].name, g->s->target))
			return pol->targets[i].approval_retry;
	return 0;
}

/*
 * approval_mode: retry: nothing is parked. The batch runs (GATE_FORWARD, its held statements
 * now allowed by the approval) when an approver approved this text's request, else it is
 * refused with the request's id and on record as refused for it.
 */
static int retry(struct gate *g, struct gate_batch *b)
{
	char *split = held_split(g, b);
	char denial[512] = "", msg[256];
	int r;

	g->retried = 1; /* gate_free closes what it asked */
	r = hold_ops->retry(g->s, b->rule, b->message, b->text, b->len, split, g->seq, b->n,
			    b->hold_id, sizeof(b->hold_id), denial, sizeof(denial));

	free(split);
	if (r == -EDQUOT)
		return refused(b, "53400",
			       "hoop: this statement needs approval, and too many statements from "
			       "this agent are already waiting for one: refused (retry once "
			       "approvers have decided)");
	if (r < 0)
		return refused(b, "42501",
			       "hoop: this statement needs approval, and no request could be opened");
	if (r == HOLD_RETRY_RUN) {
		for (int i = 0; i < b->n; i++)
			if (b->st[i].v == VERDICT_HOLD) {
				b->st[i].v = VERDICT_ALLOW;
				snprintf(b->st[i].rule, sizeof(b->st[i].rule), "approved %s",
					 b->hold_id);
			}
		b->v = VERDICT_ALLOW;
		return GATE_FORWARD;
	}
	if (r == HOLD_RETRY_DENIED)
		snprintf(msg, sizeof(msg), "%.200s (approval %s)", denial, b->hold_id);
	else
		snprintf(msg, sizeof(msg),
			 "hoop: this statement needs approval (%.60s): request %s is open; once an "
			 "approver has run hoopctl approve %s, send the same statement again as "
			 "this connection's next statement",
			 b->rule, b->hold_id, b->hold_id);
	for (int i = 0; i < b->n; i++) {
		const struct gate_stmt *t = &b->st[i];
		struct ev_statement es = {.seq = ++g->seq,
					  .protocol = b->protocol,
					  .text = t->text,
					  .text_len = t->len,
					  .verdict = t->v == VERDICT_HOLD ? "deny" : "not_run",
					  .reason = t->rule[0] ? t->rule : b->rule,
					  .parse_error = b->parse_error,
					  .refused = r == HOLD_RETRY_DENIED ? "approval_denied"
									    : "approval_pending",
					  .approval = b->hold_id};

		b->st[i].seq = es.seq;
		ev_statement(sess_agent(g->s), &es); /* nothing runs: refused either way */
	}
	b->v = VERDICT_DENY;
	return refused(b, "42501", msg);
}

/* Statement i's record; 0, or what ev_statement said. */
static int record(struct gate *g, struct gate_batch *b, int i)
{
	struct gate_stmt *t = &b->st[i];
	/* an EXECUTE in the text: what it will most likely run (a Parse names its own) */
	char *ptext = t->execute && !t->prepared && g->ops && g->ops->prepared_ahead
			      ? g->ops->prepared_ahead(g->ctx, i, t->execute)
			      : NULL;
	struct ev_statement es = {.seq = ++g->seq,
				  .protocol = b->protocol,
				  .text = t->text,
				  .text_len = t->len,
				  .prepared = t->prepared ? t->prepared : t->execute,
				  .prepared_text = ptext,
				  .portal = t->portal,
				  .params_json = t->params_json,
				  .parse_error = b->parse_error,
				  .refused = b->unparsed && b->v == VERDICT_DENY ? "unparsed" : NULL};
	int r;

	/* Any deny: none of them runs, and every one is on record as not run. */
	if (b->v == VERDICT_DENY)
		es.verdict = t->v == VERDICT_DENY ? "deny" : "not_run";
	else
		es.verdict = "allow";
	if (t->v == VERDICT_DENY && b->rule[0])
		es.reason = b->rule;
	else if (t->rule[0])
		es.reason = t->rule;
	t->seq = es.seq;
	r = ev_statement(sess_agent(g->s), &es);
	free(ptext);
	return r;
}

/*
 * A text with no statement (blanks, semicolons, comments only): the server answers it empty,
 * and it is forwarded as it came, so it is on record like any statement, under a number of its
 * own (its answer is filed under that number, not the statement before). 0, or what
 * ev_statement said.
 */
static int record_blank(struct gate *g, struct gate_batch *b)
{
	struct ev_statement es = {.seq = ++g->seq,
				  .protocol = b->protocol,
				  .text = b->text ? b->text : "",
				  .text_len = b->text ? b->len : 0,
				  .verdict = "allow",
				  .reason = "no statement: only blanks, semicolons or comments"};

	return ev_statement(sess_agent(g->s), &es);
}

int gate_commit(struct gate *g, struct gate_batch *b)
{
	int unrecorded = 0;
	char msg[256];

	b->sqlstate = NULL;
	b->hold_id[0] = '\0';
	if (b->v == VERDICT_HOLD && (!b->may_hold || !hold_ops))
		b->v = VERDICT_DENY; /* made a hold after gate_judge, where none may wait */
	if (b->v == VERDICT_HOLD && retry_mode(g) && hold_ops->retry) {
		int r = retry(g, b);

		if (r != GATE_FORWARD)
			return r;
	}
	if (b->v == VERDICT_HOLD)
		return hold(g, b);
	if (!b->n && b->v != VERDICT_DENY && !b->quiet_allow && record_blank(g, b))
		return refused(b, GATE_UNRECORDED_STATE, GATE_UNRECORDED_MSG);
	for (int i = 0; i < b->n; i++) {
		if (b->quiet_allow && b->v != VERDICT_DENY)
			continue;
		if (record(g, b, i))
			unrecorded = 1;
	}
	if (unrecorded && b->v != VERDICT_DENY) /* no statement runs without its record */
		return refused(b, GATE_UNRECORDED_STATE, GATE_UNRECORDED_MSG);
	if (b->v == VERDICT_DENY && b->unparsed)
		return refused(b, b->err.sqlstate, b->message);
	if (b->v == VERDICT_DENY) {
		if (b->message[0])
			return refused(b, "42501", b->message);
		snprintf(msg, sizeof(msg), "hoop: %s denied by policy",
			 b->what ? b->what : "statement");
		return refused(b, "42501", msg);
	}
	return GATE_FORWARD;
}

int gate_run(struct gate *g, struct gate_batch *b)
{
	gate_judge(g, b);
	return gate_commit(g, b);
}

int gate_record_oversized(struct gate *g, const char *protocol, const char *prepared,
			  const char *prefix, size_t plen, size_t total, const char *sha256,
			  const char *limit)
{
	struct ev_statement es = {.seq = ++g->seq,
				  .protocol = protocol,
				  .text = prefix,
				  .text_len = plen,
				  .prepared = prepared,
				  .verdict = "deny",
				  .reason = limit,
				  .text_bytes = total,
				  .text_sha256 = sha256};

	return ev_statement(sess_agent(g->s), &es) ? -1 : 0;
}
