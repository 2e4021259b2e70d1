/* The verdict point's policy: facts from PostgreSQL's grammar, judged by the running rules. */
#include "verdict.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "approvals.h"
#include "strutil.h"
#include "hoopd.h"
#include "maskplan.h"
#include "rules.h"
#include "session.h"
#include "sqlfacts.h"

/* Facts about masked columns (maskplan.h): does a predicate read one (inference), are their
 * values copied into a relation (laundering)? Only worked out when a rule asks. */
static void probes(const struct judgement *j, const char *text, size_t len, struct sqlfacts *f)
{
	struct maskplan mp;
	int asked = 0;

	if (!G.pol->masking.enabled || f->parse_error)
		return;
	for (int i = 0; i < G.pol->nrules && !asked; i++)
		asked = G.pol->rules[i].probes_masked || G.pol->rules[i].writes_masked;
	if (!asked)
		return;
	if (j->plan && text == j->text) {
		f->probes_masked = j->plan->probes_masked;
		snprintf(f->probe, sizeof(f->probe), "%s", j->plan->probe);
		f->writes_masked = j->plan->writes_masked;
		return;
	}
	memset(&mp, 0, sizeof(mp));
	maskplan_build(text, len, j->cat, &G.pol->masking, &mp);
	if (mp.probes_masked) {
		f->probes_masked = 1;
		snprintf(f->probe, sizeof(f->probe), "%s", mp.probe);
	}
	f->writes_masked = mp.writes_masked;
	maskplan_free(&mp);
}

/* What the statement does: known by its shape (j->facts, an earlier statement's), or worked
 * out now into *made (the caller's to free). NULL when out of memory. */
static const struct sqlfacts *facts_for(const struct judgement *j, struct sqlfacts **made)
{
	struct sqlfacts *f;

	*made = NULL;
	if (j->facts)
		return j->facts;
	if (!(f = calloc(1, sizeof(*f))))
		return NULL;
	if (!strcmp(j->protocol, "function")) {
		f->kinds = 1ULL << SK_FUNCTION_CALL; /* no text: a function called by OID */
	} else if (j->parse_error) {
		/* The engine could not split the message into statements with the grammar: the
		 * server will reject it whole, and hoop does not judge what it cannot parse. */
		f->parse_error = 1;
		snprintf(f->error, sizeof(f->error), "PostgreSQL's grammar rejects the query");
	} else {
		sqlfacts_analyze(j->text, j->len, f);
		probes(j, j->text, j->len, f);
	}
	*made = f;
	return f;
}

enum verdict policy_verdict(struct judgement *j)
{
	struct sqlfacts *f;
	const struct sqlfacts *cf;
	struct rules_session rs = {0};
	struct rules_result res;
	enum verdict v;
	int parse_error;
	const char *error;
	char pf_error[sizeof(cf->error)];

	j->facts_out = NULL;
	if (!(cf = facts_for(j, &f))) {
		snprintf(j->message, sizeof(j->message), "hoop: out of memory judging a statement");
		return VERDICT_DENY;
	}
	parse_error = cf->parse_error;
	error = cf->error;
	if (j->s) {
		rs.owner = j->s->owner;
		rs.exe = j->s->exe;
		rs.labels_json = j->s->labels_json;
	}
	rs.user = j->user;
	rs.database = j->database;
	rules_evaluate(G.pol, cf, &rs, &res);
	if (cf->execute_name[0])
		j->want_facts = 0; /* what an EXECUTE runs is the session's, not the text's */
	if (cf->execute_name[0] && j->prepared && !parse_error) {
		/* EXECUTE runs what its PREPARE said: judge that too; the stronger verdict wins. */
		const char *text = j->prepared(j->prepared_ctx, cf->execute_name);
		struct sqlfacts *pf = text ? calloc(1, sizeof(*pf)) : NULL;

		if (pf) {
			struct rules_result pr;

			sqlfacts_analyze(text, strlen(text), pf);
			probes(j, text, strlen(text), pf);
			rules_evaluate(G.pol, pf, &rs, &pr);
			if (pr.action > res.action)
				res = pr;
			if (pf->parse_error && !parse_error) {
				parse_error = 1;
				str_copy(pf_error, sizeof(pf_error), pf->error);
				error = pf_error;
			}
			free(pf);
		}
	}
	j->parse_error = parse_error;
	if (res.rule)
		str_copy(j->rule, sizeof(j->rule), res.rule->name);
	else if (parse_error)
		snprintf(j->rule, sizeof(j->rule), "on_parse_error");
	if (!strcmp(j->protocol, "function") && !res.rule) {
		/* FunctionCall runs code by OID with no SQL to judge: only an explicit rule lets
		 * it through. */
		snprintf(j->rule, sizeof(j->rule), "function-call-default");
		snprintf(j->message, sizeof(j->message),
			 "hoop: FunctionCall messages run a function by OID with no SQL to judge; "
			 "they are refused unless a rule allows kind function_call");
		v = VERDICT_DENY;
		goto done;
	}
	switch (res.action) {
	case ACTION_DENY:
		v = VERDICT_DENY;
		if (res.rule && res.rule->message[0])
			str_copy(j->message, sizeof(j->message), res.rule->message);
		else if (parse_error)
			snprintf(j->message, sizeof(j->message),
				 "hoop: statement refused: it could not be parsed (%s)", error);
		else
			snprintf(j->message, sizeof(j->message), "hoop: statement denied by %s",
				 res.rule ? res.rule->name : "the policy's default");
		break;
	case ACTION_APPROVE:
		if (j->s && approvals_granted(j->s, j->text, j->len)) {
			/* An approver allowed statements of this shape for a while. */
			snprintf(j->rule + strlen(j->rule), sizeof(j->rule) - strlen(j->rule),
				 " (fingerprint grant)");
			v = VERDICT_ALLOW;
			break;
		}
		if (!G.pol->approvals.approvers.n) {
			/* Nobody could ever decide it: refuse now rather than make the agent wait
			 * for the timeout. */
			v = VERDICT_DENY;
			snprintf(j->message, sizeof(j->message),
				 "%s%sthis statement needs a person's approval (%s) and the policy "
				 "names no approvers (approvals.approvers): refused",
				 res.rule && res.rule->message[0] ? res.rule->message : "",
				 res.rule && res.rule->message[0] ? "; " : "",
				 res.rule ? res.rule->name : "on_parse_error");
			break;
		}
		v = VERDICT_HOLD;
		snprintf(j->message, sizeof(j->message), "%s",
			 res.rule && res.rule->message[0] ? res.rule->message
							  : "hoop: this statement needs approval");
		break;
	default:
		v = VERDICT_ALLOW;
	}
done:
	if (f && j->want_facts)
		j->facts_out = f;
	else
		free(f);
	return v;
}
