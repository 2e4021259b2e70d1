/*
 * The central shipper child: hoopd's broker runs `hoopctl central ship` (the hoopctl beside
 * hoopd's executable, or --hoopctl PATH), restarts it when it dies (after 1 s, doubling up to
 * 60 s while it keeps dying within a minute of its start), stops it when hoopd stops, and reads
 * its progress file for status and metrics (central_child.h). The DSN goes to the child by the
 * file named with --central-dsn-file (read by the child, at each start: a rotated password is
 * picked up) or, for --central DSN, in its environment (HOOP_CENTRAL_DSN: /proc/PID/environ is
 * its owner's only; a command line is everyone's).
 */
#include "central_child.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "audit_store.h"
#include "daemon.h"
#include "nodename.h"
#include "json.h"
#include "log.h"

#define RESPAWN_MIN_MS 1000
#define RESPAWN_MAX_MS 60000
#define YOUNG_MS       60000
#define STOP_WAIT_MS   3000
#define STATUS_MAX     4096

extern char **environ;

static pid_t g_pid;
static int g_configured;
static int64_t g_started_ms, g_respawn_at, g_backoff = RESPAWN_MIN_MS;
static uint64_t g_restarts;
static char g_hoopctl[PATH_MAX], g_node[64];
static char *g_argv[16];
static char **g_envp;

/* hoopctl beside /proc/self/exe. 0, or -1. */
static int find_hoopctl(void)
{
	char exe[PATH_MAX];
	ssize_t n;
	char *slash;

	if (hoopd.o.hoopctl) {
		snprintf(g_hoopctl, sizeof(g_hoopctl), "%s", hoopd.o.hoopctl);
		return 0;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return -1;
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (!slash)
		return -1;
	*slash = '\0';
	snprintf(g_hoopctl, sizeof(g_hoopctl), "%s/hoopctl", exe);
	return 0;
}

/* The child's environment: hoopd's, with HOOP_CENTRAL_DSN for --central. */
static int make_env(void)
{
	size_t n = 0, k = 0;
	static char *dsn_var;

	while (environ[n])
		n++;
	g_envp = calloc(n + 2, sizeof(*g_envp));
	if (!g_envp)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "HOOP_CENTRAL_DSN=", 17))
			g_envp[k++] = environ[i];
	if (hoopd.o.central_dsn) {
		if (asprintf(&dsn_var, "HOOP_CENTRAL_DSN=%s", hoopd.o.central_dsn) < 0)
			return -1;
		g_envp[k++] = dsn_var;
	}
	g_envp[k] = NULL;
	return 0;
}

static void spawn(void)
{
	sigset_t none;
	pid_t pid;

	sigemptyset(&none);
	pid = fork();
	if (pid < 0) {
		log_error("central shipper: fork: %s", strerror(errno));
		g_respawn_at = now_ms() + g_backoff;
		return;
	}
	if (pid == 0) {
		/* async-signal-safe calls only: hoopd has threads */
		sigprocmask(SIG_SETMASK, &none, NULL);
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (close_range(3, ~0U, 0))
			for (int fd = 3; fd < 65536; fd++)
				close(fd);
		execve(g_hoopctl, g_argv, g_envp);
		_exit(127);
	}
	g_pid = pid;
	g_started_ms = now_ms();
	log_info("central shipper started (pid %d): %s central ship --node %s", (int)pid, g_hoopctl,
		 g_node);
}

int central_start(void)
{
	int k = 0;
	struct stat st;

	if (hoopd.o.central_dsn && hoopd.o.central_dsn_file) {
		log_error("--central and --central-dsn-file: give one");
		return -1;
	}
	if (!hoopd.o.central_dsn && !hoopd.o.central_dsn_file)
		return 0;
	if (hoopd.o.node)
		snprintf(g_node, sizeof(g_node), "%s", hoopd.o.node);
	else if (gethostname(g_node, sizeof(g_node) - 1))
		g_node[0] = '\0';
	if (!node_name_ok(g_node)) {
		log_error("node name '%s' (--node, default the host name) must be 1 to 63 of "
			  "A-Z a-z 0-9 . _ -: it is the login role of this node in the central "
			  "database",
			  g_node);
		return -1;
	}
	if (find_hoopctl() || access(g_hoopctl, X_OK)) {
		log_error("central shipper: cannot run %s: %s (it runs `hoopctl central ship`: put "
			  "hoopctl beside hoopd, or name it with --hoopctl PATH)",
			  g_hoopctl[0] ? g_hoopctl : "hoopctl", strerror(errno));
		return -1;
	}
	if (hoopd.o.central_dsn_file) {
		if (stat(hoopd.o.central_dsn_file, &st) || !S_ISREG(st.st_mode)) {
			log_error("--central-dsn-file %s: %s", hoopd.o.central_dsn_file,
				  errno ? strerror(errno) : "not a regular file");
			return -1;
		}
		if (st.st_mode & 077)
			log_warn("--central-dsn-file %s is mode %04o: it holds the central "
				 "database's password, make it readable by root only (chmod 0600)",
				 hoopd.o.central_dsn_file, (unsigned)(st.st_mode & 07777));
	}
	if (make_env())
		return -1;
	g_argv[k++] = g_hoopctl;
	/* the shipper also relays approvals both ways, over this hoopd's control socket */
	g_argv[k++] = "--control";
	g_argv[k++] = (char *)hoopd.o.control_path;
	g_argv[k++] = "central";
	g_argv[k++] = "ship";
	g_argv[k++] = "--state-dir";
	g_argv[k++] = (char *)hoopd.o.state_dir;
	g_argv[k++] = "--node";
	g_argv[k++] = g_node;
	if (hoopd.o.central_dsn_file) {
		g_argv[k++] = "--dsn-file";
		g_argv[k++] = (char *)hoopd.o.central_dsn_file;
	}
	g_argv[k] = NULL;
	g_configured = 1;
	spawn();
	return 0;
}

