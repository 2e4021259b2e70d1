/*
 * The PostgreSQL engine's held statements: a Query the gate parked for an approval (pg_front.c
 * park) runs as it was judged when an approver allows it, or is refused when one denies it,
 * it times out or the agent cancels it; what it would run under a name is shown to approvers.
 * These are the engine_ops the approval machinery calls.
 */
#include <pg_query.h>
#include <stdlib.h>
#include <string.h>

#include "pg_int.h"
#include "daemon.h"
#include "maskplan.h"
#include "pglex.h"
#include "policy.h"
#include "sqlfacts.h"
#include "verdict.h"

/* ---- held statements (engine_ops) ---- */

int pg_fail_held(void *st, const char *sqlstate, const char *message)
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
	r = p->skip ? 0 : pg_refuse(p, 'Q', NULL, sqlstate, message, &e);
	sess_resume(p->s);
	return r;
}

int pg_cancel_held(void *st)
{
	struct pg *p = st;

	if (hold_ops)
		hold_ops->forget(p->s, "cancelled by the client");
	return pg_fail_held(p, "57014", "canceling statement due to user request");
}

int pg_resume_held(void *st, enum verdict v, const char *message)
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

		r = pg_refuse(p, 'Q', NULL, "42501", message ? message : "hoop: statement denied",
			      &e);
	} else {
		struct pglex_saved sv;

		pglex_set(p->lex.pg_escape_strings, &sv);
		r = pg_run_held_query(p, &m);
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
char *pg_held_runs(void *st, const char *text, size_t len)
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
			ran = pg_named_text(p, 0, name);
		} else if (!maskplan_build(t + off, (size_t)l, NULL, &hoopd.pol->masking, &mp) &&
			   mp.fetch_cursor[0]) {
			kind = "cursor";
			name = mp.fetch_cursor;
			ran = pg_named_text(p, 1, name);
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
