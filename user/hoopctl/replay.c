/*
 * hoopctl replay: one session as it happened, from its records: identity, each statement with
 * its parameters, verdict and rule, columns, rows, errors, approvals, the end; or (--json) its
 * records as stored. Whatever the agent put in a record reaches the terminal escaped (disp.h).
 */
#include <stdio.h>
#include <string.h>

#include "disp.h"
#include "hoopctl.h"
#include "trailread.h"

struct replay {
	const char *id;
	int json;
	uint64_t found;
	char first_ts[40];
};

static const char *clock_of(const char *ts)
{
	const char *t = strchr(ts, 'T');

	return t ? t + 1 : ts;
}

static void print_columns(struct json_object *cols)
{
	size_t n =
	    cols && json_object_is_type(cols, json_type_array) ? json_object_array_length(cols) : 0;

	for (size_t i = 0; i < n; i++) {
		struct json_object *c = json_object_array_get_idx(cols, i);

		struct json_object *t;
		int pg = json_object_object_get_ex(c, "type_oid", &t);

		/* PostgreSQL's columns carry a type OID, MySQL's their table.column and type code */
		if (pg || !json_object_object_get_ex(c, "table", &t))
			printf("%s%s (type %lld%s)", i ? ", " : "", jd(c, "name"),
			       (long long)ji(c, pg ? "type_oid" : "type"),
			       ji(c, "format") ? ", binary" : "");
		else
			printf("%s%s (%s.%s, type %lld)", i ? ", " : "", jd(c, "name"), jd(c, "table"),
			       jd(c, "column"), (long long)ji(c, "type"));
	}
	printf("\n");
}

/* One printer per kind of record: r's object is o, its time ts (escaped). */
static void show_session_start(const struct rec *r, struct json_object *o, const char *ts,
			       const struct replay *rp)
{
	struct json_object *ag = jo(o, "agent");

	printf("session %s, started %s (record %llu, %s line %u)\n", disp(rp->id), ts,
	       (unsigned long long)r->seq, r->seg->name, r->lineno);
	printf("  agent     pid %lld, uid %lld, comm %s, exe %s\n", (long long)ji(ag, "pid"),
	       (long long)ji(ag, "uid"), jd(ag, "comm"), jd(ag, "exe"));
	printf("  cgroup    %s, owner %s, labels %s\n", jd(ag, "cgroup"),
	       *jd(ag, "owner") ? jd(ag, "owner") : "-", jtext(jo(ag, "labels")));
	printf("  network   %s -> %s (target %s), TLS agent %s, server %s\n", jd(ag, "address"),
	       jd(o, "destination"), jd(o, "target"),
	       json_object_get_boolean(jo(o, "agent_tls")) ? "yes" : "no",
	       json_object_get_boolean(jo(o, "server_tls")) ? "yes" : "no");
	if (has(o, "user"))
		printf("  login     %s@%s, application_name %s\n", jd(o, "user"),
		       jd(o, "database"),
		       *jd(o, "application_name") ? jd(o, "application_name") : "-");
	else /* an opaque relay (tcp): no login, bytes only */
		printf("  protocol  %s, relayed as opaque bytes\n", jd(o, "protocol"));
}

static void show_statement(struct json_object *o, const char *ts)
{
	const char *vd = jd(o, "verdict");

	printf("%s  #%lld %s %s", clock_of(ts), (long long)ji(o, "stmt"), jd(o, "protocol"),
	       strcmp(vd, "allow") ? vd : "allow");
	if (*jd(o, "reason"))
		printf(" (rule %s)", jd(o, "reason"));
	printf(": %s\n", jd(o, "text"));
	if (*jd(o, "prepared_text"))
		printf("            prepared %s: %s\n", jd(o, "prepared"), jd(o, "prepared_text"));
	else if (has(o, "prepared"))
		printf("            prepared statement \"%s\"\n", jd(o, "prepared"));
	if (has(o, "params"))
		printf("            params %s\n", jtext(jo(o, "params")));
	if (json_object_get_boolean(jo(o, "parse_error")))
		printf("            (PostgreSQL's grammar could not parse it)\n");
}

static void show_complete(struct json_object *o, const char *ts)
{
	if (jo(o, "columns")) { /* recorded with the completion since it followed at once */
		printf("%s  #%lld columns: ", clock_of(ts), (long long)ji(o, "stmt"));
		print_columns(jo(o, "columns"));
	}
	printf("%s  #%lld complete: %s, %lld row(s), %lld bytes, %.3f ms\n", clock_of(ts),
	       (long long)ji(o, "stmt"), jd(o, "tag"), (long long)ji(o, "rows"),
	       (long long)ji(o, "bytes"), (double)ji(o, "duration_us") / 1000.0);
	if (jo(o, "masked")) /* cells masked per column and detector (docs/masking.md) */
		printf("            masked: %s\n", jtext(jo(o, "masked")));
}

static void show_error(struct json_object *o, const char *ts)
{
	char tag[32] = "";

	if (has(o, "stmt"))
		snprintf(tag, sizeof(tag), "#%lld ", (long long)ji(o, "stmt"));
	printf("%s  %serror: SQLSTATE %s %s%s: %s\n", clock_of(ts), tag, jd(o, "sqlstate"),
	       jd(o, "severity"),
	       json_object_get_boolean(jo(o, "from_hoopd")) ? " (from hoopd)" : "",
	       jd(o, "message"));
}

static void show_session_end(struct json_object *o, const char *ts)
{
	printf("%s  session end: %s; %lld statement(s), %lld bytes up, %lld bytes down, %lld ms\n",
	       clock_of(ts), jd(o, "reason"), (long long)ji(o, "statements"),
	       (long long)ji(o, "bytes_agent_to_db"), (long long)ji(o, "bytes_db_to_agent"),
	       (long long)ji(o, "duration_ms"));
}

