/*
 * `hoopctl policy test` and hoopd must give a statement the same verdict: every case of every
 * tests/unit/rules/ cases file is judged by hoopctl's policy_test_stmt (user/hoopctl/policy.c)
 * and by hoopd's verdict point, policy_verdict (user/hoopd/gate/verdict.c), for the same session,
 * and the verdicts, deciding rules and messages must agree: with the policy as written, and
 * again with its approvers removed (hoopd then refuses what an approve rule would hold). Both
 * get the text cut by the dialect's split and lexed under the case's session settings
 * (@standard_conforming_strings=off): hoopctl through --standard-conforming-strings, hoopd
 * under libpg_query's lexer settings as its engine sets them for the session (pglex.h).
 *
 * Usage: test_verdict POLICY_FILE CASES_FILE [POLICY_FILE CASES_FILE ...]  (as test_rules)
 */
struct policy;
struct rcase;
static void agree_run(const struct policy *pol, const struct rcase *c);
#define RULES_CASE_RUN agree_run
#define main	       rules_main
#include "test_rules.c"
#undef main

#include "approvals.h"
#include "hoopctl.h"
#include "daemon.h"
#include "policy.h"
#include "judge.h"
#include "pglex.h"
#include "session.h"
#include "verdict.h"

struct hoopd hoopd;

/* hoopd's fingerprint grants: none in this test. */
int approvals_granted(const struct session *s, const char *text, size_t len)
{
	return 0;
}

static int agreed;

static void agree_one(const struct policy *pol, const struct rcase *c, const char *sql, size_t len,
		      int split_failed, const char *what)
{
	struct sqlfacts *f = calloc(1, sizeof(*f));
	struct session *s = calloc(1, sizeof(*s));
	struct judge_out out;
	struct judgement j;
	enum verdict ctl, hd;
	char shown[SHOW_SQL + 32];

	if (!f || !s) {
		unit_fail(__FILE__, __LINE__, "out of memory");
		free(f);
		free(s);
		return;
	}
	policy_test_lexing = c->ds;
	ctl = policy_test_stmt(pol, &c->s, sql, len, split_failed, f, &out);
	snprintf(s->owner, sizeof(s->owner), "%s", c->s.owner);
	snprintf(s->exe, sizeof(s->exe), "%s", c->s.exe);
	snprintf(s->labels_json, sizeof(s->labels_json), "%s", c->s.labels_json);
	hoopd.pol = (struct policy *)pol;
	memset(&j, 0, sizeof(j));
	j.s = s;
	j.protocol = "simple";
	j.text = sql;
	j.len = len;
	j.parse_error = split_failed;
	j.user = c->s.user;
	j.database = c->s.database;
	{
		struct pglex_saved sv;

		pglex_set(c->ds.pg_escape_strings, &sv);
		hd = policy_verdict(&j);
		pglex_restore(&sv);
	}
	free(j.facts_out);
	if (ctl != hd || strcmp(out.rule, j.rule) ||
	    (hd != VERDICT_ALLOW && strcmp(out.message, j.message)))
		unit_fail(__FILE__, __LINE__,
			  "%s: %s\n  hoopctl policy test: %s rule '%s' message '%s'\n"
			  "  hoopd:               %s rule '%s' message '%s'",
			  what, show_sql(sql, len, shown, sizeof(shown)), judge_verdict_name(ctl),
			  out.rule, out.message, judge_verdict_name(hd), j.rule, j.message);
	else
		agreed++;
	free(f);
	free(s);
}

static void agree_run(const struct policy *cpol, const struct rcase *c)
{
	struct policy *pol = (struct policy *)cpol;
	int napprovers = pol->approvals.approvers.n;
	struct dialect_split *sp = &g_split;
	/* hoopd judges text the grammar cannot split whole, as a parse error */
	int split_failed = dialect_pg.split(&c->ds, c->sql, c->sql_len, sp, NULL) != 0;

	for (int pass = 0; pass < 2; pass++) {
		if (pass == 1 && !napprovers)
			break; /* the policy names none: the first pass was that */
		pol->approvals.approvers.n = pass ? 0 : napprovers;
		for (int i = 0; i < sp->n; i++)
			agree_one(pol, c, c->sql + sp->off[i], (size_t)sp->len[i], split_failed,
				  pass ? "approvers removed" : "policy as written");
	}
	pol->approvals.approvers.n = napprovers;
}

int main(int argc, char **argv)
{
	int rc = rules_main(argc, argv);

	fprintf(stderr, "test_verdict: %d statement judgement(s) agreed\n", agreed);
	if (!agreed && !rc)
		return 1; /* nothing compared is a failure, not a pass */
	return rc;
}
