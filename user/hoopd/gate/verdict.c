/* The verdict point's policy: facts from PostgreSQL's grammar, judged by the running rules. */
#include "verdict.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grants.h"
#include "daemon.h"
#include "policy.h"
#include "strutil.h"
#include "judge.h"
#include "maskplan.h"
#include "rules.h"
#include "session.h"
#include "pglex.h"
#include "sqlfacts.h"

/* Facts about masked columns (maskplan.h): does a predicate read one (inference), are their
 * values copied into a relation (laundering)? Only worked out when a rule asks; the engine's
 * own plan of this very text saves a parse. */
static void probes(const struct judgement *j, const char *text, size_t len, struct sqlfacts *f)
{
	if (f->parse_error || !judge_wants_probes(hoopd.pol))
		return;
	if (j->plan && text == j->text) {
		f->probes_masked = j->plan->probes_masked;
		snprintf(f->probe, sizeof(f->probe), "%s", j->plan->probe);
		f->writes_masked = j->plan->writes_masked;
		if (j->plan->opaque_sql)
			f->kinds |= 1ULL << SK_OPAQUE_SQL;
		return;
	}
	judge_probes(hoopd.pol, text, len, j->cat, f);
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
		judge_unsplittable(f);
	} else {
		sqlfacts_analyze(j->text, j->len, f);
		probes(j, j->text, j->len, f);
	}
	*made = f;
	return f;
}

enum verdict policy_verdict(struct judgement *j)
{
	struct sqlfacts *f, *pf = NULL;
	const struct sqlfacts *cf;
	struct rules_session rs = {0};
	struct judge_in in = {0};
	struct judge_out out;
	enum verdict v;

	j->facts_out = NULL;
	if (!(cf = facts_for(j, &f))) {
		snprintf(j->message, sizeof(j->message), "hoop: out of memory judging a statement");
		return VERDICT_DENY;
	}
	if (j->s) {
		rs.owner = j->s->owner;
		rs.exe = j->s->exe;
		rs.labels_json = j->s->labels_json;
	}
	rs.user = j->user;
	rs.database = j->database;
	if (cf->execute_name[0])
		j->want_facts = 0; /* what an EXECUTE runs is the session's, not the text's */
	if (cf->execute_name[0] && j->prepared && !cf->parse_error) {
		/* EXECUTE runs what its PREPARE said: that is judged too (judge_statement). */
		int escape = -1;
		const char *text = j->prepared(j->prepared_ctx, cf->execute_name, &escape);

		if (text && (pf = calloc(1, sizeof(*pf)))) {
			struct pglex_saved sv = {0};

			/* read as the server read it at PREPARE, not as the session lexes now */
			if (escape >= 0)
				pglex_set(escape, &sv);
			sqlfacts_analyze(text, strlen(text), pf);
			probes(j, text, strlen(text), pf);
			if (escape >= 0)
				pglex_restore(&sv);
		}
	}
	in.pol = hoopd.pol;
	in.f = cf;
	in.prepared = pf;
	in.rs = &rs;
	in.function_call = !strcmp(j->protocol, "function");
	v = judge_statement(&in, &out);
	/* grants are keyed by PostgreSQL's grammar: they cover PostgreSQL text only */
	if (v == VERDICT_HOLD && j->s && j->s->protocol == HOOP_PROTO_POSTGRES &&
	    grants_covers(j->s->owner, j->text, j->len)) {
		in.granted = 1;
		v = judge_statement(&in, &out);
	}
	j->parse_error = cf->parse_error || (pf && pf->parse_error);
	str_copy(j->rule, sizeof(j->rule), out.rule);
	str_copy(j->message, sizeof(j->message), out.message);
	j->unparsed = v == VERDICT_DENY && out.unparsed;
	free(pf);
	if (f && j->want_facts)
		j->facts_out = f;
	else
		free(f);
	return v;
}
