/* hoopd: command line, start-up order, signals, reload, shut-down. */
#include <errno.h>
#include <getopt.h>
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
#include "audit.h"
#include "events.h"
#include "tls.h"
#include "verdict.h"
#include "catalog_fetch.h"
#include "hoopd.h"
#include "masking.h"
#include "log.h"
#include "probe.h"

struct hoopd G;

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
	"  -s, --state-dir DIR      state directory (attachment records, later the audit trail)\n"
	"                           [default /var/lib/hoop]\n"
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
	"      --log-format FMT     text or json [default text]\n"
	"      --log-level LEVEL    debug, info, warn, error [default info]\n"
	"  -V, --version            print the version and exit\n"
	"  -h, --help               this help\n"
	"\n"
	"Signals: SIGHUP reloads the policy; SIGTERM/SIGINT stop hoopd. Attachments survive a\n"
	"stop: agents stay fail-closed until hoopd is back, and need no re-attach.\n"
	"Exit status: 0 on a clean stop, 1 on a start-up error, 2 on a usage error.\n";

static void audit_cfg_from(const struct policy *pol, struct audit_cfg *ac)
{
	memset(ac, 0, sizeof(*ac));
	ac->durability = pol->audit.durability ? AUDIT_FSYNC : AUDIT_FLUSH;
	ac->checkpoint_every = pol->audit.checkpoint_every;
	ac->segment_bytes = pol->audit.segment_bytes;
	ac->retention_s = pol->audit.retention_s;
	ac->stream = pol->audit.stream[0] ? pol->audit.stream : NULL;
}

int hoopd_reload_policy(char *err, size_t errn)
{
	struct policy *np;
	int r;

	r = policy_load(G.o.policy_path, &np, err, errn);
	if (r) {
		G.st.policy_reload_failures++;
		log_error("policy reload refused, the running policy stays: %s", err);
		return r;
	}
	for (int i = 0; i < np->ntargets; i++)
		for (int p = 0; p < np->targets[i].nports; p++)
			if (np->targets[i].ports[p] == G.o.listen_port) {
				snprintf(err, errn, "%s: target %s uses port %u, hoopd's own listen "
						    "port; refused",
					 G.o.policy_path, np->targets[i].name, G.o.listen_port);
				log_error("policy reload refused: %s", err);
				policy_free(np);
				G.st.policy_reload_failures++;
				return -EINVAL;
			}
	if (mkdir(G.o.state_dir, 0700) && errno != EEXIST) {
		snprintf(err, errn, "cannot create state dir %s: %s", G.o.state_dir, strerror(errno));
		policy_free(np);
		return -errno;
	}
	if ((r = masking_load(np, G.o.state_dir, err, errn))) {
		G.st.policy_reload_failures++;
		log_error("policy reload refused, the running policy stays: %s", err);
		policy_free(np);
		return r;
	}
	if (G.skel && (r = bpfctl_sync_targets(np))) {
		snprintf(err, errn, "cannot update the kernel's target map: %s", strerror(-r));
		policy_free(np);
		G.st.policy_reload_failures++;
		return r;
	}
	policy_free(G.pol);
	G.pol = np;
	G.pol_gen++;
	tls_policy_changed();
	catalog_policy_changed();
	if (G.st.policy_reloads || G.skel) {
		struct audit_cfg ac;

		audit_cfg_from(np, &ac);
		audit_configure(&ac);
	}
	G.st.policy_reloads++;
	log_info("policy %s loaded: %d target(s)", G.o.policy_path, np->ntargets);
	for (int i = 0; i < np->ntargets; i++)
		if (np->targets[i].protocol == HOOP_PROTO_POSTGRES &&
		    np->targets[i].upstream_tls < UPSTREAM_TLS_VERIFY_FULL)
			log_warn("target %s: upstream_tls is not verify-full, so whoever is on the path "
				 "to the database (or impersonates it) can read or change what hoopd "
				 "and the database say to each other",
				 np->targets[i].name);
	return 0;
}

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
	audit_sync_start(relay_waiting_sync());
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
		} else if (si.ssi_signo == SIGHUP) {
			log_info("SIGHUP: reloading %s", G.o.policy_path);
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
	if (audit_sync_done())
		relay_release_synced();
}

