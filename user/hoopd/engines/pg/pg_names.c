/*
 * The PostgreSQL engine's names: prepared statements, portals and cursors as the server has
 * them (struct named), what one statement does to them read from PostgreSQL's parse tree
 * (PREPARE, EXECUTE, DEALLOCATE, DECLARE, CLOSE, DISCARD ALL), the masking plans of what a
 * name runs, and what the statement gate asks the engine about them (struct gate_ops),
 * definitions still in flight included. Names are recorded only when the server acknowledges
 * them (pg_back.c); see the top of pg.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pg_int.h"
#include "pglex.h"

/* ---- the names the server has ---- */

struct named *pg_named_find(struct named *l, const char *name)
{
	for (; l; l = l->next)
		if (!strcmp(l->name, name))
			return l;
	return NULL;
}

void pg_named_free(struct named *n)
{
	mplan_put(n->plan);
	free(n->rd);
	free(n->name);
	free(n->text);
	free(n->params);
	free(n);
}

/* Record name as the server now has it: text, params (taken) and plan (a reference taken). */
struct named *pg_named_set(struct named **l, const char *name, const char *text, char *params,
			   struct mplan *plan, uint64_t plan_gen)
{
	struct named *n = pg_named_find(*l, name);

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
	/* the server has just acknowledged it, so it read it as the session lexes now (the
	 * engine keeps libpg_query's settings in step with every ParameterStatus) */
	n->lex_escape = !standard_conforming_strings;
	n->params = params;
	n->plan = mplan_ref(plan);
	n->plan_gen = plan_gen;
	return n;
}

void pg_named_drop(struct named **l, const char *name)
{
	for (struct named **pp = l; *pp; pp = &(*pp)->next) {
		if (!strcmp((*pp)->name, name)) {
			struct named *n = *pp;

			*pp = n->next;
			pg_named_free(n);
			return;
		}
	}
}

/* Drop every entry for which keep() says no (NULL: all). */
void pg_named_prune(struct named **l, int (*keep)(const struct named *n))
{
	for (struct named **pp = l; *pp;) {
		struct named *n = *pp;

		if (keep && keep(n)) {
			pp = &n->next;
			continue;
		}
		*pp = n->next;
		pg_named_free(n);
	}
}

/* ---- the plans of names ---- */

/* The plan of a recorded statement, portal or cursor (a reference), built from its text by mk
 * when it has none or one of another masking engine (a reload renumbers the rules). */
struct mplan *pg_named_plan(struct pg *p, struct masking *mk, struct named *n)
{
	if (!n->text[0])
		return mplan_unknown(); /* bound from a statement hoopd does not know */
	if (!n->plan || n->plan_gen != mk->gen) {
		struct pglex_saved sv;
		struct mplan *pl;

		/* read as the server read it when the name was made, not as the session lexes
		 * now (a SET standard_conforming_strings since cannot change what it runs) */
		pglex_set(n->lex_escape, &sv);
		pl = gate_plan(&p->g, mk, n->text, strlen(n->text));
		pglex_restore(&sv);
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
struct mplan *pg_plan_indirect(struct pg *p, struct masking *mk, struct mplan *pl, int depth)
{
	struct named *n = NULL;
	struct mplan *r, *q;

	if (pl->p.execute_name[0])
		n = pg_named_find(p->preps, pl->p.execute_name);
	else if (pl->p.fetch_cursor[0])
		n = pg_named_find(p->portals, pl->p.fetch_cursor);
	else
		return mplan_ref(pl);
	if (!n || depth >= 4 || !(q = pg_named_plan(p, mk, n)))
		return mplan_unknown();
	r = pg_plan_indirect(p, mk, q, depth + 1);
	mplan_put(q);
	return r;
}

/* ---- what a statement does to names ---- */

/* Could this statement define, use or drop a name? The dialect's cheap look (only "no" is
 * sure). */
int pg_may_name(const char *s, size_t n)
{
	return dialect_pg.may_name(s, n);
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

int pg_may_copy_in(const char *s, size_t n)
{
	return has_word(s, n, "copy") && (has_word(s, n, "stdin") || has_word(s, n, "stdout"));
}

/* What one statement does to the session's names (the dialect's reading), lexed as libpg_query
 * is set now: the session's setting at the engine's entry points, a name's own where its kept
 * text is read again (pglex_set around the call). */
void pg_sql_names(const char *stmt, size_t len, struct dialect_names *ns)
{
	struct dialect_settings ds = {.pg_escape_strings = !standard_conforming_strings};

	dialect_pg.names(&ds, stmt, len, ns);
}

/* A statement's command tag says it ran: record what it did to the session's names. text is
 * the statement, plan (may be NULL) its plan by the engine of gen. */
void pg_names_done(struct pg *p, const char *text, const char *tag, struct mplan *plan,
		   uint64_t gen)
{
	struct dialect_names ns;
	struct named *n;
	int depth = 0;

	if (strcmp(tag, "PREPARE") && strncmp(tag, "DEALLOCATE", 10) &&
	    strcmp(tag, "DECLARE CURSOR") && strncmp(tag, "CLOSE CURSOR", 12) &&
	    strcmp(tag, "DISCARD ALL"))
		return;
	if (!strcmp(tag, "DEALLOCATE ALL") || !strcmp(tag, "DISCARD ALL"))
		pg_named_prune(&p->preps, NULL);
	if (!strcmp(tag, "CLOSE CURSOR ALL") || !strcmp(tag, "DISCARD ALL"))
		pg_named_prune(&p->portals, NULL);
	if (!text)
		return;
	pg_sql_names(text, strlen(text), &ns);
	/* EXECUTE of a statement made by Parse may run any statement: it is that one that ran */
	while (ns.kind == DIALECT_NAME_EXECUTE && depth++ < 4) {
		struct pglex_saved sv;

		if (!(n = pg_named_find(p->preps, ns.name)))
			return;
		text = n->text;
		plan = NULL;
		pglex_set(n->lex_escape, &sv); /* as the server read it at PREPARE */
		pg_sql_names(text, strlen(text), &ns);
		pglex_restore(&sv);
	}
	if (!strcmp(tag, "PREPARE") && ns.kind == DIALECT_NAME_PREPARE) {
		pg_named_set(&p->preps, ns.name, text + ns.body, NULL, NULL, 0);
	} else if (!strcmp(tag, "DEALLOCATE") && ns.kind == DIALECT_NAME_DEALLOCATE && ns.name[0]) {
		pg_named_drop(&p->preps, ns.name);
	} else if (!strcmp(tag, "DECLARE CURSOR") && ns.kind == DIALECT_NAME_DECLARE) {
		n = pg_named_set(&p->portals, ns.name, text, NULL,
				 plan && plan->p.declare_cursor[0] ? plan : NULL, gen);
		if (n) {
			n->holdable = ns.holdable;
			n->this_xact = 1;
		}
	} else if (!strcmp(tag, "CLOSE CURSOR") && ns.kind == DIALECT_NAME_CLOSE && ns.name[0]) {
		pg_named_drop(&p->portals, ns.name);
	}
}

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
			const struct dialect_names *tn = e->st[i].ns;

			if (tn && tn->kind == DIALECT_NAME_PREPARE && !strcmp(tn->name, name))
				t = e->st[i].text + tn->body;
		}
	}
	return t;
}

