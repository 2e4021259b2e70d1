/*
 * Policy rules against one statement's facts and the session behind it. Precedence: deny over
 * approve over audit over allow; the first rule (in file order) of the winning action decides.
 * When no rule matches, the policy's default action applies. No daemon state: hoopctl's
 * `policy test` runs exactly this.
 */
#ifndef HOOP_RULES_H
#define HOOP_RULES_H

#include "policy.h"
#include "sqlfacts.h"

struct rules_session {
	const char *owner, *user, *database, *exe;
	const char *labels_json; /* {"k":"v",...} as given at attach */
};

struct rules_result {
	enum policy_action action;
	const struct policy_rule *rule; /* NULL: the default or on_parse_error decided */
	char why[256];			/* rules_why's */
};

void rules_evaluate(const struct policy *pol, const struct sqlfacts *f,
		    const struct rules_session *s, struct rules_result *out);
/* One line for logs and `policy test`: why res is what it is. */
const char *rules_why(struct rules_result *res);

#endif
