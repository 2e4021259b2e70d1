/* hoopctl: the operator's CLI. Talks to hoopd over its control socket (one JSON line each way). */
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "disp.h"
#include "hoopctl.h"
#include "json.h"
#include "k8s.h"

static const char *g_control = "/run/hoop/hoopd.sock";

static const char usage[] =
	"Usage: hoopctl [--control PATH] COMMAND [options]\n"
	"\n"
	"Commands:\n"
	"  attach --cgroup PATH | --pod UID [--container ID] | --container ID\n"
	"         [--owner NAME] [--label KEY=VALUE ...] [--reset-existing]\n"
	"        Redirect the database connections of every process in the cgroup v2 PATH (and\n"
	"        its descendants) into hoopd. PATH may be absolute (/sys/fs/cgroup/agents; on a\n"
	"        hybrid host it is looked up under the cgroup2 mount) or relative to the cgroup2\n"
	"        mount. On a Kubernetes node, --pod UID takes the pod's cgroup (all its\n"
	"        containers; UID as in kubectl get pod NAME -o jsonpath='{.metadata.uid}') and\n"
	"        --container ID one container's (ID as kubectl shows it, containerd://... is\n"
	"        fine); both are found in the kubelet's layout, systemd or cgroupfs driver, any\n"
	"        QoS class, and may be unique prefixes of 8 or more characters. The search starts\n"
	"        at the cgroup2 mount, or at $HOOP_KUBEPODS_ROOT when that is set.\n"
	"        OWNER names the person or team accountable for the agents; labels are\n"
	"        free-form and are recorded with every connection. Only new connections are\n"
	"        redirected: attach lists the cgroup's connections to targeted ports that were\n"
	"        already open, and --reset-existing ends them (SOCK_DESTROY) so the agents\n"
	"        reconnect through hoopd. Attaching twice updates owner and labels. attach\n"
	"        warns about processes in the cgroup that hold CAP_NET_RAW or CAP_NET_ADMIN\n"
	"        (agents should run without them: docs/deploy.md).\n"
	"  detach --cgroup PATH\n"
	"        Remove hoop's programs from the cgroup. Open connections through hoopd go on;\n"
	"        new ones go direct.\n"
	"  status [--json]\n"
	"        Attached cgroups, listeners, live connections with the identity behind each\n"
	"        (pid, uid, comm, exe, cgroup, owner), and counters.\n"
	"  reload\n"
	"        Re-read hoopd's policy file. A bad file is refused with its line and column and\n"
	"        the running policy stays in force. Returns once every engine worker runs the\n"
	"        new policy (statements judged after it are judged by it).\n"
	"  ping  Check that hoopd answers.\n"
	"  approvals [--watch] [--json]\n"
	"        Statements held for approval: id, age, the agent (pid, uid, comm, owner), the\n"
	"        rule, the statement's size and SHA-256, its text (the first 2048 bytes), and\n"
	"        for EXECUTE and FETCH the prepared statement's or cursor's text that runs.\n"
	"        Text the agent chose is shown with control characters, bidi controls and\n"
	"        invalid UTF-8 escaped (\\x1b, \\u202e). --watch refreshes every second.\n"
	"        Root or an approver.\n"
	"  approve ID [--sha256 PREFIX | --yes] [--reason TEXT] [--scope once|fingerprint]\n"
	"          [--for DURATION]\n"
	"        Let a held statement run. hoopd runs it only if PREFIX (16 or more hex digits\n"
	"        of the SHA-256 that `approvals` shows) matches the held text. Without\n"
	"        --sha256, the request is looked up and shown, and on a terminal you are asked\n"
	"        to confirm (--yes skips the question). --scope fingerprint also lets\n"
	"        statements of the same shape (other constants only) from the same owner run\n"
	"        without asking, for DURATION (10m, 1h; default 10m); hoopd refuses it for\n"
	"        code (DO, CREATE FUNCTION, CALL, EXECUTE, FETCH, a function given a string)\n"
	"        and for agents without an owner. Only approvers named in the policy\n"
	"        (approvals.approvers), and never the agent's own uid or owner.\n"
	"  deny ID --reason TEXT\n"
	"        Refuse a held statement; the agent gets ERROR 42501 with the reason.\n"
	"  policy check FILE\n"
	"        Load a policy the way hoopd would; print a summary, or the first error with\n"
	"        its line and column (exit 1). Needs no running hoopd.\n"
	"  policy test FILE --sql SQL [--user U] [--database D] [--owner O] [--exe PATH]\n"
	"                  [--label K=V ...] [--json] [--standard-conforming-strings on|off]\n"
	"                  [--protocol postgres|mysql] [--sql-mode MODE] [--server-version V]\n"
	"  policy test FILE --function-call\n"
	"        Judge SQL (each statement of it) against FILE as hoopd would for a session\n"
	"        with those attributes: the verdict, the rule that decided, its message, and\n"
	"        the facts read from PostgreSQL's parse tree. Needs no running hoopd.\n"
	"        --protocol mysql reads SQL as MySQL/MariaDB does (docs/mysql.md): under\n"
	"        --sql-mode (as SELECT @@sql_mode shows it; ANSI_QUOTES and\n"
	"        NO_BACKSLASH_ESCAPES change the reading) for a server of --server-version\n"
	"        (its greeting's, e.g. 10.11.6-MariaDB or 8.0.36; it decides which versioned\n"
	"        comments run; default MariaDB 10.11).\n"
	"\n"
	"Audit trail (read from DIR/audit, default /var/lib/hoop; needs no running hoopd):\n"
	"  verify [--state-dir DIR] [--public-key FILE ...] [--from SEGMENT] [--json]\n"
	"        Recompute the hash chain and check every checkpoint's Ed25519 signature\n"
	"        with the public key: DIR/audit.pub, or --public-key FILE (repeat it for keys\n"
	"        replaced over the trail's life; given, DIR/audit.pub is not read). Checkpoints\n"
	"        written before hoopd signed them carry an HMAC, checked with DIR/audit.key\n"
	"        (root); without it verify cannot check them and exits 2. Prints \"ok: ...\"\n"
	"        or the first bad place: segment, line, seq and what is wrong (modified,\n"
	"        deleted, reordered, truncated, forged). --from starts at a segment, taking\n"
	"        its first record on trust. Exit 0 intact, 1 tampering found, 2 usage or I/O\n"
	"        error, or a checkpoint with no key to check it.\n"
	"  sessions [--state-dir DIR] [--since T] [--owner O] [--db D] [--verdict V] [--json]\n"
	"        One line per session: id, start, owner, agent pid/comm/exe, user@database,\n"
	"        statements, denied, how it ended. T is RFC 3339 (2026-11-26T14:00:00Z) or a\n"
	"        duration back from now (90m, 12h, 2d); V is allow, deny, hold or not_run.\n"
	"  replay SESSION [--state-dir DIR] [--json]\n"
	"        The session as it happened: identity, each statement with its parameters,\n"
	"        verdict and rule, columns, rows, errors with SQLSTATE, the end. --json: its\n"
	"        records as stored (JSON Lines).\n"
	"  export --since T --format jsonl|csv [--state-dir DIR]\n"
	"        Every statement since T with the identity of its session and its outcome,\n"
	"        as JSON Lines or CSV with a header.\n"
	"\n"
	"Fleet: the central PostgreSQL (docs/fleet.md). DSN is a libpq connection string or URI;\n"
	"--dsn-file FILE reads it from the first line of FILE instead (keep the password there, in\n"
	"a file only root reads, not on a command line every user can see in ps):\n"
	"  central init --dsn DSN\n"
	"        Create the schema hoop in the database, or migrate it to this version: tables\n"
	"        nodes and records (partitioned by month; this month and the next two made),\n"
	"        the roles hoop_node, hoop_auditor, hoop_approver (NOLOGIN groups: grant them to\n"
	"        login roles) and row-level security. Idempotent. Run it as the database owner.\n"
	"  central ship --dsn DSN --node NAME [--state-dir DIR] [--once] [--no-approvals]\n"
	"        Copy this node's audit trail (DIR/audit) into the central database, from where\n"
	"        the central copy ends, in batches (COPY, at least once, deduplicated by node,\n"
	"        seq and ts), and keep following it; when the database is away, retry with\n"
	"        backoff and catch up. NAME must be the login role's name (row-level security).\n"
	"        Progress in DIR/central-shipped. --once: ship what is there, then exit (1 if\n"
	"        the database could not be reached). hoopd --central runs this for you.\n"
	"        Unless --once or --no-approvals, it also publishes the requests pending on\n"
	"        this node (read over --control) into hoop.approvals every 500 ms, and applies\n"
	"        the decisions taken there (NOTIFY hoop_decisions, polled every second too).\n"
	"  central verify --dsn DSN [--node NAME] [--pub FILE] [--json]\n"
	"        Prove each node's chain (or NAME's) from the central copy alone: its records\n"
	"        are written out as segments by their seg column in a temporary directory and\n"
	"        checked as verify checks a trail, with FILE (the node's audit.pub as you got it\n"
	"        from the node: prefer it) or else the key the node registered. Exit 0 intact,\n"
	"        1 tampered (node, segment, line and seq named) or no records, 2 an error.\n"	"  central approvals --dsn DSN [--node NAME] [--json]\n"
	"        Statements held for approval on every node (or NAME): node, id, age, rule,\n"
	"        owner, agent uid, session, the statement's size, SHA-256 and text (escaped as\n"
	"        approvals shows it). As a login role that is a member of hoop_approver.\n"
	"  central approve --dsn DSN NODE ID --sha256 PREFIX [--reason TEXT] [--wait SECS]\n"
	"  central deny --dsn DSN NODE ID --reason TEXT [--wait SECS]\n"
	"        Decide a request through hoop.decide: you are the database role you logged\n"
	"        in as; refused for the agent's owner, a PREFIX under 16 hex digits or not\n"
	"        the statement's, and a request already decided or closed (of two decisions\n"
	"        at once exactly one wins). Then waits up to SECS (default 5, 0 not at all)\n"
	"        for the node to apply it: exit 1 if the node did not (the request had timed\n"
	"        out, been decided locally or cancelled there meanwhile).\n"
	"\n"
	"Global options:\n"
	"  --control PATH   hoopd's control socket [default /run/hoop/hoopd.sock]\n"
	"  -h, --help       this help\n"
	"\n"
	"Exit status: 0 on success, 1 when hoopd refuses or cannot be reached, 2 on a usage error.\n";

