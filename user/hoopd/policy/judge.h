/*
 * One statement's verdict from the policy, given its facts: the single function hoopd's verdict
 * point (verdict.c) and `hoopctl policy test` both call, so that what the operator is told a
 * statement gets is what hoopd gives it (an `approve` rule with no approvers named, a
 * FunctionCall no rule allows, an EXECUTE whose prepared text is worse than its name...).
 * Pure: no daemon state, no session.
 */
#ifndef HOOP_JUDGE_H
#define HOOP_JUDGE_H

#include <stddef.h>

#include "rules.h"
#include "verdict.h"

struct policy;
struct catalog;
struct sqlfacts;

struct judge_in {
	const struct policy *pol;
	const struct sqlfacts *f;	 /* the statement's own facts */
	const struct sqlfacts *prepared; /* EXECUTE: the facts of what its PREPARE said, or NULL */
	const struct rules_session *rs;
	int function_call; /* a FunctionCall message: code by OID, no text */
	int granted;	   /* an approver's fingerprint grant covers this statement */
};

struct judge_out {
	char rule[64];		 /* the rule that decided, for the record */
	char message[256];	 /* what the agent is told on deny, or why it is held */
	struct rules_result res; /* the rules' answer (before approvers and grants count) */
	/* denied by on_parse_error because the grammar rejects the statement's own text (not
	 * what an EXECUTE in it runs): the agent may be told the grammar's error */
	int unparsed;
};

/* ALLOW, DENY or HOLD, as hoopd acts on it; out says why. */
enum verdict judge_statement(const struct judge_in *in, struct judge_out *out);

/* Fill f's facts about masked columns (probes, writes) when masking is on and some rule asks
 * for them; cat may be NULL (only what the text names is known then). */
void judge_probes(const struct policy *pol, const char *text, size_t len, const struct catalog *cat,
		  struct sqlfacts *f);
/* The facts of a message the grammar could not split into statements: judged whole, as a parse
 * error (what the server will say of it). */
void judge_unsplittable(struct sqlfacts *f);
/* Does any rule ask for judge_probes' facts? */
int judge_wants_probes(const struct policy *pol);

/* What `policy test` prints for a verdict: the policy's words (approve for a hold). */
static inline const char *judge_verdict_name(enum verdict v)
{
	return v == VERDICT_DENY ? "deny" : v == VERDICT_HOLD ? "approve" : "allow";
}

#endif