void central_reap(void)
{
	int st;
	int64_t lived;

	if (g_pid <= 0 || waitpid(g_pid, &st, WNOHANG) != g_pid)
		return;
	lived = now_ms() - g_started_ms;
	g_pid = 0;
	g_restarts++;
	if (lived >= YOUNG_MS)
		g_backoff = RESPAWN_MIN_MS;
	if (WIFSIGNALED(st))
		log_warn("central shipper killed by signal %d; starting it again in %lld ms",
			 WTERMSIG(st), (long long)g_backoff);
	else
		log_warn("central shipper exited with status %d%s; starting it again in %lld ms",
			 WEXITSTATUS(st), WEXITSTATUS(st) == 127 ? " (could not be executed)" : "",
			 (long long)g_backoff);
	g_respawn_at = now_ms() + g_backoff;
	g_backoff = g_backoff * 2 > RESPAWN_MAX_MS ? RESPAWN_MAX_MS : g_backoff * 2;
}

void central_tick(void)
{
	if (g_configured && g_pid <= 0 && now_ms() >= g_respawn_at)
		spawn();
}

void central_stop(void)
{
	int64_t deadline = now_ms() + STOP_WAIT_MS;

	if (g_pid <= 0)
		return;
	kill(g_pid, SIGTERM);
	while (waitpid(g_pid, NULL, WNOHANG) == 0) {
		struct timespec ts = {0, 20 * 1000000L};

		if (now_ms() >= deadline) {
			log_warn("central shipper (pid %d) did not stop in %d ms: killed",
				 (int)g_pid, STOP_WAIT_MS);
			kill(g_pid, SIGKILL);
			waitpid(g_pid, NULL, 0);
			break;
		}
		nanosleep(&ts, NULL);
	}
	g_pid = 0;
	g_configured = 0;
	free(g_envp);
	g_envp = NULL;
}

void central_state(struct central_state *cs)
{
	char path[4200], buf[STATUS_MAX + 1];
	struct json_object *o = NULL, *v;
	ssize_t n = -1;
	int fd;

	memset(cs, 0, sizeof(*cs));
	if (!g_configured)
		return;
	cs->configured = 1;
	cs->running = g_pid > 0;
	cs->restarts = g_restarts;
	cs->local_seq = audit_last_seq();
	snprintf(cs->node, sizeof(cs->node), "%s", g_node);
	snprintf(path, sizeof(path), "%s/central-shipped", hoopd.o.state_dir);
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, buf, STATUS_MAX);
		close(fd);
	}
	if (n > 0) {
		buf[n] = '\0';
		o = json_tokener_parse(buf);
	}
	if (o && json_object_is_type(o, json_type_object)) {
		if (json_object_object_get_ex(o, "shipped_seq", &v))
			cs->shipped_seq = (uint64_t)json_object_get_int64(v);
		if (json_object_object_get_ex(o, "connected", &v))
			cs->connected = json_object_get_boolean(v);
		if (json_object_object_get_ex(o, "last_error", &v))
			snprintf(cs->last_error, sizeof(cs->last_error), "%s",
				 json_object_get_string(v));
		if (json_object_object_get_ex(o, "updated", &v))
			snprintf(cs->updated, sizeof(cs->updated), "%s", json_object_get_string(v));
	} else {
		snprintf(cs->last_error, sizeof(cs->last_error), "%s",
			 "the shipper has not reported yet");
	}
	json_object_put(o);
	/* hoopd's own last seq is the truth about the local trail (the shipper's local_seq
	 * lags behind it between its looks) */
	cs->lag_records = cs->local_seq > cs->shipped_seq ? cs->local_seq - cs->shipped_seq : 0;
}

void central_status_json(struct jbuf *j)
{
	struct central_state cs;

	central_state(&cs);
	if (!cs.configured)
		return;
	jb_key(j, "central");
	jb_obj_open(j);
	jb_kv_str(j, "node", cs.node);
	jb_kv_bool(j, "shipper_running", cs.running);
	jb_kv_int(j, "shipper_pid", g_pid);
	jb_kv_uint(j, "shipper_restarts", cs.restarts);
	jb_kv_bool(j, "connected", cs.connected);
	jb_kv_uint(j, "local_seq", cs.local_seq);
	jb_kv_uint(j, "shipped_seq", cs.shipped_seq);
	jb_kv_uint(j, "lag_records", cs.lag_records);
	jb_kv_str(j, "last_error", cs.last_error);
	jb_kv_str(j, "updated", cs.updated);
	jb_obj_close(j);
}