/* Send one request, return the parsed response (or NULL with a message printed). */
struct json_object *ctl_call(const char *req)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	char *buf = NULL;
	size_t len = 0, cap = 0;
	struct json_object *resp;
	int fd;

	snprintf(a.sun_path, sizeof(a.sun_path), "%s", g_control);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		fprintf(stderr, "hoopctl: cannot reach hoopd at %s: %s\n", g_control,
			strerror(errno));
		if (errno == ENOENT || errno == ECONNREFUSED)
			fprintf(stderr, "hoopctl: is hoopd running? (hoopd --policy FILE; "
					"--control PATH if it uses another socket)\n");
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	if (write(fd, req, strlen(req)) != (ssize_t)strlen(req) || write(fd, "\n", 1) != 1) {
		fprintf(stderr, "hoopctl: write to %s: %s\n", g_control, strerror(errno));
		close(fd);
		return NULL;
	}
	for (;;) {
		ssize_t n;

		if (len + 4096 > cap) {
			char *nb = realloc(buf, cap = cap ? cap * 2 : 65536);

			if (!nb) {
				free(buf);
				close(fd);
				return NULL;
			}
			buf = nb;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (!buf || !len) {
		fprintf(stderr, "hoopctl: hoopd closed the connection without an answer\n");
		free(buf);
		return NULL;
	}
	buf[len] = '\0';
	resp = json_tokener_parse(buf);
	free(buf);
	if (!resp)
		fprintf(stderr, "hoopctl: hoopd's answer is not JSON\n");
	return resp;
}

static const char *gs(struct json_object *o, const char *k)
{
	struct json_object *v;

	if (!o || !json_object_object_get_ex(o, k, &v))
		return "";
	return json_object_get_string(v);
}

/* A string field as shown to a person: agent-chosen text escaped visibly (disp.h). */
static const char *gd(struct json_object *o, const char *k)
{
	return disp(gs(o, k));
}

static int64_t gi(struct json_object *o, const char *k)
{
	struct json_object *v;

	if (!o || !json_object_object_get_ex(o, k, &v))
		return 0;
	return json_object_get_int64(v);
}

static struct json_object *ga(struct json_object *o, const char *k)
{
	struct json_object *v;

	if (!o || !json_object_object_get_ex(o, k, &v) || !json_object_is_type(v, json_type_array))
		return NULL;
	return v;
}

int ctl_check_ok(struct json_object *r)
{
	struct json_object *v;

	if (!r)
		return 1;
	if (json_object_object_get_ex(r, "ok", &v) && json_object_get_boolean(v))
		return 0;
	fprintf(stderr, "hoopctl: %s\n", gd(r, "error"));
	return 1;
}

static int cmd_attach(int argc, char **argv)
{
	static const struct option opts[] = {{"cgroup", required_argument, 0, 'g'},
					     {"pod", required_argument, 0, 'P'},
					     {"container", required_argument, 0, 'C'},
					     {"owner", required_argument, 0, 'o'},
					     {"label", required_argument, 0, 'l'},
					     {"reset-existing", no_argument, 0, 'r'},
					     {"help", no_argument, 0, 'h'},
					     {0}};
	const char *cg = NULL, *owner = "", *pod = NULL, *ctr = NULL;
	struct json_object *labels = json_object_new_object(), *req, *resp, *ex;
	char kpath[4096], kerr[4096];
	int reset = 0, c, rc;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'g':
			cg = optarg;
			break;
		case 'P':
			pod = optarg;
			break;
		case 'C':
			ctr = optarg;
			break;
		case 'o':
			owner = optarg;
			break;
		case 'l': {
			char *eq = strchr(optarg, '=');

			if (!eq || eq == optarg) {
				fprintf(stderr, "hoopctl: --label wants KEY=VALUE, got '%s'\n",
					optarg);
				return 2;
			}
			*eq = '\0';
			json_object_object_add(labels, optarg, json_object_new_string(eq + 1));
			break;
		}
		case 'r':
			reset = 1;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			return 2;
		}
	}
	if (cg && (pod || ctr)) {
		fprintf(stderr, "hoopctl attach: give --cgroup PATH, or --pod/--container, not both\n");
		json_object_put(labels);
		return 2;
	}
	if (pod || ctr) {
		/* Resolved here, on the node, so hoopd is asked for a plain cgroup path. */
		int r = k8s_resolve(pod, ctr, kpath, sizeof(kpath), kerr, sizeof(kerr));

		if (r) {
			fprintf(stderr, "hoopctl attach: %s\n", kerr);
			json_object_put(labels);
			return r == -EINVAL ? 2 : 1;
		}
		printf("%s%s%s%s%s: cgroup %s\n", pod ? "pod " : "", pod ? pod : "",
		       pod && ctr ? ", " : "", ctr ? "container " : "", ctr ? ctr : "", kpath);
		cg = kpath;
	}
	if (!cg) {
		fprintf(stderr, "hoopctl attach: --cgroup PATH (or --pod UID, --container ID) is "
				"required\n");
		json_object_put(labels);
		return 2;
	}
	req = json_object_new_object();
	json_object_object_add(req, "cmd", json_object_new_string("attach"));
	json_object_object_add(req, "cgroup", json_object_new_string(cg));
	json_object_object_add(req, "owner", json_object_new_string(owner));
	json_object_object_add(req, "labels", labels);
	json_object_object_add(req, "reset_existing", json_object_new_boolean(reset));
	resp = ctl_call(json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN));
	json_object_put(req);
	rc = ctl_check_ok(resp);
	if (!rc) {
		printf("attached %s (cgroup id %lld)%s%s\n", gs(resp, "cgroup"),
		       (long long)gi(resp, "cgroup_id"), *owner ? ", owner " : "", owner);
		ex = ga(resp, "existing");
		if (ex && json_object_array_length(ex)) {
			printf("%zu connection(s) to targeted ports were open before attach%s:\n",
			       json_object_array_length(ex),
			       reset ? "" : " and still bypass hoop (end them with --reset-existing)");
			for (size_t i = 0; i < json_object_array_length(ex); i++) {
				struct json_object *e = json_object_array_get_idx(ex, i);
				struct json_object *rv;
				const char *st = "";

				if (json_object_object_get_ex(e, "reset", &rv))
					st = json_object_get_boolean(rv) ? "  reset" : "  NOT reset";
				printf("  %s -> %s  uid %lld  inode %lld%s\n", gs(e, "local"),
				       gs(e, "remote"), (long long)gi(e, "uid"),
				       (long long)gi(e, "inode"), st);
			}
		} else {
			printf("no connection to a targeted port was open before attach\n");
		}
		if (*gs(resp, "existing_error"))
			fprintf(stderr, "hoopctl: warning: %s\n", gs(resp, "existing_error"));
		netcaps_warn(gs(resp, "cgroup"));
	}
	if (resp)
		json_object_put(resp);
	return rc;
}