static int parse_u(const char *s, long lo, long hi, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || !*s || *end || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"policy", required_argument, 0, 'p'},
		{"state-dir", required_argument, 0, 's'},
		{"control", required_argument, 0, 'c'},
		{"metrics", required_argument, 0, 'm'},
		{"metrics-public", no_argument, 0, 12},
		{"listen-port", required_argument, 0, 'l'},
		{"fail-open", no_argument, 0, 1},
		{"accel", required_argument, 0, 2},
		{"pin-root", required_argument, 0, 3},
		{"keep-pins", no_argument, 0, 4},
		{"relay-buffer", required_argument, 0, 5},
		{"max-message", required_argument, 0, 8},
		{"agent-tls", required_argument, 0, 9},
		{"tls-cert", required_argument, 0, 10},
		{"tls-key", required_argument, 0, 11},
		{"log-format", required_argument, 0, 6},
		{"log-level", required_argument, 0, 7},
		{"version", no_argument, 0, 'V'},
		{"help", no_argument, 0, 'h'},
		{0},
	};
	enum hlog_level lvl = HLOG_INFO;
	int json = 0, c, sfd, r, accel_ok;
	char err[1024];
	sigset_t mask;
	long v;

	G.o.state_dir = "/var/lib/hoop";
	G.o.control_path = "/run/hoop/hoopd.sock";
	G.o.pin_root = HOOP_PIN_ROOT;
	G.o.listen_port = 15432;
	G.o.relay_buf = 256 * 1024;
	G.o.max_message = 64 << 20;
	G.o.agent_tls = 1;
	while ((c = getopt_long(argc, argv, "p:s:c:m:l:Vh", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			G.o.policy_path = optarg;
			break;
		case 's':
			G.o.state_dir = optarg;
			break;
		case 'c':
			G.o.control_path = optarg;
			break;
		case 'm':
			G.o.metrics_addr = optarg;
			break;
		case 'l':
			if (parse_u(optarg, 1, 65535, &v)) {
				fprintf(stderr, "hoopd: --listen-port wants 1..65535, got '%s'\n",
					optarg);
				return 2;
			}
			G.o.listen_port = (uint16_t)v;
			break;
		case 1:
			G.o.fail_open = 1;
			break;
		case 2:
			if (!strcmp(optarg, "sockmap"))
				G.o.accel = ACCEL_SOCKMAP;
			else if (!strcmp(optarg, "off"))
				G.o.accel = ACCEL_OFF;
			else {
				fprintf(stderr, "hoopd: --accel wants sockmap or off, got '%s'\n",
					optarg);
				return 2;
			}
			break;
		case 3:
			G.o.pin_root = optarg;
			break;
		case 4:
			G.o.keep_pins = 1;
			break;
		case 5:
			if (parse_u(optarg, 4096, 16 << 20, &v)) {
				fprintf(stderr, "hoopd: --relay-buffer wants 4096..16777216\n");
				return 2;
			}
			G.o.relay_buf = (size_t)v;
			break;
		case 6:
			if (!strcmp(optarg, "json"))
				json = 1;
			else if (strcmp(optarg, "text")) {
				fprintf(stderr, "hoopd: --log-format wants text or json\n");
				return 2;
			}
			break;
		case 7:
			if (hlog_parse_level(optarg, &lvl)) {
				fprintf(stderr, "hoopd: --log-level wants debug, info, warn or error\n");
				return 2;
			}
			break;
		case 8:
			if (parse_u(optarg, 4096, 1L << 30, &v)) {
				fprintf(stderr, "hoopd: --max-message wants 4096..1073741824\n");
				return 2;
			}
			G.o.max_message = (size_t)v;
			break;
		case 9:
			if (strcmp(optarg, "on") && strcmp(optarg, "off")) {
				fprintf(stderr, "hoopd: --agent-tls wants on or off\n");
				return 2;
			}
			G.o.agent_tls = !strcmp(optarg, "on");
			break;
		case 10:
			G.o.tls_cert = optarg;
			break;
		case 12:
			G.o.metrics_public = 1;
			break;
		case 11:
			G.o.tls_key = optarg;
			break;
		case 'V':
			printf("hoopd %s\n", HOOPD_VERSION);
			return 0;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			fputs(usage, stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "hoopd: unexpected argument '%s'\n%s", argv[optind], usage);
		return 2;
	}
	if (!G.o.policy_path) {
		fprintf(stderr, "hoopd: --policy FILE is required\n\n%s", usage);
		return 2;
	}
	hlog_setup("hoopd", json, lvl);
	verdict_hook = policy_verdict;
	approvals_init();
	signal(SIGPIPE, SIG_IGN);
	raise_nofile();

	if (policy_load(G.o.policy_path, &G.pol, err, sizeof(err))) {
		log_error("%s", err);
		return 1;
	}
	if (mkdir(G.o.state_dir, 0700) && errno != EEXIST) {
		log_error("cannot create state dir %s: %s", G.o.state_dir, strerror(errno));
		return 1;
	}
	{
		struct audit_cfg ac;

		audit_cfg_from(G.pol, &ac);
		if (tls_init(G.o.state_dir, G.o.tls_cert, G.o.tls_key, G.o.agent_tls) ||
		    events_open(G.o.state_dir, &ac))
			return 1;
	}
	if (cg_of_pid(getpid(), G.self_cgroup, sizeof(G.self_cgroup)))
		G.self_cgroup[0] = '\0';
	if ((r = loop_init()) || (r = netns_init())) {
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
	if (!accel_ok && G.o.accel == ACCEL_SOCKMAP) {
		log_warn("--accel sockmap turned off: %s", err);
		G.o.accel = ACCEL_OFF;
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
	G.st.policy_reloads = 0;
	if (attach_load())
		goto fail;
	if (metrics_init())
		goto fail;
	if (loop_add(&g_rbw, bpfctl_events_fd(), EPOLLIN, on_ring))
		goto fail;
	if (audit_sync_fd() < 0 || loop_add(&g_syncw, audit_sync_fd(), EPOLLIN, on_synced))
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
		 HOOPD_VERSION, G.o.policy_path, G.pol->ntargets, G.o.listen_port,
		 G.o.accel == ACCEL_SOCKMAP ? "sockmap" : "off",
		 G.o.fail_open ? "FAIL-OPEN" : "fail-closed", G.o.control_path);
	r = loop_run(1000, tick);
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
	policy_free(G.pol);
	return r ? 1 : 0;
fail:
	control_close();
	bpfctl_unpin_all_if_idle();
	bpfctl_close();
	return 1;
}
