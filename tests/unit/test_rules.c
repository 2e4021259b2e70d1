/*
 * Policy rules judged on PostgreSQL's parse tree, case by case: each case is one SQL string, the
 * verdict and the deciding rule a policy must give it. The string is split into statements by
 * the dialect's split (dialect.h), as hoopctl's `policy test` and hoopd split a simple Query
 * (the whole text is one statement when the grammar rejects it), and each statement goes
 * through the dialect's facts and rules_evaluate, exactly what hoopd runs.
 *
 * Usage: test_rules POLICY_FILE CASES_FILE [POLICY_FILE CASES_FILE ...]
 *
 * A cases file has one case a line; blank lines and lines starting with '#' are ignored:
 *
 *   [@ATTR=VALUE ...] VERDICT RULE [known-bug[=TAG]] | SQL
 *
 *   VERDICT   allow, audit, approve or deny
 *   RULE      the name of the deciding rule, "-" when the policy's default decided, or
 *             "on_parse_error" when the grammar (or hoop's size or depth cap) refused it
 *   @ATTR     the session: @owner=, @user=, @database=, @exe= (each "" when not given),
 *             @label=KEY=VALUE (repeatable; the labels are {} when none is given), and
 *             @standard_conforming_strings=off (the server's setting the text is lexed under)
 *   known-bug the case shows a reported, unfixed bug: the expectation stays the correct one, a
 *             failure is printed but not counted, and a pass fails until the marker goes
 *   SQL       everything after the first '|' and the blanks after it. Inside it, {{nl}},
 *             {{cr}} and {{tab}} stand for a newline, carriage return and tab, and {{N*TEXT}}
 *             for TEXT repeated N times (TEXT without "}}"), so one line can hold multi-line
 *             SQL and statements of any size.
 *
 * Several statements in one string: each statement gets its own verdict; the case's verdict is
 * the strongest of them in the order deny > approve > audit > allow, and its rule is the one
 * that decided the first statement (in text order) carrying that strongest verdict. This is
 * what hoopd does with a simple Query: any deny refuses the whole message and names the first
 * denied statement's rule; otherwise any approval holds the whole message.
 *
 * Failures name the cases file and line, the SQL, the expected and the actual verdict, and each
 * statement's verdict and facts.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dialect.h"
#include "harness.h"
#include "json.h"
#include "policy.h"
#include "rules.h"
#include "sqlfacts.h"

#define MAX_SQL	 (8 << 20) /* expanded SQL; well above SQLFACTS_MAX_TEXT, to test the cap */
#define SHOW_SQL 240	   /* bytes of SQL shown in a failure line */

struct rcase {
	const char *file;
	int line;
	struct rules_session s;
	char owner[128], user[128], database[128], exe[256];
	struct jbuf labels;
	struct dialect_settings ds; /* how the session's server lexes (dialect.h) */
	enum policy_action verdict;
	char rule[64];
	char known_bug[384]; /* "" or what unit_known_bug says */
	char *sql;	     /* expanded */
	size_t sql_len;
};

static int action_from_name(const char *s, enum policy_action *a)
{
	static const enum policy_action all[] = {ACTION_ALLOW, ACTION_AUDIT, ACTION_APPROVE,
						 ACTION_DENY};

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		if (!strcmp(s, policy_action_name(all[i]))) {
			*a = all[i];
			return 0;
		}
	return -1;
}

/* Appends n bytes to the growing SQL buffer; -1 past MAX_SQL. */
static int put(struct rcase *c, size_t *cap, const char *p, size_t n)
{
	if (c->sql_len + n + 1 > MAX_SQL)
		return -1;
	if (c->sql_len + n + 1 > *cap) {
		size_t ncap = *cap ? *cap : 256;
		char *s;

		while (ncap < c->sql_len + n + 1)
			ncap *= 2;
		s = realloc(c->sql, ncap);
		if (!s)
			return -1;
		c->sql = s;
		*cap = ncap;
	}
	memcpy(c->sql + c->sql_len, p, n);
	c->sql_len += n;
	c->sql[c->sql_len] = '\0';
	return 0;
}