static int cmd_detach(int argc, char **argv)
{
	static const struct option opts[] = {{"cgroup", required_argument, 0, 'g'},
					     {"help", no_argument, 0, 'h'},
					     {0}};
	const char *cg = NULL;
	struct json_object *req, *resp;
	int c, rc;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'g')
			cg = optarg;
		else if (c == 'h') {
			fputs(usage, stdout);
			return 0;
		} else
			return 2;
	}
	if (!cg) {
		fprintf(stderr, "hoopctl detach: --cgroup PATH is required\n");
		return 2;
	}
	req = json_object_new_object();
	json_object_object_add(req, "cmd", json_object_new_string("detach"));
	json_object_object_add(req, "cgroup", json_object_new_string(cg));
	resp = ctl_call(json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN));
	json_object_put(req);
	rc = ctl_check_ok(resp);
	if (!rc)
		printf("detached %s\n", cg);
	if (resp)
		json_object_put(resp);
	return rc;
}

static void human_bytes(int64_t b, char *out, size_t n)
{
	if (b < 10 * 1024)
		snprintf(out, n, "%lldB", (long long)b);
	else if (b < 10 * 1024 * 1024)
		snprintf(out, n, "%lldK", (long long)(b / 1024));
	else
		snprintf(out, n, "%lldM", (long long)(b / (1024 * 1024)));
}