static void show_approval_decision(struct json_object *o, const char *ts)
{
	if (has(o, "by"))
		printf("%s  approval %s %s by %s (uid %lld)%s%s%s\n", clock_of(ts),
		       jd(o, "approval"), jd(o, "decision"), jd(o, "by"),
		       (long long)ji(o, "by_uid"), *jd(o, "reason") ? ": " : "", jd(o, "reason"),
		       !strcmp(js(o, "scope"), "fingerprint") ? " [scope fingerprint]" : "");
	else
		printf("%s  approval %s %s%s%s\n", clock_of(ts), jd(o, "approval"),
		       jd(o, "decision"), *jd(o, "why") ? ": " : "", jd(o, "why"));
}

/* The kinds with a line or two of their own; the rest print as their JSON. */
static void show_other(struct json_object *o, const char *kind, const char *ts)
{
	if (!strcmp(kind, "result_columns")) {
		printf("%s  #%lld columns: ", clock_of(ts), (long long)ji(o, "stmt"));
		print_columns(jo(o, "columns"));
	} else if (!strcmp(kind, "cancel")) {
		printf("%s  cancel request for backend %lld: %s\n", clock_of(ts),
		       (long long)ji(o, "backend_pid"), jd(o, "outcome"));
	} else if (!strcmp(kind, "protocol_error")) {
		printf("%s  protocol error from the %s: %s\n", clock_of(ts), jd(o, "direction"),
		       jd(o, "message"));
	} else if (!strcmp(kind, "change_user")) {
		printf("%s  change user: %s%s%s -> %s%s%s (COM_CHANGE_USER, %s)\n", clock_of(ts),
		       jd(o, "from_user"), *jd(o, "from_database") ? "/" : "", jd(o, "from_database"),
		       jd(o, "user"), *jd(o, "database") ? "/" : "", jd(o, "database"),
		       *jd(o, "plugin") ? jd(o, "plugin") : "default plugin");
	} else if (!strcmp(kind, "approval_request")) {
		printf("%s  approval %s requested (rule %s), times out in %llds\n", clock_of(ts),
		       jd(o, "approval"), jd(o, "rule"), (long long)ji(o, "timeout_s"));
	} else if (!strcmp(kind, "approval_notified")) {
		printf("%s  approval %s: approvers notified (command pid %lld)\n", clock_of(ts),
		       jd(o, "approval"), (long long)ji(o, "command_pid"));
	} else if (!strcmp(kind, "approval_refused")) {
		printf("%s  approval %s: %s tried to %s and was refused: %s\n", clock_of(ts),
		       jd(o, "approval"), jd(o, "by"), jd(o, "attempt"), jd(o, "refused"));
	} else {
		printf("%s  %s %s\n", clock_of(ts), disp(kind), jtext(o));
	}
}

static int replay_one(const struct rec *r, void *arg)
{
	struct replay *rp = arg;
	struct json_object *o = r->o;
	const char *kind = js(o, "kind");
	const char *ts = jd(o, "ts");

	if (strcmp(js(o, "session"), rp->id))
		return 0;
	rp->found++;
	if (rp->json) {
		/* The records as stored, byte for byte: hash them to check against the chain. */
		fwrite(r->line, 1, r->len, stdout);
		putchar('\n');
		return 0;
	}
	if (!rp->first_ts[0])
		snprintf(rp->first_ts, sizeof(rp->first_ts), "%s", ts);
	if (!strcmp(kind, "session_start"))
		show_session_start(r, o, ts, rp);
	else if (!strcmp(kind, "statement"))
		show_statement(o, ts);
	else if (!strcmp(kind, "complete"))
		show_complete(o, ts);
	else if (!strcmp(kind, "error"))
		show_error(o, ts);
	else if (!strcmp(kind, "session_end"))
		show_session_end(o, ts);
	else if (!strcmp(kind, "approval_decision"))
		show_approval_decision(o, ts);
	else
		show_other(o, kind, ts);
	return 0;
}

static const char replay_usage[] = "usage: hoopctl replay SESSION [--state-dir DIR] [--json]\n";

int cmd_replay(int argc, char **argv)
{
	static const struct option opts[] = {{"state-dir", required_argument, 0, 'd'},
					     {"json", no_argument, 0, 'j'},
					     {"help", no_argument, 0, 'h'},
					     {0}};
	static const struct trail_cmd cmd = {"replay", replay_usage, opts};
	const char *state = DEFAULT_STATE_DIR;
	struct replay rp = {0};
	char want[64];
	int c, rc = -1;

	while ((c = trail_cmd_opt(&cmd, argc, argv, &rc)) != -1) {
		if (c == 'd')
			state = optarg;
		else if (c == 'j')
			rp.json = 1;
	}
	if (rc >= 0)
		return rc;
	if (trail_cmd_args(&cmd, argc, argv, 1))
		return 2;
	rp.id = argv[optind];
	if (strlen(rp.id) > 24 || strchr(rp.id, '"') || strchr(rp.id, '\\')) {
		fprintf(stderr, "hoopctl replay: '%s' is not a session id (s + 12 hex digits)\n",
			rp.id);
		return 2;
	}
	/* Only lines naming the session are parsed; the parsed "session" field decides. */
	snprintf(want, sizeof(want), "\"session\":\"%s\"", rp.id);
	if (trail_each(state, want, replay_one, &rp))
		return 2;
	if (!rp.found) {
		fprintf(stderr, "hoopctl replay: no session %s in %s/audit\n", rp.id, state);
		return 1;
	}
	return 0;
}
