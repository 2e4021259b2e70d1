/* One statement's verdict from the policy and its facts, shared by hoopd and hoopctl (judge.h). */
#include "judge.h"

#include <stdio.h>
#include <string.h>

#include "maskplan.h"
#include "policy.h"
#include "sqlfacts.h"
#include "strutil.h"

void judge_unsplittable(struct sqlfacts *f)
{
	f->parse_error = 1;
	snprintf(f->error, sizeof(f->error), "PostgreSQL's grammar rejects the query");
}

int judge_wants_probes(const struct policy *pol)
{
	/* opaque_sql: an operator over a built-in that runs SQL from a string is known from the
	 * catalog's operators, which maskplan reads */
	for (int i = 0; i < pol->nrules; i++)
		if ((pol->masking.enabled &&
		     (pol->rules[i].probes_masked || pol->rules[i].writes_masked)) ||
		    pol->rules[i].statements & (1ULL << SK_OPAQUE_SQL))
			return 1;
	return 0;
}

void judge_probes(const struct policy *pol, const char *text, size_t len, const struct catalog *cat,
		  struct sqlfacts *f)
{
	struct maskplan mp;

	if (f->parse_error || !judge_wants_probes(pol))
		return;
	memset(&mp, 0, sizeof(mp));
	maskplan_build(text, len, cat, &pol->masking, &mp);
	if (mp.probes_masked) {
		f->probes_masked = 1;
		snprintf(f->probe, sizeof(f->probe), "%s", mp.probe);
	}
	f->writes_masked = mp.writes_masked;
	if (mp.opaque_sql)
		f->kinds |= 1ULL << SK_OPAQUE_SQL;
	maskplan_free(&mp);
}

enum verdict judge_statement(const struct judge_in *in, struct judge_out *out)
{
	const struct policy *pol = in->pol;
	struct rules_result *res = &out->res;
	int parse_error = in->f->parse_error;
	const char *error = in->f->error;
	enum verdict v;

	out->rule[0] = '\0';
	out->message[0] = '\0';
	out->unparsed = 0;
	rules_evaluate(pol, in->f, in->rs, res);
	if (in->prepared && !parse_error) {
		/* EXECUTE runs what its PREPARE said: judge that too; the stronger verdict wins. */
		struct rules_result pr;

		rules_evaluate(pol, in->prepared, in->rs, &pr);
		if (pr.action > res->action)
			*res = pr;
		if (in->prepared->parse_error) {
			parse_error = 1;
			error = in->prepared->error;
		}
	}
	if (res->rule)
		str_copy(out->rule, sizeof(out->rule), res->rule->name);
	else if (parse_error)
		snprintf(out->rule, sizeof(out->rule), "on_parse_error");
	if (in->function_call && !res->rule) {
		/* FunctionCall runs code by OID with no SQL to judge: only an explicit rule lets
		 * it through. */
		snprintf(out->rule, sizeof(out->rule), "function-call-default");
		snprintf(out->message, sizeof(out->message),
			 "hoop: FunctionCall messages run a function by OID with no SQL to judge; "
			 "they are refused unless a rule allows kind function_call");
		return VERDICT_DENY;
	}
	switch (res->action) {
	case ACTION_DENY:
		v = VERDICT_DENY;
		if (res->rule && res->rule->message[0])
			str_copy(out->message, sizeof(out->message), res->rule->message);
		else if (parse_error)
			snprintf(out->message, sizeof(out->message),
				 "hoop: statement refused: it could not be parsed (%s)", error);
		else
			snprintf(out->message, sizeof(out->message), "hoop: statement denied by %s",
				 res->rule ? res->rule->name : "the policy's default");
		out->unparsed = !res->rule && in->f->parse_error;
		break;
	case ACTION_APPROVE:
		if (in->granted) {
			/* An approver allowed statements of this shape for a while. */
			snprintf(out->rule + strlen(out->rule),
				 sizeof(out->rule) - strlen(out->rule), " (fingerprint grant)");
			v = VERDICT_ALLOW;
			break;
		}
		if (!pol->approvals.approvers.n) {
			/* Nobody could ever decide it: refuse now rather than make the agent wait
			 * for the timeout. */
			v = VERDICT_DENY;
			snprintf(out->message, sizeof(out->message),
				 "%s%sthis statement needs a person's approval (%s) and the policy "
				 "names no approvers (approvals.approvers): refused",
				 res->rule && res->rule->message[0] ? res->rule->message : "",
				 res->rule && res->rule->message[0] ? "; " : "",
				 res->rule ? res->rule->name : "on_parse_error");
			break;
		}
		v = VERDICT_HOLD;
		snprintf(out->message, sizeof(out->message), "%s",
			 res->rule && res->rule->message[0]
			     ? res->rule->message
			     : "hoop: this statement needs approval");
		break;
	default:
		v = VERDICT_ALLOW;
	}
	return v;
}
