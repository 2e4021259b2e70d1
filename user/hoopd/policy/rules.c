/* Rule evaluation: match keys are ANDed, list items ORed, names compared as the server folds. */
#include "rules.h"

#include <stdio.h>
#include <string.h>

#include "strutil.h"

/* A table pattern: "name" (any schema), "schema.name", "schema.*", "*". */
static int table_match(const char *pat, const char *table)
{
	const char *dot = strchr(table, '.');

	if (!strcmp(pat, "*"))
		return 1;
	if (strchr(pat, '.'))
		return glob_match(pat, table) || (!dot && !strncmp(pat, "public.", 7) &&
					    glob_match(pat + 7, table));
	return glob_match(pat, dot ? dot + 1 : table);
}

static int any_table(const struct policy_list *pats, const char (*names)[SQLFACTS_NAME], int n)
{
	for (int i = 0; i < pats->n; i++)
		for (int j = 0; j < n; j++)
			if (table_match(pats->v[i], names[j]))
				return 1;
	return 0;
}

static int any_schema(const struct policy_list *pats, const char (*names)[SQLFACTS_NAME], int n)
{
	for (int i = 0; i < pats->n; i++)
		for (int j = 0; j < n; j++) {
			const char *dot = strchr(names[j], '.');
			char schema[SQLFACTS_NAME];

			snprintf(schema, sizeof(schema), "%.*s", dot ? (int)(dot - names[j]) : 6,
				 dot ? names[j] : "public");
			if (glob_match(pats->v[i], schema))
				return 1;
		}
	return 0;
}

static int list_match(const struct policy_list *l, const char *v)
{
	if (!l->n)
		return 1;
	for (int i = 0; i < l->n; i++)
		if (glob_match(l->v[i], v ? v : ""))
			return 1;
	return 0;
}

static int labels_match(const struct policy_rule *r, const char *labels)
{
	for (int i = 0; i < r->label_keys.n; i++) {
		char want[2 * POLICY_NAME + 8];

		snprintf(want, sizeof(want), "\"%s\":\"%s\"", r->label_keys.v[i],
			 r->label_values.v[i]);
		if (!labels || !strstr(labels, want))
			return 0;
	}
	return 1;
}

static int rule_matches(const struct policy_rule *r, const struct sqlfacts *f,
			const struct rules_session *s)
{
	if (r->statements && !(r->statements & f->kinds))
		return 0;
	/* An allow or audit rule vouches for the whole statement: every kind in it (an INSERT's
	 * VALUES list is a SELECT in the tree, a COPY may wrap one) must be one it names. Deny and
	 * approve rules need only find one. */
	if (r->statements && r->action <= ACTION_AUDIT && (f->kinds & ~r->statements))
		return 0;
	if (r->tables.n && !any_table(&r->tables, f->read, f->nread) &&
	    !any_table(&r->tables, f->written, f->nwritten))
		return 0;
	if (r->tables_written.n && !any_table(&r->tables_written, f->written, f->nwritten))
		return 0;
	if (r->schemas.n && !any_schema(&r->schemas, f->read, f->nread) &&
	    !any_schema(&r->schemas, f->written, f->nwritten))
		return 0;
	if (r->functions.n) {
		int hit = 0;

		for (int i = 0; i < r->functions.n && !hit; i++)
			for (int j = 0; j < f->nfunctions && !hit; j++)
				hit = glob_match(r->functions.v[i], f->functions[j]);
		if (!hit)
			return 0;
	}
	if (r->copy && !(r->copy & f->copy))
		return 0;
	if (r->without_where && !f->write_without_where)
		return 0;
	if (r->without_limit && !f->select_without_limit &&
	    !(f->kinds & (1ULL << SK_COPY_TO)))
		return 0;
	if (r->probes_masked && !f->probes_masked)
		return 0;
	if (r->writes_masked && !f->writes_masked)
		return 0;
	return list_match(&r->owners, s->owner) && list_match(&r->users, s->user) &&
	       list_match(&r->databases, s->database) && list_match(&r->exes, s->exe) &&
	       labels_match(r, s->labels_json);
}

void rules_evaluate(const struct policy *pol, const struct sqlfacts *f,
		    const struct rules_session *s, struct rules_result *out)
{
	memset(out, 0, sizeof(*out));
	if (f->parse_error) {
		out->action = pol->on_parse_error;
		snprintf(out->why, sizeof(out->why), "on_parse_error: %s", f->error);
		return;
	}
	out->action = pol->default_action;
	for (int i = 0; i < pol->nrules; i++) {
		const struct policy_rule *r = &pol->rules[i];

		if (!rule_matches(r, f, s))
			continue;
		/* The first matching rule decides unless a later one has a stronger action. */
		if (!out->rule || r->action > out->rule->action) {
			out->rule = r;
			out->action = r->action;
		}
	}
	out->why[0] = '\0'; /* rules_why, when someone reads it */
}

const char *rules_why(struct rules_result *res)
{
	if (res->why[0])
		return res->why;
	if (res->rule)
		snprintf(res->why, sizeof(res->why), "rule %s (line %d)", res->rule->name,
			 res->rule->line);
	else
		snprintf(res->why, sizeof(res->why), "no rule matched: default %s",
			 policy_action_name(res->action));
	return res->why;
}
