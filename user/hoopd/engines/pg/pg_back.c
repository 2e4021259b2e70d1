/*
 * The PostgreSQL engine's backend: the server's messages, during authentication and once the
 * session is ready. Each answer is matched to the head of the queue of forwarded requests
 * (pg.c): ParseComplete, BindComplete and CloseComplete make a name the server's (pg_names.c),
 * CommandComplete ends a statement, an ErrorResponse becomes the refusal when it answers the
 * poison and makes the extended protocol skip to Sync, ReadyForQuery ends what a Query or a
 * Sync started. An answer the queue does not expect closes the session. Rows, COPY data and
 * messages that may quote values go through pg_rows.c.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_int.h"
#include "pglex.h"
#include "record.h"

/* ---- server messages ---- */

static void complete(struct pg *p, struct track *t, const char *tag)
{
	struct ev_complete c = {.seq = t->seq, .tag = tag, .rows = t->rows, .bytes = t->bytes,
				.duration_us = pg_now_us() - t->start_us};
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
	if (!strcmp(k, "standard_conforming_strings")) {
		struct pglex_saved entry;

		p->lex.pg_escape_strings = strcmp(v, "on") != 0;
		/* and at once for what the rest of this read parses (acknowledged names, their
		 * plans): the entry point restores what it saved at its exit */
		pglex_set(p->lex.pg_escape_strings, &entry);
	}
}

int pg_server_auth(struct pg *p, const struct pgw_msg *m)
{
	struct session *s = p->s;
	struct pgw_rd rd;

	switch (m->type) {
	case 'R': {
		int32_t code;

		pgw_rd_init(&rd, m);
		code = pgw_i32(&rd);
		if (rd.bad)
			return pg_protocol_violation(p, "database",
						     "malformed Authentication message");
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
		return pg_fwd(&s->a.out, m);
	}
	case 'K':
		pgw_rd_init(&rd, m);
		p->backend_pid = pgw_i32(&rd);
		p->backend_key = pgw_i32(&rd);
		return pg_fwd(&s->a.out, m);
	case 'Z':
		pgw_rd_init(&rd, m);
		p->tx = pgw_u8(&rd);
		p->phase = PH_READY;
		return pg_fwd(&s->a.out, m);
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
		return masking_enabled() ? pg_mask_notice(p, m) : pg_fwd(&s->a.out, m);
	}
	case 'N':
		return masking_enabled() ? pg_mask_notice(p, m) : pg_fwd(&s->a.out, m);
	default: /* ParameterStatus, NegotiateProtocolVersion */
		if (m->type == 'S')
			param_status(p, m);
		return pg_fwd(&s->a.out, m);
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
	return pg_protocol_violation(p, "database", why);
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
	pg_named_prune(&p->portals, keep_after_xact);
	pg_named_prune(&p->described, NULL);
	p->ndescribed = 0;
	p->xact_failed = 0;
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
			pg_named_drop(&p->preps, e->name); /* cannot happen: the poison fails */
			pg_pend_pop(p);
			return 0;
		}
		if (!pg_named_set(&p->preps, e->name, e->text, NULL, e->plan, e->plan_gen))
			return -1;
		break;
	case '2': /* BindComplete: the portal, of the statement as it is now */
		ps = pg_named_find(p->preps, e->stmt);
		po = pg_named_set(&p->portals, e->name, ps ? ps->text : "", e->params,
				  ps ? ps->plan : NULL, ps ? ps->plan_gen : 0);
		e->params = NULL;
		if (!po)
			return -1;
		if (ps)
			po->lex_escape = ps->lex_escape; /* the statement's text, as it was read */
		po->this_xact = 1;
		break;
	default: /* CloseComplete: the name is gone (closing a missing one is no error) */
		pg_named_drop(e->dkind == 'S' ? &p->preps : &p->portals, e->name);
	}
	pg_pend_pop(p);
	return pg_to_agent(p, m);
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
	if ((t = pg_cur_track_r(p))) {
		complete(p, t, p->withhold ? "WITHHELD" : tag);
		if (m->type == 'C')
			pg_names_done(p, t->text, tag, t->plan, t->mk ? t->mk->gen : 0);
		e->cur++;
	}
	if (!strcmp(tag, "ROLLBACK"))
		p->xact_failed = 1;
	if (e && e->kind == 'E')
		pg_pend_pop(p);
	return pg_to_agent(p, m);
}

