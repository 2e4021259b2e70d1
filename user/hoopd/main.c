/* hoopd: command line, start-up order, signals, reload, shut-down. */
#include <errno.h>
#include <getopt.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cgroup.h"
#include "approvals.h"
#include "audit_store.h"
#include "record.h"
#include "tls.h"
#include "verdict.h"
#include "catalog_fetch.h"
#include "catalog_loader.h"
#include "daemon.h"
#include "attach.h"
#include "bpfctl.h"
#include "control.h"
#include "netns.h"
#include "relay.h"
#include "reload.h"
#include "policy.h"
#include "mask_live.h"
#include "log.h"
#include "probe.h"
#include "sandbox.h"
#include "audit_ipc.h"
#include "workers.h"
#include "central_child.h"

struct hoopd hoopd;

static const char usage[] =
	"Usage: hoopd --policy FILE [options]\n"
	"\n"
	"hoopd is hoop's verdict daemon. BPF programs attached to agent cgroups (hoopctl attach)\n"
	"redirect every connection those agents open to a targeted database port into hoopd,\n"
	"which connects on to the address the agent dialled, from the agent's own network\n"
	"namespace, and relays (and, per protocol, judges) what passes.\n"
	"\n"
	"Options:\n"
	"  -p, --policy FILE        policy YAML (targets: which ports and CIDRs are intercepted).\n"
	"                           Reloaded on SIGHUP or `hoopctl reload`; a bad file is refused\n"
	"                           with its line and column and the running policy stays.\n"
	"  -s, --state-dir DIR      state directory: attachment records, the audit trail, the\n"
	"                           masking and audit keys, the agent TLS CA [default /var/lib/hoop]\n"
	"  -c, --control PATH       control socket for hoopctl [default /run/hoop/hoopd.sock];\n"
	"                           mode 0666, each request authorised by the caller's uid:\n"
	"                           root everything, approvers approvals/approve/deny/ping\n"
	"  -m, --metrics [ADDR:]PORT\n"
	"                           serve Prometheus metrics on ADDR (default 127.0.0.1), e.g.\n"
	"                           9477 [default off]. A non-loopback ADDR needs\n"
	"      --metrics-public     as well: anyone who reaches it reads hoopd's counters\n"
	"  -l, --listen-port PORT   port of hoopd's loopback listener (127.0.0.1 and ::1) in every\n"
	"                           agent network namespace [default 15432]\n"
	"      --fail-open          when hoopd is down (stopped, or no heartbeat for 3 s), let\n"
	"                           agents connect directly; never while it runs. Default is fail\n"
	"                           closed: their connects are refused at once.\n"
	"      --accel MODE         sockmap: hoopd's sends to agents skip the loopback TCP stack\n"
	"                           (sk_msg redirect); off: plain loopback TCP [default off]\n"
	"      --pin-root DIR       bpffs directory for pinned maps and links [default "
	"/sys/fs/bpf/hoop]\n"
	"      --keep-pins          keep the pinned maps on exit even with no cgroup attached\n"
	"      --relay-buffer BYTES bytes queued toward one side before hoopd stops reading the\n"
	"                           other [default 262144]\n"
	"      --max-message BYTES  largest protocol message accepted in either direction; a\n"
	"                           larger one ends that session with a protocol error\n"
	"                           [default 67108864]. Before login an agent's messages are\n"
	"                           at most 16384 bytes; statements, connections and buffered\n"
	"                           bytes per agent cgroup by the policy's limits section\n"
	"      --agent-tls on|off   answer agents' SSLRequest and terminate their TLS (on), or\n"
	"                           refuse TLS on the agent leg (off) [default on]\n"
	"      --tls-cert FILE      certificate chain (PEM) hoopd presents to agents; default:\n"
	"                           certificates minted per name by a node CA kept in\n"
	"                           <state-dir>/tls/ca.crt (give agents that file to verify)\n"
	"      --tls-key FILE       the key of --tls-cert [default: the --tls-cert file]\n"
	"  -w, --workers N          engine worker processes that run the sessions (TLS, SQL,\n"
	"                           verdicts, masking), each unprivileged and sandboxed, while\n"
	"                           this process keeps the kernel, the trail and the control\n"
	"                           socket; a lost worker's sessions end (worker_lost) and a new\n"
	"                           one starts. 0: run sessions in this process, privileged\n"
	"                           (debugging only) [default: one per CPU hoopd may run on]\n"
	"  -u, --user NAME          the unprivileged user hoopd's sandboxed processes run as:\n"
	"                           the engine workers and the catalog loader, which reads\n"
	"                           masking catalogs over libpq from servers the agent may have\n"
	"                           picked [default hoop, or nobody where there is no hoop user;\n"
	"                           never root]\n"
	"      --central-dsn-file FILE\n"
	"                           join the fleet's central PostgreSQL (docs/fleet.md): FILE\n"
	"                           holds its DSN (libpq connection string or URI, with the\n"
	"                           password: make it root's, mode 0600). hoopd runs `hoopctl\n"
	"                           central ship` as a child that copies the audit trail there\n"
	"                           and restarts it if it dies; the local trail stays the\n"
	"                           source of truth. The lag is in status and the metrics\n"
	"      --central DSN        the same with the DSN on the command line (tests: everyone\n"
	"                           on the host can read a command line)\n"
	"      --node NAME          this node's name in the central database, which must be the\n"
	"                           name of its login role there [default: the host name]\n"
	"      --hoopctl PATH       the hoopctl that ships [default: the one beside hoopd]\n"
	"      --log-format FMT     text or json [default text]\n"
	"      --log-level LEVEL    debug, info, warn, error [default info]\n"
	"  -V, --version            print the version and exit\n"
	"  -h, --help               this help\n"
	"\n"
	"Signals: SIGHUP reloads the policy; SIGTERM/SIGINT stop hoopd. Attachments survive a\n"
	"stop: agents stay fail-closed until hoopd is back, and need no re-attach.\n"
	"Exit status: 0 on a clean stop, 1 on a start-up error, 2 on a usage error.\n";