/* Expands {{nl}}, {{cr}}, {{tab}} and {{N*TEXT}} into c->sql. */
static int expand(struct rcase *c, const char *in, char *err, size_t errn)
{
	size_t cap = 0;

	c->sql = NULL;
	c->sql_len = 0;
	if (put(c, &cap, "", 0))
		goto oom;
	while (*in) {
		const char *open = strstr(in, "{{"), *close;
		char *star;
		long n;

		if (!open) {
			if (put(c, &cap, in, strlen(in)))
				goto oom;
			return 0;
		}
		if (put(c, &cap, in, (size_t)(open - in)))
			goto oom;
		close = strstr(open + 2, "}}");
		if (!close) {
			snprintf(err, errn, "'{{' without '}}'");
			return -1;
		}
		if (close - open == 4 && !strncmp(open + 2, "nl", 2)) {
			if (put(c, &cap, "\n", 1))
				goto oom;
		} else if (close - open == 4 && !strncmp(open + 2, "cr", 2)) {
			if (put(c, &cap, "\r", 1))
				goto oom;
		} else if (close - open == 5 && !strncmp(open + 2, "tab", 3)) {
			if (put(c, &cap, "\t", 1))
				goto oom;
		} else {
			errno = 0;
			n = strtol(open + 2, &star, 10);
			if (errno || star == open + 2 || *star != '*' || n < 1 ||
			    star + 1 >= close) {
				snprintf(err, errn,
					 "unknown generator '%.*s' (nl, cr, tab, N*TEXT)",
					 (int)(close + 2 - open), open);
				return -1;
			}
			for (long i = 0; i < n; i++)
				if (put(c, &cap, star + 1, (size_t)(close - star - 1)))
					goto oom;
		}
		in = close + 2;
	}
	return 0;
oom:
	snprintf(err, errn, "expanded SQL is longer than %d bytes or memory ran out", MAX_SQL);
	return -1;
}

static int session_attr(struct rcase *c, const char *tok, char *err, size_t errn)
{
	static const struct {
		const char *key;
		size_t off, size;
	} attrs[] = {
	    {"@owner=", offsetof(struct rcase, owner), sizeof(((struct rcase *)0)->owner)},
	    {"@user=", offsetof(struct rcase, user), sizeof(((struct rcase *)0)->user)},
	    {"@database=", offsetof(struct rcase, database), sizeof(((struct rcase *)0)->database)},
	    {"@exe=", offsetof(struct rcase, exe), sizeof(((struct rcase *)0)->exe)},
	};
	const char *eq;

	for (size_t i = 0; i < sizeof(attrs) / sizeof(attrs[0]); i++)
		if (!strncmp(tok, attrs[i].key, strlen(attrs[i].key))) {
			const char *v = tok + strlen(attrs[i].key);

			if (strlen(v) >= attrs[i].size) {
				snprintf(err, errn, "%s value is too long", attrs[i].key);
				return -1;
			}
			memcpy((char *)c + attrs[i].off, v, strlen(v) + 1);
			return 0;
		}
	if (!strcmp(tok, "@standard_conforming_strings=off") ||
	    !strcmp(tok, "@standard_conforming_strings=on")) {
		c->ds.pg_escape_strings = !strcmp(tok + 29, "off");
		return 0;
	}
	if (!strncmp(tok, "@label=", 7) && (eq = strchr(tok + 7, '=')) && eq > tok + 7) {
		char key[128];

		snprintf(key, sizeof(key), "%.*s", (int)(eq - tok - 7), tok + 7);
		jb_kv_str(&c->labels, key, eq + 1);
		return 0;
	}
	snprintf(err, errn,
		 "unknown session attribute '%s' (@owner=, @user=, @database=, @exe=, "
		 "@label=KEY=VALUE, @standard_conforming_strings=on|off)",
		 tok);
	return -1;
}