/* What approvers are shown for EXECUTE/FETCH name: the definition the server has, or, when the
 * only one is still on its way (the gate holds only when every candidate is this text), that
 * one. */
const char *pg_named_text(struct pg *p, int cursor, const char *name)
{
	struct named *n =
	    pg_named_find(cursor ? p->portals : p->preps, name); /* cursors: portals */

	if (n)
		return n->text;
	return cursor ? NULL : inflight_text(p, name);
}

static const char *gate_prepared_text(void *ctx, const char *name, int *escape)
{
	struct named *n = pg_named_find(((struct pg *)ctx)->preps, name);

	if (n)
		*escape = n->lex_escape;
	return n ? n->text : NULL;
}

static struct mplan *gate_resolve_plan(void *ctx, struct masking *mk, struct mplan *pl)
{
	return pg_plan_indirect(ctx, mk, pl, 0);
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
			const struct dialect_names *tn = e->st[k].ns;

			if (tn && tn->kind == DIALECT_NAME_PREPARE && !strcmp(tn->name, name))
				alt[nalt++] = strdup(e->st[k].text + tn->body);
		}
	}
	for (int k = 0; q && k < i && nalt < max; k++)
		if (q->ns[k].kind == DIALECT_NAME_PREPARE && !strcmp(q->ns[k].name, name))
			alt[nalt++] = strndup(q->sql + q->sp->off[k] + q->ns[k].body,
					      (size_t)q->sp->len[k] - q->ns[k].body);
	return nalt;
}

static const char *gate_shown_text(void *ctx, const char *name)
{
	return pg_named_text(ctx, 0, name);
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
		if (q->ns[k].kind == DIALECT_NAME_PREPARE && !strcmp(q->ns[k].name, name))
			return strndup(q->sql + q->sp->off[k] + q->ns[k].body,
				       (size_t)q->sp->len[k] - q->ns[k].body);
	if ((t = inflight_text(p, name)))
		return strdup(t);
	n = pg_named_find(p->preps, name);
	return n ? strdup(n->text) : NULL;
}

const struct gate_ops pg_gate_ops = {
	.prepared_text = gate_prepared_text,
	.resolve_plan = gate_resolve_plan,
	.execute_texts = gate_execute_texts,
	.shown_text = gate_shown_text,
	.prepared_ahead = gate_prepared_ahead,
};

/* Could this text, run when every request before it is answered, start a COPY FROM STDIN?
 * EXECUTE name runs what name is then (a Parse may have made it a COPY): recorded or in
 * flight. */
int pg_text_may_copy_in(struct pg *p, const char *text, size_t len, int depth)
{
	struct dialect_names ns;
	const struct named *n;

	if (pg_may_copy_in(text, len))
		return 1;
	if (depth >= 4 || !pg_may_name(text, len))
		return depth >= 4;
	pg_sql_names(text, len, &ns);
	if (ns.kind != DIALECT_NAME_EXECUTE)
		return 0;
	if ((n = pg_named_find(p->preps, ns.name)) &&
	    pg_text_may_copy_in(p, n->text, strlen(n->text), depth + 1))
		return 1;
	for (const struct pend *e = p->head; e; e = e->next)
		if (e->kind == 'P' && e->may_copy && !strcmp(e->name, ns.name))
			return 1;
	return 0;
}