static struct loop_watch g_sigw, g_rbw, g_syncw;

/* After every epoll batch: free closed connections; now and then, drop idle namespaces. */
static void tick(void)
{
	static time_t last_gc;
	time_t now = time(NULL);

	events_flush(); /* a result's columns not recorded with its completion */
	/* fsync durability, group commit: the records of this loop round go to disk together
	 * (on the audit's sync thread), then the statements they describe may go. */
	relay_release_synced(); /* those a finished sync covers (or after a reload to flush) */
	audit_serve_tick();
	audit_sync_start(relay_waiting_sync() || audit_serve_waiting());
	workers_tick();
	central_tick();
	relay_reap();
	audit_tick();
	approvals_tick();
	control_tick();
	catalog_tick();
	netns_resume();
	bpfctl_heartbeat(1);
	if (now - last_gc >= 10) {
		last_gc = now;
		netns_gc();
	}
}

/* 10,000 agent connections need 20,000 descriptors: take what the hard limit allows. */
static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl))
			log_warn("cannot raise the open-file limit: %s", strerror(errno));
	}
}

static void on_signal(struct loop_watch *w, uint32_t events)
{
	struct signalfd_siginfo si;
	char err[1024];

	while (read(w->fd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGCHLD) {
			approvals_reap(); /* notification commands (signals coalesce: reap all) */
			workers_reap();
			central_reap();
		} else if (si.ssi_signo == SIGHUP) {
			log_info("SIGHUP: reloading %s", hoopd.o.policy_path);
			hoopd_reload_policy(err, sizeof(err));
		} else {
			log_info("signal %d: stopping", si.ssi_signo);
			loop_stop();
		}
	}
}

static void on_ring(struct loop_watch *w, uint32_t events)
{
	bpfctl_events_poll();
}

static void on_synced(struct loop_watch *w, uint32_t events)
{
	if (audit_sync_done()) {
		relay_release_synced();
		audit_serve_synced(); /* the engine workers' records on disk */
	}
}

/* hoopd's options, one row each: the long name, the short letter (0: none) and how the argument
 * sets hoopd.o (or, for the log and the words of --accel and --agent-tls, a variable main applies).
 * parse_options makes the getopt_long table and the short options from it. */
enum opt_kind {
	OPT_STRING, /* *str = the argument */
	OPT_FLAG,   /* *flag = 1, no argument */
	OPT_NUMBER, /* a decimal in lo..hi, stored by size into num */
	OPT_WORD,   /* one of words[] (NULL-terminated): *flag = its index */
	OPT_EXIT,   /* -V and -h: print and exit 0 */
};