/* Reads one case line; 0, or -1 with err saying what is malformed. */
static int case_parse(struct rcase *c, char *line, char *err, size_t errn)
{
	char *bar = strchr(line, '|'), *tok, *save = NULL;
	int field = 0;

	if (!bar) {
		snprintf(err, errn, "no '|' between the expectation and the SQL");
		return -1;
	}
	*bar = '\0';
	jb_init(&c->labels);
	jb_obj_open(&c->labels);
	for (tok = strtok_r(line, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
		if (tok[0] == '@') {
			if (field) {
				snprintf(err, errn, "session attributes go before the verdict");
				return -1;
			}
			if (session_attr(c, tok, err, errn))
				return -1;
		} else if (field == 0) {
			if (action_from_name(tok, &c->verdict)) {
				snprintf(err, errn,
					 "unknown verdict '%s' (allow, audit, approve, deny)", tok);
				return -1;
			}
			field++;
		} else if (field == 1) {
			snprintf(c->rule, sizeof(c->rule), "%s", tok);
			field++;
		} else if (!strcmp(tok, "known-bug") || !strncmp(tok, "known-bug=", 10)) {
			snprintf(c->known_bug, sizeof(c->known_bug), "%s at %s:%d",
				 tok[9] ? tok + 10 : "see the comment above the case", c->file,
				 c->line);
		} else {
			snprintf(err, errn, "unexpected '%s' after the rule (only known-bug[=TAG])",
				 tok);
			return -1;
		}
	}
	jb_obj_close(&c->labels);
	if (field != 2) {
		snprintf(err, errn, "want 'VERDICT RULE | SQL'");
		return -1;
	}
	bar++;
	while (*bar == ' ' || *bar == '\t')
		bar++;
	if (expand(c, bar, err, errn))
		return -1;
	c->s.owner = c->owner;
	c->s.user = c->user;
	c->s.database = c->database;
	c->s.exe = c->exe;
	c->s.labels_json = jb_str(&c->labels);
	return 0;
}

static void facts_str(const struct sqlfacts *f, char *out, size_t n)
{
	size_t o = 0;

#define ADD(...)                                                                                   \
	do {                                                                                       \
		if (o < n)                                                                         \
			o += (size_t)snprintf(out + o, n - o, __VA_ARGS__);                        \
	} while (0)
	if (f->parse_error) {
		ADD("parse error: %s", f->error);
		return;
	}
	ADD("kinds=");
	for (int k = 0; k < SK_COUNT; k++)
		if (f->kinds & (1ULL << k))
			ADD("%s,", sqlfacts_kind_name(k));
	for (int i = 0; i < f->nread; i++)
		ADD("%s%s", i ? "," : " read=", f->read[i]);
	for (int i = 0; i < f->nwritten; i++)
		ADD("%s%s", i ? "," : " written=", f->written[i]);
	for (int i = 0; i < f->nfunctions; i++)
		ADD("%s%s", i ? "," : " functions=", f->functions[i]);
	if (f->copy)
		ADD(" copy=%s%s%s%s", f->copy & SQL_COPY_STDIN ? "stdin," : "",
		    f->copy & SQL_COPY_STDOUT ? "stdout," : "",
		    f->copy & SQL_COPY_FILE ? "file," : "",
		    f->copy & SQL_COPY_PROGRAM ? "program," : "");
	if (f->write_without_where)
		ADD(" write-without-where");
	if (f->select_without_limit)
		ADD(" select-without-limit");
	if (f->too_many)
		ADD(" too-many-names");
	if (f->execute_name[0])
		ADD(" execute=%s", f->execute_name);
#undef ADD
}

static const char *show_sql(const char *s, size_t len, char *buf, size_t n)
{
	char head[SHOW_SQL + 1], q[4 * SHOW_SQL + 8];

	snprintf(head, sizeof(head), "%.*s", (int)(len < SHOW_SQL ? len : SHOW_SQL), s);
	unit_quote(head, q, sizeof(q));
	if (len > SHOW_SQL)
		snprintf(buf, n, "%s... (%zu bytes)", q, len);
	else
		snprintf(buf, n, "%s", q);
	return buf;
}

/* hoopd's split of a case's text (dialect.h): 32 KiB, so not on the stack. */
static struct dialect_split g_split;

/* Judges c->sql statement by statement; the report says what each statement got. */
static void __attribute__((unused)) case_run(const struct policy *pol, const struct rcase *c)
{
	const char *sql = c->sql;
	size_t total = c->sql_len;
	struct dialect_split *sp = &g_split;
	enum policy_action worst = ACTION_ALLOW;
	const char *decider = NULL;
	char report[4096], shown[4 * SHOW_SQL + 64];
	size_t ro = 0;
	/* what the grammar cannot split is one statement, the whole text, judged as a parse
	 * error (judge_unsplittable); a blank text has none: nothing is judged, the server
	 * answers an empty query */
	int unsplittable = dialect_pg.split(&c->ds, sql, total, sp, NULL) != 0;

	if (!sp->n)
		decider = "-";
	report[0] = '\0';
	for (int i = 0; i < sp->n; i++) {
		long off = sp->off[i], len = sp->len[i];
		struct sqlfacts *f = calloc(1, sizeof(*f));
		struct rules_result res;
		const char *rule;
		char facts[2048];

		if (!f) {
			unit_fail(__FILE__, __LINE__, "out of memory");
			break;
		}
		if (unsplittable) {
			f->parse_error = 1;
			snprintf(f->error, sizeof(f->error), "PostgreSQL's grammar rejects the query");
		} else {
			dialect_pg.facts(&c->ds, sql + off, (size_t)len, f);
		}
		rules_evaluate(pol, f, &c->s, &res);
		rule = res.rule ? res.rule->name : f->parse_error ? "on_parse_error" : "-";
		if (!decider || res.action > worst) {
			worst = res.action;
			decider = rule;
		}
		facts_str(f, facts, sizeof(facts));
		if (ro < sizeof(report))
			ro += (size_t)snprintf(
			    report + ro, sizeof(report) - ro,
			    "\n    statement %d: %s: %s %s (%s)\n      facts: %s", i + 1,
			    show_sql(sql + off, (size_t)len, shown, sizeof(shown)),
			    policy_action_name(res.action), rule, rules_why(&res), facts);
		free(f);
	}
	if (!decider)
		return;
	if (worst != c->verdict || strcmp(decider, c->rule))
		unit_fail(__FILE__, __LINE__, "%s\n  want %s %s, got %s %s%s",
			  show_sql(sql, total, shown, sizeof(shown)),
			  policy_action_name(c->verdict), c->rule, policy_action_name(worst),
			  decider, report);
}

/* Runs every case of one cases file against one policy; returns how many cases it had. */
static int run_file(const char *policy_path, const char *cases_path)
{
	struct policy *pol = NULL;
	char err[1024], *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int lineno = 0, ncases = 0;
	FILE *in;

	unit_begin("rules");
	unit_where("%s", policy_path);
	if (policy_load(policy_path, &pol, err, sizeof(err))) {
		unit_fail(__FILE__, __LINE__, "policy_load: %s", err);
		unit_end();
		return 0;
	}
	in = fopen(cases_path, "re");
	if (!in) {
		unit_fail(__FILE__, __LINE__, "cannot open %s: %s", cases_path, strerror(errno));
		unit_end();
		policy_free(pol);
		return 0;
	}
	unit_end(); /* loading the policy and opening the file counts as one test */
	while ((len = getline(&line, &cap, in)) != -1) {
		struct rcase *c;
		const char *p = line;

		lineno++;
		while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p || *p == '#')
			continue;
		c = calloc(1, sizeof(*c));
		if (!c) {
			unit_begin("rules");
			unit_fail(__FILE__, __LINE__, "out of memory");
			unit_end();
			break;
		}
		c->file = cases_path;
		c->line = lineno;
		ncases++;
		unit_begin("rules");
		unit_where("%s:%d", cases_path, lineno);
		if (case_parse(c, line, err, sizeof(err)))
			unit_fail(__FILE__, __LINE__, "malformed case: %s", err);
		else {
#ifdef RULES_CASE_RUN
			/* agreement, not expectations: a known bug's case must agree too */
			RULES_CASE_RUN(pol, c);
#else
			if (c->known_bug[0])
				unit_known_bug(c->known_bug);
#endif
#ifndef RULES_CASE_RUN
			case_run(pol, c);
#endif
		}
		unit_end();
		jb_free(&c->labels);
		free(c->sql);
		free(c);
	}
	free(line);
	fclose(in);
	policy_free(pol);
	if (!ncases) {
		unit_begin("rules");
		unit_where("%s", cases_path);
		unit_fail(__FILE__, __LINE__, "no cases");
		unit_end();
	}
	return ncases;
}

int main(int argc, char **argv)
{
	if (argc < 3 || (argc - 1) % 2) {
		fprintf(stderr,
			"usage: test_rules POLICY_FILE CASES_FILE [POLICY_FILE CASES_FILE ...]\n");
		return 2;
	}
	for (int i = 1; i + 1 < argc; i += 2) {
		int n = run_file(argv[i], argv[i + 1]);

		fprintf(stderr, "%s: %d case(s) against %s\n", argv[i + 1], n, argv[i]);
	}
	return unit_report();
}