static int cmd_status(int argc, char **argv)
{
	static const struct option opts[] = {{"json", no_argument, 0, 'j'},
					     {"help", no_argument, 0, 'h'},
					     {0}};
	struct json_object *resp, *arr;
	int json = 0, c, rc;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'j')
			json = 1;
		else if (c == 'h') {
			fputs(usage, stdout);
			return 0;
		} else
			return 2;
	}
	resp = ctl_call("{\"cmd\":\"status\"}");
	rc = ctl_check_ok(resp);
	if (rc) {
		if (resp)
			json_object_put(resp);
		return rc;
	}
	if (json) {
		printf("%s\n", json_object_to_json_string_ext(resp, JSON_C_TO_STRING_PRETTY));
		json_object_put(resp);
		return 0;
	}
	printf("hoopd %s (pid %lld), policy %s, listen port %lld, accel %s, %s\n",
	       gd(resp, "version"), (long long)gi(resp, "pid"), gd(resp, "policy"),
	       (long long)gi(resp, "listen_port"), gd(resp, "accel"),
	       json_object_get_boolean(json_object_object_get(resp, "fail_open")) ? "FAIL-OPEN"
										 : "fail-closed");
	arr = ga(resp, "attachments");
	printf("\nATTACHED CGROUPS (%zu)\n", arr ? json_object_array_length(arr) : 0);
	for (size_t i = 0; arr && i < json_object_array_length(arr); i++) {
		struct json_object *a = json_object_array_get_idx(arr, i);
		struct json_object *l = json_object_object_get(a, "labels");

		printf("  %s  id=%lld  owner=%s  labels=%s\n", gd(a, "cgroup"),
		       (long long)gi(a, "cgroup_id"), *gs(a, "owner") ? gd(a, "owner") : "-",
		       disp(l ? json_object_to_json_string_ext(l, JSON_C_TO_STRING_PLAIN) : "{}"));
	}
	arr = ga(resp, "listeners");
	printf("\nLISTENERS (%zu)\n", arr ? json_object_array_length(arr) : 0);
	for (size_t i = 0; arr && i < json_object_array_length(arr); i++) {
		struct json_object *l = json_object_array_get_idx(arr, i);

		printf("  netns %lld%s  127.0.0.1:%lld%s\n", (long long)gi(l, "netns_inode"),
		       gi(l, "host_netns") ? " (host)" : "", (long long)gi(l, "port"),
		       gi(l, "ipv6") ? " [::1]" : "");
	}
	arr = ga(resp, "connections");
	printf("\nCONNECTIONS (%zu)\n", arr ? json_object_array_length(arr) : 0);
	if (arr && json_object_array_length(arr))
		printf("  %-14s %7s %6s %-15s %-20s %-24s %-22s %-12s %7s %7s\n", "SESSION", "PID",
		       "UID", "COMM", "OWNER", "CGROUP", "DESTINATION", "TARGET", "UP", "DOWN");
	for (size_t i = 0; arr && i < json_object_array_length(arr); i++) {
		struct json_object *cn = json_object_array_get_idx(arr, i);
		char up[16], down[16];

		human_bytes(gi(cn, "bytes_agent_to_db"), up, sizeof(up));
		human_bytes(gi(cn, "bytes_db_to_agent"), down, sizeof(down));
		printf("  %-14s %7lld %6lld %-15s %-20s %-24s %-22s %-12s %7s %7s\n",
		       gd(cn, "session"), (long long)gi(cn, "pid"), (long long)gi(cn, "uid"),
		       gd(cn, "comm"), *gs(cn, "owner") ? gd(cn, "owner") : "-", gd(cn, "cgroup"),
		       gd(cn, "destination"), gd(cn, "target"), up, down);
	}
	arr = json_object_object_get(resp, "central");
	if (arr) {
		printf("\nCENTRAL (node %s)\n  shipper %s, %s; local seq %lld, shipped seq %lld, "
		       "lag %lld record(s)\n",
		       gd(arr, "node"), gi(arr, "shipper_running") ? "running" : "not running",
		       gi(arr, "connected") ? "connected" : "NOT CONNECTED",
		       (long long)gi(arr, "local_seq"), (long long)gi(arr, "shipped_seq"),
		       (long long)gi(arr, "lag_records"));
		if (*gs(arr, "last_error"))
			printf("  last error: %s\n", gd(arr, "last_error"));
	}
	json_object_put(resp);
	return 0;
}