struct hoopd_opt {
	const char *name;
	char letter;
	enum opt_kind kind;
	const char **str;
	int *flag;
	void *num;
	size_t num_size; /* sizeof the number's field */
	long lo, hi;
	const char *const *words;
	const char *wants; /* the usage error's "--NAME wants ..." */
};

static int log_json, log_level = HLOG_INFO, accel, agent_tls = 1;
static const char *const on_off[] = {"off", "on", NULL};
static const char *const accel_words[] = {"off", "sockmap", NULL};
static const char *const log_formats[] = {"text", "json", NULL};
static const char *const log_levels[] = {"debug", "info", "warn", "error", NULL}; /* hlog_level */

#define O_STR(n, l, field) {n, l, OPT_STRING, .str = &hoopd.o.field}
#define O_FLAG(n, field) {n, 0, OPT_FLAG, .flag = &hoopd.o.field}
#define O_NUM(n, l, field, min, max, w) \
	{n, l, OPT_NUMBER, .num = &hoopd.o.field, .num_size = sizeof(hoopd.o.field), .lo = min, .hi = max, \
	 .wants = w}
#define O_WORD(n, var, w, text) {n, 0, OPT_WORD, .flag = &var, .words = w, .wants = text}

static const struct hoopd_opt hoopd_opts[] = {
	O_STR("policy", 'p', policy_path),
	O_STR("state-dir", 's', state_dir),
	O_STR("control", 'c', control_path),
	O_STR("metrics", 'm', metrics_addr),
	O_FLAG("metrics-public", metrics_public),
	O_NUM("listen-port", 'l', listen_port, 1, 65535, "1..65535, got '%s'"),
	O_FLAG("fail-open", fail_open),
	O_WORD("accel", accel, accel_words, "sockmap or off, got '%s'"),
	O_STR("pin-root", 0, pin_root),
	O_FLAG("keep-pins", keep_pins),
	O_NUM("relay-buffer", 0, relay_buf, 4096, 16 << 20, "4096..16777216"),
	O_NUM("max-message", 0, max_message, 4096, 1L << 30, "4096..1073741824"),
	O_WORD("agent-tls", agent_tls, on_off, "on or off"),
	O_STR("tls-cert", 0, tls_cert),
	O_STR("tls-key", 0, tls_key),
	O_STR("user", 'u', user),
	O_NUM("workers", 'w', workers, 0, 64, "0..64, got '%s'"),
	O_STR("central", 0, central_dsn),
	O_STR("central-dsn-file", 0, central_dsn_file),
	O_STR("node", 0, node),
	O_STR("hoopctl", 0, hoopctl),
	O_WORD("log-format", log_json, log_formats, "text or json"),
	O_WORD("log-level", log_level, log_levels, "debug, info, warn or error"),
	{"version", 'V', OPT_EXIT, .str = NULL},
	{"help", 'h', OPT_EXIT, .str = NULL},
};

#define NOPTS (sizeof(hoopd_opts) / sizeof(hoopd_opts[0]))

/* Apply one option's argument. 0, or -EINVAL after saying why on stderr. */
static int set_option(const struct hoopd_opt *o, const char *arg)
{
	char *end;
	long v;

	switch (o->kind) {
	case OPT_STRING:
		*o->str = arg;
		return 0;
	case OPT_FLAG:
		*o->flag = 1;
		return 0;
	case OPT_NUMBER:
		errno = 0;
		v = strtol(arg, &end, 10);
		if (errno || !*arg || *end || v < o->lo || v > o->hi)
			break;
		if (o->num_size == sizeof(uint16_t))
			*(uint16_t *)o->num = (uint16_t)v;
		else if (o->num_size == sizeof(int))
			*(int *)o->num = (int)v;
		else
			*(size_t *)o->num = (size_t)v;
		return 0;
	case OPT_WORD:
		for (int i = 0; o->words[i]; i++)
			if (!strcmp(arg, o->words[i])) {
				*o->flag = i;
				return 0;
			}
		break;
	case OPT_EXIT:
		break;
	}
	fprintf(stderr, "hoopd: --%s wants ", o->name);
	fprintf(stderr, o->wants, arg);
	fputc('\n', stderr);
	return -EINVAL;
}

