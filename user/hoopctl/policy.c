/* hoopctl policy check / policy test: the policy loader, the SQL dialect (dialect.h) and the
 * rules, run locally: the same split, facts and verdict (judge.h) as hoopd's. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dialect.h"
#include "disp.h"
#include "hoopctl.h"
#include "judge.h"
#include "json.h"
#include "pglex.h"
#include "policy.h"
#include "rules.h"
#include "sqlfacts.h"

static int check(const char *file)
{
	struct policy *pol;
	char err[1024];

	if (policy_load(file, &pol, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	printf("%s: ok: %d target(s), %d rule(s), default %s, on_parse_error %s\n", file,
	       pol->ntargets, pol->nrules, policy_action_name(pol->default_action),
	       policy_action_name(pol->on_parse_error));
	policy_free(pol);
	return 0;
}

static void facts_line(const struct sqlfacts *f, char *out, size_t n)
{
	size_t o = 0;

	o += (size_t)snprintf(out + o, n - o, "kinds=");
	for (int k = 0; k < SK_COUNT && o < n; k++)
		if (f->kinds & (1ULL << k))
			o += (size_t)snprintf(out + o, n - o, "%s,", sqlfacts_kind_name(k));
	for (int i = 0; i < f->nread && o < n; i++)
		o += (size_t)snprintf(out + o, n - o, "%sread=%s", i ? "," : " ", f->read[i]);
	for (int i = 0; i < f->nwritten && o < n; i++)
		o += (size_t)snprintf(out + o, n - o, "%swritten=%s", i ? "," : " ",
				      f->written[i]);
	for (int i = 0; i < f->nfunctions && o < n; i++)
		o += (size_t)snprintf(out + o, n - o, "%sfunctions=%s", i ? "," : " ",
				      f->functions[i]);
	if (f->write_without_where && o < n)
		o += (size_t)snprintf(out + o, n - o, " write-without-where");
	if (f->select_without_limit && o < n)
		o += (size_t)snprintf(out + o, n - o, " select-without-limit");
	if (f->probes_masked && o < n)
		o += (size_t)snprintf(out + o, n - o, " probes-masked=%s", f->probe);
	if (f->writes_masked && o < n)
		o += (size_t)snprintf(out + o, n - o, " writes-masked");
}

/* The verdict's name as `policy test` prints it: the policy's words (audit is an allow that
 * names its rule in the record; approve is a hold). */
static const char *shown_verdict(enum verdict v, const struct judge_out *out)
{
	return v == VERDICT_ALLOW && out->res.action == ACTION_AUDIT ? "audit"
								      : judge_verdict_name(v);
}

/* How the text is read: --standard-conforming-strings (PostgreSQL); --sql-mode and
 * --server-version (MySQL; default MariaDB 10.11 with the server's default sql_mode). */
struct dialect_settings policy_test_lexing = {.my_mariadb = 1, .my_version = 101106};
/* --protocol mysql: the MySQL/MariaDB dialect (dialect_mysql.c) instead of PostgreSQL's */
static int g_mysql;
static char g_mysql_why[200]; /* why the text was not cut into statements */

enum verdict policy_test_stmt(const struct policy *pol, const struct rules_session *rs,
			      const char *sql, size_t len, int unsplittable, struct sqlfacts *f,
			      struct judge_out *out)
{
	struct judge_in in = {.pol = pol, .f = f, .rs = rs};

	if (unsplittable && g_mysql) {
		f->parse_error = 1;
		snprintf(f->error, sizeof(f->error), "%s", g_mysql_why);
	} else if (unsplittable) {
		judge_unsplittable(f);
	} else if (g_mysql) {
		/* no masked-column probes: MySQL's masking lineage is not read yet */
		dialect_mysql.facts(&policy_test_lexing, sql, len, f);
	} else {
		struct pglex_saved sv;

		dialect_pg.facts(&policy_test_lexing, sql, len, f);
		/* as hoopd does, but with no catalog; judge_probes parses under libpg_query's
		 * current lexer settings, which hoopd's engine sets per session (pglex.h) */
		pglex_set(policy_test_lexing.pg_escape_strings, &sv);
		judge_probes(pol, sql, len, NULL, f);
		pglex_restore(&sv);
	}
	return judge_statement(&in, out);
}

