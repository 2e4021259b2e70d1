/* hoopctl approvals / approve / deny. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "disp.h"
#include "hoopctl.h"

static const char *gs(struct json_object *o, const char *k)
{
	struct json_object *v;

	return o && json_object_object_get_ex(o, k, &v) ? json_object_get_string(v) : "";
}

static long long gi(struct json_object *o, const char *k)
{
	struct json_object *v;

	return o && json_object_object_get_ex(o, k, &v) ? json_object_get_int64(v) : 0;
}


/* MySQL's sql_mode, and what in it changes what a text does: an approver reading `a || b` as
 * OR approves something else under PIPES_AS_CONCAT, `"x"` as a string under ANSI_QUOTES. */
static void show_sql_mode(const char *mode)
{
	static const struct {
		const char *flag, *means;
	} warn[] = {
	    {"ANSI_QUOTES", "\"...\" is a NAME, not a string"},
	    {"PIPES_AS_CONCAT", "|| joins strings, it is not OR"},
	    {"NO_BACKSLASH_ESCAPES", "a backslash in '...' is an ordinary character"},
	    {"HIGH_NOT_PRECEDENCE", "NOT a BETWEEN b AND c is (NOT a) BETWEEN ..."},
	    {"IGNORE_SPACE", "a space may follow a function name; function names are keywords"},
	    {"NO_UNSIGNED_SUBTRACTION", "unsigned subtraction gives a signed result"},
	    {"EMPTY_STRING_IS_NULL", "'' is NULL"},
	    {"SIMULTANEOUS_ASSIGNMENT", "UPDATE ... SET a = b, b = a swaps (reads old values)"},
	    {"ANSI", "ANSI_QUOTES, PIPES_AS_CONCAT, IGNORE_SPACE and more"},
	    {"ORACLE", "Oracle's syntax"},
	    {"MSSQL", "SQL Server's quoting"},
	    {"POSTGRESQL", "ANSI_QUOTES, PIPES_AS_CONCAT and more"},
	    {"DB2", "ANSI_QUOTES, PIPES_AS_CONCAT and more"},
	    {"MAXDB", "ANSI_QUOTES, PIPES_AS_CONCAT and more"},
	};
	char buf[1100];

	printf("  under sql_mode: %s\n", *mode ? disp(mode) : "(empty)");
	snprintf(buf, sizeof(buf), ",%s,", mode);
	for (size_t i = 0; i < sizeof(warn) / sizeof(warn[0]); i++) {
		char f[40];

		snprintf(f, sizeof(f), ",%s,", warn[i].flag);
		if (strstr(buf, f))
			printf("    NOTE %s: %s\n", warn[i].flag, warn[i].means);
	}
}

/* How hoopd reads the held text (read_as): its statements, which of them is held and why, and
 * the session setting the reading depends on. An approver must not have to split it by eye. */
static void show_read_as(struct json_object *a)
{
	struct json_object *ra, *st;
	size_t n;

	if (!json_object_object_get_ex(a, "read_as", &ra) ||
	    !json_object_object_get_ex(ra, "statements", &st) ||
	    !json_object_is_type(st, json_type_array))
		return;
	n = json_object_array_length(st);
	printf("  hoopd reads it as %zu statement%s%s:\n", n, n == 1 ? "" : "s",
	       *gs(ra, "standard_conforming_strings")
		   ? " (the session has standard_conforming_strings off: a backslash escapes a "
		     "quote in '...')"
		   : "");
	if (json_object_object_get_ex(ra, "database", NULL))
		printf("  in database: %s\n", *gs(ra, "database") ? disp(gs(ra, "database")) : "(none)");
	if (json_object_object_get_ex(ra, "sql_mode", NULL))
		show_sql_mode(gs(ra, "sql_mode"));
	for (size_t k = 0; k < n; k++) {
		struct json_object *t = json_object_array_get_idx(st, k), *held;
		char label[160];
		int h = json_object_object_get_ex(t, "held", &held) && json_object_get_boolean(held);

		snprintf(label, sizeof(label), "%zu. %s %s: ", k + 1, h ? "HELD by" : "then",
			 *gs(t, "rule") ? disp(gs(t, "rule")) : "-");
		disp_show_text(label, gs(t, "text"));
	}
}

