/*
 * The PostgreSQL engine's results through masking: the plan of the statement the server is
 * answering (taken when it answers, so that a name is what the server ran), the per-column
 * plan from its RowDescription, each DataRow and COPY TO STDOUT row rewritten through the row
 * codec (pgrow.c), a result that cannot be masked withheld, and the server's errors, notices
 * and notifications, which can quote values, reduced or passed through the detectors.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_int.h"
#include "catalog_fetch.h"
#include "log.h"
#include "pgerrcodes.h"
#include "pgrow.h"
#include "record.h"

/* ---- rows and COPY data through masking ---- */

/* Everything for the agent from the database in the ready phase goes through here: while a
 * result is withheld, only ReadyForQuery and asynchronous messages pass. */
int pg_to_agent(struct pg *p, const struct pgw_msg *m)
{
	if (p->withhold && m->type != 'Z' && m->type != 'N' && m->type != 'A' && m->type != 'S')
		return 0;
	return pg_fwd(&p->s->a.out, m);
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

/* ---- rows of the statement being answered ---- */

/* The statement the server is answering now: its plan and, for an Execute, the portal's text
 * and description are taken as they are now, when every earlier request has been answered. */
struct track *pg_cur_track_r(struct pg *p)
{
	struct pend *e = p->head;
	struct track *t = pg_cur_track(p);
	struct named *po;
	struct mplan *pl;

	if (!t || t->resolved)
		return t;
	t->resolved = 1;
	if (e->kind == 'E') {
		po = pg_named_find(p->portals, e->name);
		if (po && pg_may_name(po->text, strlen(po->text)))
			t->text = strdup(po->text);
		if (t->mk) {
			t->plan = po ? pg_named_plan(p, t->mk, po) : NULL;
			if (po && po->rd && (t->rd = malloc(po->rdlen))) {
				memcpy(t->rd, po->rd, po->rdlen);
				t->rdlen = po->rdlen;
			}
		}
	}
	if (t->mk && (!t->plan || t->plan->p.execute_name[0] || t->plan->p.fetch_cursor[0])) {
		pl = t->plan ? pg_plan_indirect(p, t->mk, t->plan, 0) : mplan_unknown();
		mplan_put(t->plan);
		t->plan = pl; /* NULL only without memory: then nothing is masked by it (withheld) */
	}
	return t;
}

/* DataRow, CopyData (COPY TO STDOUT) and CopyOutResponse: rows of the statement being
 * answered, through its masking plan. */
int pg_server_rows(struct pg *p, const struct pgw_msg *m)
{
	struct pend *e = p->head;
	struct track *t;

	if (m->type == 'D' && e && e->poisoned)
		return 0;
	t = pg_cur_track_r(p);
	if (m->type == 'H') {
		if (t && t->mk && mask_copy_start(p, t, m))
			return -1;
		return pg_to_agent(p, m);
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
	return pg_to_agent(p, m);
}

/* RowDescription: of a Describe (the portal's, kept for its Execute), or of the statement
 * being answered (its columns on record, its per-column masking plan). */
int pg_server_rowdesc(struct pg *p, const struct pgw_msg *m)
{
	struct pend *e = p->head;
	struct col_desc f[64];
	int n = pgw_row_columns(m, f, 64);
	struct track *t;

	if (n < 0)
		return pg_protocol_violation(p, "database", "malformed RowDescription");
	if (e && e->poisoned)
		return 0;
	if (e && e->kind == 'D') {
		int internal = e->internal;
		struct named *po;

		/* Every earlier request is answered: this describes the portal hoopd has on record
		 * under that name now. */
		if (e->dkind == 'P' && (po = pg_named_find(p->portals, e->name))) {
			uint8_t *rdc = malloc(m->total);

			if (!rdc)
				return -1;
			memcpy(rdc, m->body - 5, m->total);
			free(po->rd);
			po->rd = rdc;
			po->rdlen = m->total;
		}
		pg_pend_pop(p);
		return internal ? 0 : pg_to_agent(p, m);
	}
	if ((t = pg_cur_track_r(p))) {
		ev_columns(sess_agent(p->s), t->seq, f, n < 64 ? n : 64);
		if (t->mk && !t->mr && track_plan_rows(p, t, m) == -ENOMEM)
			return -1;
	}
	return pg_to_agent(p, m);
}

/* ---- errors, notices and notifications ---- */

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
	struct track *t = pg_cur_track(p);
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
		po = e->name ? pg_named_find(p->portals, e->name) : NULL;
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
int pg_mask_notice(struct pg *p, const struct pgw_msg *m)
{
	struct masking *mk = masking_get();
	struct buf body = {0}, val = {0};
	const char *code = "", *routine = "", *sev = NULL, *vsev = NULL;
	size_t off = 0;
	int r = -1, nested = 0;

	if (!mk)
		return pg_to_agent(p, m);
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
int pg_mask_notification(struct pg *p, const struct pgw_msg *m)
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
		return pg_protocol_violation(p, "database", "malformed NotificationResponse");
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