/* What `hoopctl policy test` was asked. */
struct test_args {
	const char *sql, *file;
	struct rules_session rs;
	struct jbuf labels;
	int json, fcall;
};

/* 0, or 2 after saying what is wrong with the command line. */
static int test_opts(int argc, char **argv, struct test_args *a)
{
	static const struct option opts[] = {{"sql", required_argument, 0, 's'},
					     {"user", required_argument, 0, 'u'},
					     {"database", required_argument, 0, 'd'},
					     {"owner", required_argument, 0, 'o'},
					     {"exe", required_argument, 0, 'e'},
					     {"label", required_argument, 0, 'l'},
					     {"function-call", no_argument, 0, 'f'},
					     {"json", no_argument, 0, 'j'},
					     {"standard-conforming-strings", required_argument, 0,
					      'c'},
					     {"protocol", required_argument, 0, 'p'},
					     {"sql-mode", required_argument, 0, 'm'},
					     {"server-version", required_argument, 0, 'v'},
					     {0}};
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			a->sql = optarg;
			break;
		case 'u':
			a->rs.user = optarg;
			break;
		case 'd':
			a->rs.database = optarg;
			break;
		case 'o':
			a->rs.owner = optarg;
			break;
		case 'e':
			a->rs.exe = optarg;
			break;
		case 'l': {
			char *eq = strchr(optarg, '=');

			if (!eq) {
				fprintf(stderr, "hoopctl: --label wants KEY=VALUE\n");
				return 2;
			}
			*eq = '\0';
			jb_kv_str(&a->labels, optarg, eq + 1);
			break;
		}
		case 'f':
			a->fcall = 1;
			break;
		case 'j':
			a->json = 1;
			break;
		case 'c':
			if (strcmp(optarg, "on") && strcmp(optarg, "off")) {
				fprintf(stderr, "hoopctl: --standard-conforming-strings wants on or "
						"off\n");
				return 2;
			}
			policy_test_lexing.pg_escape_strings = !strcmp(optarg, "off");
			break;
		case 'p':
			if (!strcmp(optarg, "mysql") || !strcmp(optarg, "mariadb")) {
				g_mysql = 1;
			} else if (strcmp(optarg, "postgres") && strcmp(optarg, "postgresql")) {
				fprintf(stderr, "hoopctl: --protocol wants postgres or mysql\n");
				return 2;
			}
			break;
		case 'm': {
			/* sql_mode as SELECT @@sql_mode shows it: names, comma-separated */
			char *m = strdup(optarg), *save = NULL;

			if (!m)
				return 2;
			policy_test_lexing.my_ansi_quotes = 0;
			policy_test_lexing.my_no_backslash_escapes = 0;
			policy_test_lexing.my_unread_mode = 0;
			for (char *t = strtok_r(m, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
				/* the modes that change reading; ANSI, DB2, MAXDB and POSTGRESQL
				 * include ANSI_QUOTES; MSSQL and ORACLE are not read */
				if (!strcasecmp(t, "ANSI_QUOTES") || !strcasecmp(t, "ANSI") ||
				    !strcasecmp(t, "DB2") || !strcasecmp(t, "MAXDB") ||
				    !strcasecmp(t, "POSTGRESQL"))
					policy_test_lexing.my_ansi_quotes = 1;
				else if (!strcasecmp(t, "NO_BACKSLASH_ESCAPES"))
					policy_test_lexing.my_no_backslash_escapes = 1;
				else if (!strcasecmp(t, "MSSQL") || !strcasecmp(t, "ORACLE"))
					policy_test_lexing.my_unread_mode = 1;
			}
			free(m);
			break;
		}
		case 'v': {
			/* "10.11.6-MariaDB", "5.5.5-10.11.6-MariaDB" (as a greeting says it), "8.0.36" */
			const char *v = optarg;
			unsigned a, b, c;

			if (!strncmp(v, "5.5.5-", 6))
				v += 6;
			if (sscanf(v, "%u.%u.%u", &a, &b, &c) != 3 || a > 99 || b > 99 || c > 99) {
				fprintf(stderr, "hoopctl: --server-version wants X.Y.Z[-MariaDB]\n");
				return 2;
			}
			policy_test_lexing.my_version = a * 10000 + b * 100 + c;
			policy_test_lexing.my_mariadb = strcasestr(v, "mariadb") != NULL;
			break;
		}
		default:
			return 2;
		}
	}
	if (optind >= argc || (!a->sql && !a->fcall)) {
		fprintf(stderr, "usage: hoopctl policy test FILE --sql \"...\" [--user U] [--database D] "
				"[--owner O] [--exe PATH] [--label K=V] [--json]\n"
				"       [--standard-conforming-strings on|off]\n"
				"       [--protocol postgres|mysql] [--sql-mode MODE] "
				"[--server-version VERSION]\n"
				"       hoopctl policy test FILE --function-call\n");
		return 2;
	}
	a->file = argv[optind];
	return 0;
}