static void show_one(struct json_object *a)
{
	struct json_object *runs;

	printf("%s  waiting %llds (times out in %llds)  rule %s\n", disp(gs(a, "id")),
	       gi(a, "age_s"), gi(a, "expires_in_s"), disp(gs(a, "rule")));
	printf("  agent pid %lld uid %lld %s (%s), owner %s, session %s\n", gi(a, "pid"),
	       gi(a, "uid"), disp(gs(a, "comm")), disp(gs(a, "exe")),
	       *gs(a, "owner") ? disp(gs(a, "owner")) : "-", disp(gs(a, "session")));
	if (*gs(a, "target"))
		printf("  to %s (%s) as database user %s%s%s%s\n", disp(gs(a, "target")),
		       disp(gs(a, "destination")), disp(gs(a, "db_user")),
		       *gs(a, "login_database") ? ", logged in to " : "",
		       *gs(a, "login_database") ? disp(gs(a, "login_database")) : "",
		       !strcmp(gs(a, "mode"), "retry") ? "; approval_mode retry" : "");
	printf("  statement: %lld bytes, sha256 %s\n", gi(a, "bytes"), disp(gs(a, "sha256")));
	disp_show_text("", gs(a, "statement"));
	show_read_as(a);
	if (json_object_object_get_ex(a, "runs", &runs) &&
	    json_object_is_type(runs, json_type_array)) {
		for (size_t k = 0; k < json_object_array_length(runs); k++) {
			struct json_object *r = json_object_array_get_idx(runs, k);
			char label[200];

			snprintf(label, sizeof(label), "which runs %s %s: ", gs(r, "what"),
				 disp(gs(r, "name")));
			if (*gs(r, "text"))
				disp_show_text(label, gs(r, "text"));
			else
				printf("  %s(%s)\n", label, disp(gs(r, "unknown")));
		}
	}
	if (*gs(a, "message"))
		printf("  why held: %s\n", disp(gs(a, "message")));
}

static int show(int json)
{
	struct json_object *r = ctl_call("{\"cmd\":\"approvals\"}"), *arr;
	int rc = ctl_check_ok(r);

	if (rc) {
		if (r)
			json_object_put(r);
		return rc;
	}
	if (json) {
		printf("%s\n", json_object_to_json_string_ext(r, JSON_C_TO_STRING_PLAIN));
		json_object_put(r);
		return 0;
	}
	json_object_object_get_ex(r, "approvals", &arr);
	if (!arr || !json_object_array_length(arr))
		printf("no statement is waiting for approval\n");
	for (size_t i = 0; arr && i < json_object_array_length(arr); i++)
		show_one(json_object_array_get_idx(arr, i));
	json_object_put(r);
	return 0;
}

int cmd_approvals(int argc, char **argv)
{
	static const struct option opts[] = {
		{"watch", no_argument, 0, 'w'}, {"json", no_argument, 0, 'j'}, {0}};
	int watch = 0, json = 0, c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'w')
			watch = 1;
		else if (c == 'j')
			json = 1;
		else
			return 2;
	}
	if (!watch)
		return show(json);
	for (;;) {
		if (!json)
			printf("\033[H\033[2J");
		if (show(json))
			return 1;
		fflush(stdout);
		sleep(1);
	}
}

static long long duration(const char *s)
{
	char *end;
	long long v = strtoll(s, &end, 10);

	if (end == s || v <= 0)
		return -1;
	if (!strcmp(end, "s") || !*end)
		return v;
	if (!strcmp(end, "m"))
		return v * 60;
	if (!strcmp(end, "h"))
		return v * 3600;
	if (!strcmp(end, "d"))
		return v * 86400;
	return -1;
}