/* ErrorResponse in the ready phase: the poison's becomes the refusal; any other is on record
 * and goes to the agent (through masking); the extended protocol then skips to Sync. */
static int server_error(struct pg *p, const struct pgw_msg *m)
{
	struct pend *e = p->head;
	struct pgw_err_fields f;
	struct track *t;

	if (pgw_error_fields(m, &f))
		return pg_protocol_violation(p, "database", "malformed ErrorResponse");
	p->xact_failed = 1;
	if (e && e->poisoned) {
		if (!p->withhold && poisoned_error(p, e))
			return -1;
	} else {
		struct ev_error ee = {.severity = f.severity, .sqlstate = f.sqlstate,
				      .message = f.message};

		if ((t = pg_cur_track(p))) {
			ee.seq = t->seq;
			e->cur = e->nst; /* the rest of a multi-statement Query is skipped */
		}
		ev_error(sess_agent(p->s), &ee);
		if (p->withhold)
			;
		else if (masking_enabled() ? pg_mask_notice(p, m) : pg_to_agent(p, m))
			return -1;
	}
	/* A failed Parse or Bind of the unnamed statement or portal has already dropped the old
	 * one. */
	if (e && e->kind == 'P' && e->name && !e->name[0])
		pg_named_drop(&p->preps, "");
	if (e && e->kind == 'B' && e->name && !e->name[0])
		pg_named_drop(&p->portals, "");
	/* Extended protocol: the server skips everything up to Sync, and until one comes,
	 * whatever the agent sends. */
	if (e && strchr("PBDEC", e->kind)) {
		while (p->head && p->head->kind != 'S')
			pg_pend_pop(p);
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
		pg_named_drop(&p->preps, "");
		pg_named_drop(&p->portals, "");
	}
	pg_pend_pop(p);
	if (p->tx == 'I')
		xact_end(p);
	p->withhold = 0;
	return pg_to_agent(p, m);
}

/* Everything the database sends once the session is ready, by message type. */
int pg_server_ready(struct pg *p, const struct pgw_msg *m)
{
	struct pend *e = p->head;
	struct track *t;

	switch (m->type) {
	case 'D': /* DataRow */
	case 'd': /* CopyData (COPY TO STDOUT) */
	case 'H': /* CopyOutResponse */
		return pg_server_rows(p, m);
	case 'T':
		return pg_server_rowdesc(p, m);
	case 'n': /* NoData */
		if (e && e->kind == 'D') {
			int internal = e->internal;

			pg_pend_pop(p);
			if (internal)
				return 0;
		}
		return pg_to_agent(p, m);
	case 't': /* ParameterDescription */
		return pg_to_agent(p, m);
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
		return pg_to_agent(p, m);
	case 'W': /* CopyBothResponse: replication streaming */
		return pg_protocol_violation(p, "database",
					     "COPY BOTH (replication streaming) is not relayed");
	case 'V': /* FunctionCallResponse */
		if (e && e->poisoned)
			return 0;
		if ((t = pg_cur_track(p)))
			complete(p, t, "FUNCTION");
		if (e)
			e->cur = e->nst;
		return pg_to_agent(p, m);
	case 'N':
		return masking_enabled() ? pg_mask_notice(p, m) : pg_to_agent(p, m);
	case 'A':
		return masking_enabled() ? pg_mask_notification(p, m) : pg_to_agent(p, m);
	default: /* S K v c: parameter status, COPY framing */
		if (m->type == 'S')
			param_status(p, m);
		return pg_to_agent(p, m);
	}
}