static void test_function_call(const struct policy *pol, const struct rules_session *rs)
{
	struct sqlfacts f = {.kinds = 1ULL << SK_FUNCTION_CALL};
	struct judge_in in = {.pol = pol, .f = &f, .rs = rs, .function_call = 1};
	struct judge_out out;
	enum verdict v = judge_statement(&in, &out);

	printf("FunctionCall: %s (%s)\n", judge_verdict_name(v),
	       out.res.rule ? rules_why(&out.res)
			    : "FunctionCall messages are denied unless a rule allows them");
	if (out.message[0] && (v != VERDICT_ALLOW))
		printf("  message: %s\n", out.message);
}

/* One statement's verdict as a JSON line; gerr when the grammar rejected the text. */
static void show_json(int i, const char *text, size_t len, enum verdict v, struct judge_out *out,
		      const char *facts, const struct sql_error *gerr)
{
	struct jbuf j;
	char *t = strndup(text, len);

	jb_init(&j);
	jb_obj_open(&j);
	jb_kv_int(&j, "statement", i + 1);
	jb_key(&j, "text");
	jb_str_val(&j, t ? t : "");
	free(t);
	jb_kv_str(&j, "verdict", shown_verdict(v, out));
	jb_kv_str(&j, "rule", out->rule);
	jb_kv_str(&j, "why", rules_why(&out->res));
	jb_kv_str(&j, "message", v == VERDICT_ALLOW ? "" : out->message);
	jb_kv_str(&j, "facts", facts);
	if (gerr) {
		jb_key(&j, "server_error");
		jb_obj_open(&j);
		jb_kv_str(&j, "sqlstate", gerr->sqlstate);
		jb_kv_str(&j, "message", gerr->message);
		jb_kv_int(&j, "position", gerr->position);
		jb_kv_str(&j, "detail", gerr->detail);
		jb_kv_str(&j, "hint", gerr->hint);
		jb_obj_close(&j);
	}
	jb_obj_close(&j);
	printf("%s\n", jb_str(&j));
	jb_free(&j);
}

/* ...and for a person. */
static void show_text(int i, const char *text, size_t len, enum verdict v, struct judge_out *out,
		      const struct sqlfacts *f, const char *facts, const struct sql_error *gerr)
{
	printf("statement %d: %s\n  verdict: %s (%s)\n", i + 1, disp_n(text, len),
	       shown_verdict(v, out), rules_why(&out->res));
	if (v != VERDICT_ALLOW && out->message[0])
		printf("  message: %s\n", disp(out->message));
	printf("  facts:   %s\n", disp(f->parse_error ? f->error : facts));
	if (gerr) {
		printf("  server:  ERROR %s: %s", gerr->sqlstate, disp(gerr->message));
		if (gerr->position)
			printf(" (at character %d)", gerr->position);
		printf("\n");
		if (gerr->hint[0])
			printf("  hint:    %s\n", disp(gerr->hint));
	}
}