/* Show request id as `hoopctl approvals` does and put its sha256 in out. */
static int lookup(const char *id, char *out, size_t n)
{
	struct json_object *r = ctl_call("{\"cmd\":\"approvals\"}"), *arr = NULL;
	int rc = ctl_check_ok(r);

	if (rc) {
		if (r)
			json_object_put(r);
		return rc;
	}
	json_object_object_get_ex(r, "approvals", &arr);
	for (size_t i = 0; arr && i < json_object_array_length(arr); i++) {
		struct json_object *a = json_object_array_get_idx(arr, i);

		if (strcmp(gs(a, "id"), id))
			continue;
		show_one(a);
		snprintf(out, n, "%s", gs(a, "sha256"));
		json_object_put(r);
		return 0;
	}
	fprintf(stderr, "hoopctl: no pending approval %s (decided, timed out, or cancelled?)\n",
		disp(id));
	json_object_put(r);
	return 1;
}

int cmd_decide(int argc, char **argv)
{
	static const struct option opts[] = {{"reason", required_argument, 0, 'r'},
					     {"scope", required_argument, 0, 's'},
					     {"for", required_argument, 0, 'f'},
					     {"sha256", required_argument, 0, 'S'},
					     {"yes", no_argument, 0, 'y'},
					     {0}};
	const char *cmd = argv[0], *reason = NULL, *scope = "once", *sha = NULL;
	char looked[65] = "";
	long long for_s = 0;
	struct json_object *req, *r;
	int c, rc, yes = 0;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'r')
			reason = optarg;
		else if (c == 's')
			scope = optarg;
		else if (c == 'S')
			sha = optarg;
		else if (c == 'y')
			yes = 1;
		else if (c == 'f') {
			for_s = duration(optarg);
			if (for_s < 0) {
				fprintf(stderr, "hoopctl: --for wants a duration like 10m or 1h\n");
				return 2;
			}
		} else
			return 2;
	}
	if (optind >= argc) {
		fprintf(stderr, "usage: hoopctl %s ID%s\n", cmd,
			!strcmp(cmd, "deny") ? " --reason TEXT"
					     : " [--sha256 PREFIX | --yes] [--reason TEXT]"
					       " [--scope once|fingerprint] [--for D]");
		return 2;
	}
	if (!strcmp(cmd, "deny") && !reason) {
		fprintf(stderr, "hoopctl deny: --reason TEXT is required (the agent is told it)\n");
		return 2;
	}
	if (strcmp(scope, "once") && strcmp(scope, "fingerprint")) {
		fprintf(stderr, "hoopctl: --scope is once or fingerprint\n");
		return 2;
	}
	if (!strcmp(cmd, "approve") && !sha) {
		/* The approver names the text they approve by its hash: look it up and show it,
		 * and on a terminal ask, so what runs is what was read. */
		rc = lookup(argv[optind], looked, sizeof(looked));
		if (rc)
			return rc;
		if (!yes && isatty(0)) {
			char line[16];

			printf("approve this statement? [y/N] ");
			fflush(stdout);
			if (!fgets(line, sizeof(line), stdin) ||
			    (line[0] != 'y' && line[0] != 'Y')) {
				printf("not approved\n");
				return 1;
			}
		}
		sha = looked;
	}
	req = json_object_new_object();
	json_object_object_add(req, "cmd", json_object_new_string(cmd));
	if (sha)
		json_object_object_add(req, "sha256", json_object_new_string(sha));
	json_object_object_add(req, "id", json_object_new_string(argv[optind]));
	json_object_object_add(req, "reason", json_object_new_string(reason ? reason : ""));
	json_object_object_add(req, "scope", json_object_new_string(scope));
	json_object_object_add(req, "for_s", json_object_new_int64(for_s));
	r = ctl_call(json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN));
	json_object_put(req);
	rc = ctl_check_ok(r);
	if (!rc)
		printf("%s %s\n", !strcmp(cmd, "approve") ? "approved" : "denied", argv[optind]);
	if (r)
		json_object_put(r);
	return rc;
}
