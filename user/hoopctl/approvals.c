/* hoopctl approvals / approve / deny. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
	for (size_t i = 0; arr && i < json_object_array_length(arr); i++) {
		struct json_object *a = json_object_array_get_idx(arr, i);

		printf("%s  waiting %llds (times out in %llds)  rule %s\n", gs(a, "id"),
		       gi(a, "age_s"), gi(a, "expires_in_s"), gs(a, "rule"));
		printf("  agent pid %lld uid %lld %s (%s), owner %s, session %s\n", gi(a, "pid"),
		       gi(a, "uid"), gs(a, "comm"), gs(a, "exe"),
		       *gs(a, "owner") ? gs(a, "owner") : "-", gs(a, "session"));
		printf("  %s\n", gs(a, "statement"));
		if (*gs(a, "message"))
			printf("  why held: %s\n", gs(a, "message"));
	}
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

int cmd_decide(int argc, char **argv)
{
	static const struct option opts[] = {{"reason", required_argument, 0, 'r'},
					     {"scope", required_argument, 0, 's'},
					     {"for", required_argument, 0, 'f'},
					     {0}};
	const char *cmd = argv[0], *reason = NULL, *scope = "once";
	long long for_s = 0;
	struct json_object *req, *r;
	int c, rc;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'r')
			reason = optarg;
		else if (c == 's')
			scope = optarg;
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
					     : " [--reason TEXT] [--scope once|fingerprint] [--for D]");
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
	req = json_object_new_object();
	json_object_object_add(req, "cmd", json_object_new_string(cmd));
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