/* Every statement of the text, cut by hoopd's split: what the grammar rejects is one statement
 * judged whole (on_parse_error), and a blank text has none. 0, or 1. */
static int test_text(const struct policy *pol, const struct test_args *a)
{
	const char *sql = a->sql;
	enum verdict worst = VERDICT_ALLOW;
	struct sql_error gerr; /* what the server says of text its grammar rejects */
	struct dialect_split *sp = malloc(sizeof(*sp));
	int unsplittable, rc = 0;

	if (!sp) {
		fprintf(stderr, "hoopctl: out of memory\n");
		return 1;
	}
	if (g_mysql) {
		memset(&gerr, 0, sizeof(gerr));
		unsplittable = dialect_mysql.split(&policy_test_lexing, sql, strlen(sql), sp, &gerr) != 0;
		/* judged whole, as a parse error (on_parse_error), saying why */
		snprintf(g_mysql_why, sizeof(g_mysql_why), "%s", gerr.message);
	} else {
		unsplittable = dialect_pg.split(&policy_test_lexing, sql, strlen(sql), sp, &gerr) != 0;
	}
	if (!sp->n)
		printf("no statement: the server answers an empty query\n");
	for (int i = 0; i < sp->n; i++) {
		const char *text = sql + sp->off[i];
		size_t len = (size_t)sp->len[i];
		const struct sql_error *ge =
			unsplittable && gerr.kind == SQL_ERR_GRAMMAR ? &gerr : NULL;
		struct sqlfacts *f = calloc(1, sizeof(*f));
		struct judge_out out;
		enum verdict v;
		char facts[1024];

		if (!f) {
			rc = 1;
			break;
		}
		v = policy_test_stmt(pol, &a->rs, text, len, unsplittable, f, &out);
		facts_line(f, facts, sizeof(facts));
		/* deny over hold over allow, as hoopd judges a simple Query */
		if (worst != VERDICT_DENY && (v == VERDICT_DENY || v == VERDICT_HOLD))
			worst = v;
		if (a->json)
			show_json(i, text, len, v, &out, facts, ge);
		else
			show_text(i, text, len, v, &out, f, facts, ge);
		free(f);
	}
	if (!a->json && sp->n > 1)
		printf("overall: %s (any deny: none of the statements runs)\n",
		       judge_verdict_name(worst));
	free(sp);
	return rc;
}

static int test(int argc, char **argv)
{
	struct test_args a = {.rs = {.owner = "", .user = "", .database = "", .exe = ""}};
	struct policy *pol;
	char err[1024];
	int rc;

	jb_init(&a.labels);
	jb_obj_open(&a.labels);
	rc = test_opts(argc, argv, &a);
	jb_obj_close(&a.labels);
	a.rs.labels_json = jb_str(&a.labels);
	if (rc) {
		jb_free(&a.labels);
		return rc;
	}
	if (policy_load(a.file, &pol, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		jb_free(&a.labels);
		return 1;
	}
	if (a.fcall)
		test_function_call(pol, &a.rs);
	else
		rc = test_text(pol, &a);
	policy_free(pol);
	jb_free(&a.labels);
	return rc;
}

int cmd_policy(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: hoopctl policy check FILE | policy test FILE --sql ...\n");
		return 2;
	}
	if (!strcmp(argv[1], "check")) {
		if (argc != 3) {
			fprintf(stderr, "usage: hoopctl policy check FILE\n");
			return 2;
		}
		return check(argv[2]);
	}
	if (!strcmp(argv[1], "test")) {
		optind = 1;
		return test(argc - 1, argv + 1);
	}
	fprintf(stderr, "hoopctl policy: unknown subcommand '%s' (check, test)\n", argv[1]);
	return 2;
}