/* The command line into hoopd.o and the log settings: -1 to go on, else the exit status. */
static int parse_options(int argc, char **argv)
{
	struct option longopts[NOPTS + 1] = {{0}};
	char shortopts[2 * NOPTS + 1], *sp = shortopts;
	int c;

	for (size_t i = 0; i < NOPTS; i++) {
		const struct hoopd_opt *o = &hoopd_opts[i];
		int arg = o->kind == OPT_FLAG || o->kind == OPT_EXIT ? no_argument
								     : required_argument;

		/* getopt_long returns the short letter, or 256 + the row for a long-only option */
		longopts[i] = (struct option){o->name, arg, 0, o->letter ? o->letter : 256 + (int)i};
		if (o->letter) {
			*sp++ = o->letter;
			if (arg == required_argument)
				*sp++ = ':';
		}
	}
	*sp = '\0';
	hoopd.o.state_dir = "/var/lib/hoop";
	hoopd.o.control_path = "/run/hoop/hoopd.sock";
	hoopd.o.pin_root = HOOP_PIN_ROOT;
	hoopd.o.listen_port = 15432;
	hoopd.o.relay_buf = 256 * 1024;
	hoopd.o.max_message = 64 << 20;
	hoopd.o.workers = -1; /* one per CPU, below */
	while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		const struct hoopd_opt *o = NULL;

		if (c == 'V') {
			printf("hoopd %s\n", HOOPD_VERSION);
			return 0;
		}
		if (c == 'h') {
			fputs(usage, stdout);
			return 0;
		}
		if (c >= 256 && c < 256 + (int)NOPTS)
			o = &hoopd_opts[c - 256];
		for (size_t i = 0; !o && i < NOPTS; i++)
			if (hoopd_opts[i].letter && hoopd_opts[i].letter == c)
				o = &hoopd_opts[i];
		if (!o) {
			fputs(usage, stderr);
			return 2;
		}
		if (set_option(o, optarg))
			return 2;
	}
	if (optind < argc) {
		fprintf(stderr, "hoopd: unexpected argument '%s'\n%s", argv[optind], usage);
		return 2;
	}
	if (!hoopd.o.policy_path) {
		fprintf(stderr, "hoopd: --policy FILE is required\n\n%s", usage);
		return 2;
	}
	hoopd.o.accel = accel ? ACCEL_SOCKMAP : ACCEL_OFF;
	hoopd.o.agent_tls = agent_tls;
	if (hoopd.o.workers < 0) {
		cpu_set_t cs;

		hoopd.o.workers = sched_getaffinity(0, sizeof(cs), &cs) ? 1 : CPU_COUNT(&cs);
		if (hoopd.o.workers > 64)
			hoopd.o.workers = 64;
	}
	return -1;
}

/* --user as ids (sandbox_user): the named user, or by default hoop, else nobody. 0, or -1 after
 * saying why. quiet: an engine worker, whose broker has said it already. */
static int resolve_user(int quiet)
{
	struct sandbox_id id;
	char err[256];

	if (hoopd.o.user) {
		if (sandbox_user(hoopd.o.user, &id, err, sizeof(err))) {
			log_error("--user %s: %s", hoopd.o.user, err);
			return -1;
		}
	} else if (sandbox_user("hoop", &id, err, sizeof(err))) {
		if (sandbox_user("nobody", &id, err, sizeof(err))) {
			log_error("no user hoop (nor nobody): name an unprivileged one with --user");
			return -1;
		}
		if (!quiet)
			log_warn("no user 'hoop': engine workers and catalog loaders run as "
				 "'nobody' (create a system user hoop, or name one with --user)");
	}
	hoopd.o.run_uid = id.uid;
	hoopd.o.run_gid = id.gid;
	return 0;
}