static int cmd_simple(const char *cmd, const char *done)
{
	char req[64];
	struct json_object *resp;
	int rc;

	snprintf(req, sizeof(req), "{\"cmd\":\"%s\"}", cmd);
	resp = ctl_call(req);
	rc = ctl_check_ok(resp);
	if (!rc)
		printf("%s%s\n", done, gs(resp, "version"));
	if (resp)
		json_object_put(resp);
	return rc;
}

int main(int argc, char **argv)
{
	int i = 1;

	while (i < argc && argv[i][0] == '-') {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			fputs(usage, stdout);
			return 0;
		}
		if (!strcmp(argv[i], "--control") && i + 1 < argc) {
			g_control = argv[i + 1];
			i += 2;
		} else if (!strncmp(argv[i], "--control=", 10)) {
			g_control = argv[i] + 10;
			i++;
		} else {
			fprintf(stderr, "hoopctl: unknown option '%s'\n\n%s", argv[i], usage);
			return 2;
		}
	}
	if (i >= argc) {
		fputs(usage, stderr);
		return 2;
	}
	argc -= i;
	argv += i;
	optind = 1;
	if (!strcmp(argv[0], "attach"))
		return cmd_attach(argc, argv);
	if (!strcmp(argv[0], "detach"))
		return cmd_detach(argc, argv);
	if (!strcmp(argv[0], "status"))
		return cmd_status(argc, argv);
	if (!strcmp(argv[0], "reload")) {
		int rc = cmd_simple("reload", "policy reloaded");

		if (!rc) {
			/* The engine workers take the new policy from the broker's channel to each
			 * of them, in order: a status round trip through every worker returns after
			 * each has taken it, so that reload returns once the policy is in force. */
			struct json_object *st = ctl_call("{\"cmd\":\"status\"}");

			if (st)
				json_object_put(st);
		}
		return rc;
	}
	if (!strcmp(argv[0], "ping"))
		return cmd_simple("ping", "hoopd answers, version ");
	if (!strcmp(argv[0], "policy"))
		return cmd_policy(argc, argv);
	if (!strcmp(argv[0], "verify"))
		return cmd_verify(argc, argv);
	if (!strcmp(argv[0], "sessions"))
		return cmd_sessions(argc, argv);
	if (!strcmp(argv[0], "replay"))
		return cmd_replay(argc, argv);
	if (!strcmp(argv[0], "export"))
		return cmd_export(argc, argv);
	if (!strcmp(argv[0], "central"))
		return cmd_central(argc, argv);
	if (!strcmp(argv[0], "approvals"))
		return cmd_approvals(argc, argv);
	if (!strcmp(argv[0], "approve") || !strcmp(argv[0], "deny"))
		return cmd_decide(argc, argv);
	if (!strcmp(argv[0], "help")) {
		fputs(usage, stdout);
		return 0;
	}
	fprintf(stderr, "hoopctl: unknown command '%s'\n\n%s", argv[0], usage);
	return 2;
}