int main(int argc, char **argv)
{
	int c, sfd, r, accel_ok;
	char err[1024];
	sigset_t mask;

	/* hoopd's own catalog threads run this, never a person (catalog_loader.c) */
	if (argc >= 2 && !strcmp(argv[1], "--catalog-loader"))
		return catalog_loader_main(argc, argv);
	/* ...and the broker this: `hoopd --worker N <its own options>` (workers.h) */
	if (argc >= 3 && !strcmp(argv[1], "--worker")) {
		int idx = atoi(argv[2]);
		char name[32];

		argv[2] = argv[0];
		if ((c = parse_options(argc - 2, argv + 2)) >= 0)
			return c;
		snprintf(name, sizeof(name), "hoopd-worker%d", idx);
		hlog_setup(strdup(name), log_json, (enum hlog_level)log_level);
		if (resolve_user(1))
			return 1;
		return worker_main(idx);
	}
	if ((c = parse_options(argc, argv)) >= 0)
		return c;
	hlog_setup("hoopd", log_json, (enum hlog_level)log_level);
	if (resolve_user(0))
		return 1;
	workers_answer = ctl_answer;
	workers_status_json = control_status_json;
	verdict_hook = policy_verdict;
	approvals_init();
	signal(SIGPIPE, SIG_IGN);
	raise_nofile();

	if (policy_load(hoopd.o.policy_path, &hoopd.pol, err, sizeof(err))) {
		log_error("%s", err);
		return 1;
	}
	if (mkdir(hoopd.o.state_dir, 0700) && errno != EEXIST) {
		log_error("cannot create state dir %s: %s", hoopd.o.state_dir, strerror(errno));
		return 1;
	}
	{
		struct audit_cfg ac;

		audit_cfg_from(hoopd.pol, &ac);
		if (tls_init(hoopd.o.state_dir, hoopd.o.tls_cert, hoopd.o.tls_key, hoopd.o.agent_tls) ||
		    events_open(hoopd.o.state_dir, &ac))
			return 1;
	}
	if (cg_of_pid(getpid(), hoopd.self_cgroup, sizeof(hoopd.self_cgroup)))
		hoopd.self_cgroup[0] = '\0';
	if ((r = loop_init()) || (r = netns_init(relay_accept))) {
		log_error("start-up: %s", strerror(-r));
		return 1;
	}
	/* Control socket first: it refuses to start a second hoopd before we touch the maps. */
	if (control_init())
		return 1;
	if (probe_kernel(err, sizeof(err), &accel_ok)) {
		log_error("%s", err);
		control_close();
		return 1;
	}
	if (!accel_ok && hoopd.o.accel == ACCEL_SOCKMAP) {
		log_warn("--accel sockmap turned off: %s", err);
		hoopd.o.accel = ACCEL_OFF;
	}
	if ((r = catalog_fetch_init())) {
		log_error("cannot start the catalog reader: %s", strerror(-r));
		control_close();
		return 1;
	}
	if (bpfctl_setup()) {
		control_close();
		return 1;
	}
	if (hoopd_reload_policy(err, sizeof(err)))
		goto fail;
	hoopd.st.policy_reloads = 0;
	if (attach_load())
		goto fail;
	if (metrics_init())
		goto fail;
	if (loop_add(&g_rbw, bpfctl_events_fd(), EPOLLIN, on_ring))
		goto fail;
	if (audit_sync_fd() < 0 || loop_add(&g_syncw, audit_sync_fd(), EPOLLIN, on_synced))
		goto fail;
	if (hoopd.o.workers && workers_start(hoopd.o.workers, argc, argv))
		goto fail;
	if (central_start())
		goto fail;
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGCHLD);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sfd < 0 || loop_add(&g_sigw, sfd, EPOLLIN, on_signal))
		goto fail;
	log_info("hoopd %s ready: policy %s, %d target(s), listen port %u, accel %s, %s, "
		 "control %s",
		 HOOPD_VERSION, hoopd.o.policy_path, hoopd.pol->ntargets, hoopd.o.listen_port,
		 hoopd.o.accel == ACCEL_SOCKMAP ? "sockmap" : "off",
		 hoopd.o.fail_open ? "FAIL-OPEN" : "fail-closed", hoopd.o.control_path);
	r = loop_run(1000, tick);
	central_stop(); /* what it had not shipped it ships after the next start */
	workers_stop(); /* their sessions end and are recorded first */
	approvals_fail_all("hoopd stopped");
	relay_close_all();
	catalog_fetch_stop();
	masking_stop();
	netns_close_all();
	control_close();
	bpfctl_unpin_all_if_idle();
	bpfctl_close();
	events_close();
	tls_fini();
	policy_free(hoopd.pol);
	return r ? 1 : 0;
fail:
	control_close();
	bpfctl_unpin_all_if_idle();
	bpfctl_close();
	return 1;
}
