/*
 * An engine worker (`hoopd --worker N <hoopd's options>`, started by the broker: workers.h,
 * docs/architecture.md). It runs sessions the broker hands it: their TLS, protocol engines,
 * verdicts, masking, held statements and records, with no privilege at all.
 *
 * Start-up, before any agent byte: descriptors 3 (control), 4 (audit) and 5 (catalog) are its
 * channels; it loads what it will need while it still may (OpenSSL's configuration, the agent
 * TLS CA from the state directory, the time zone), takes the first policy message (the parsed
 * policy, the masking key, the upstream CAs), then enters its sandbox (kernel/sandbox.h: an
 * unprivileged uid, no capabilities, no_new_privs, a seccomp filter that kills on opening a
 * path, making a socket, connecting, exec, bpf, setns, ptrace...), starts its catalog threads
 * and says it is ready. From then on it opens nothing: later policies come as messages, a
 * catalog loader's socket comes from the broker, notifications go to the broker to run.
 */
#include "workers.h"

#include <errno.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "approvals.h"
#include "audit_ipc.h"
#include "audit_store.h"
#include "catalog_fetch.h"
#include "daemon.h"
#include "fdpass.h"
#include "grants.h"
#include "log.h"
#include "mask_live.h"
#include "policy.h"
#include "record.h"
#include "relay.h"
#include "sandbox.h"
#include "session.h"
#include "stmtcache.h"
#include "tls.h"
#include "verdict.h"
#include "wchan.h"
#include "wire.h"

#define CTL_FD 3
#define AUDIT_FD 4
#define CAT_FD 5
#define CAT_ASK_MS 10000 /* the broker answers a catalog request by then */

static struct wchan g_ctl;
static int g_idx, g_serving, g_stopping;
static struct loop_watch g_syncw;
static pthread_mutex_t g_cat_mu = PTHREAD_MUTEX_INITIALIZER;
static uint32_t g_cat_tokens;

static void send_ctl(uint8_t type, uint32_t token, const void *body, size_t len)
{
	/* Records before the message about them (a session's end before ENDED, a request's
	 * record before HELD), as when each record went at once. */
	audit_remote_flush();
	if (!g_ctl.ended && wchan_send(&g_ctl, type, token, body, len, NULL, 0))
		log_error("engine worker %d: cannot reach the broker", g_idx);
}

/* ---- hooks: what the broker must know ------------------------------------------------- */

static void on_session_end(const struct session *s)
{
	struct wm_ended e = {.bytes_up = s->bytes_up, .bytes_down = s->bytes_down};

	memcpy(e.id, s->id, sizeof(e.id));
	send_ctl(WM_ENDED, 0, &e, sizeof(e));
}

static void on_notify(const char *line, size_t len)
{
	send_ctl(WM_NOTIFY, 0, line, len);
}

static void on_grant(const char *key, const char *owner, int64_t for_ms)
{
	struct wm_grant g = {.for_ms = for_ms};

	snprintf(g.key, sizeof(g.key), "%s", key);
	snprintf(g.owner, sizeof(g.owner), "%s", owner);
	send_ctl(WM_GRANT_MADE, 0, &g, sizeof(g));
}

static void on_held(const char *id, const char *session, const char *rule, int open)
{
	struct wm_held h;

	memset(&h, 0, sizeof(h));
	snprintf(h.id, sizeof(h.id), "%s", id);
	snprintf(h.session, sizeof(h.session), "%s", session);
	snprintf(h.rule, sizeof(h.rule), "%s", rule);
	send_ctl(open ? WM_HELD : WM_UNHELD, 0, &h, sizeof(h));
}

/* A catalog thread's request: the broker spawns the loader, sends it the job and hands back
 * its socket. The channel is the threads' own (blocking, one request at a time). */
static int cat_remote(const struct catalog_remote_req *r, int *fd, char *err, size_t errn)
{
	struct {
		struct wchan_hdr h;
		struct catalog_remote_req q;
	} req;
	struct {
		struct wchan_hdr h;
		struct wm_catfd a;
	} ans;
	int fds[1], nfds = 0, rc = -1;
	int64_t deadline = now_ms() + CAT_ASK_MS;

	memset(&req, 0, sizeof(req));
	memcpy(&req.q, r, sizeof(*r));
	pthread_mutex_lock(&g_cat_mu);
	req.h.type = WM_CATREQ;
	req.h.token = ++g_cat_tokens;
	if (fdpass_send(CAT_FD, &req, sizeof(req.h) + sizeof(req.q), NULL, 0)) {
		snprintf(err, errn, "cannot ask the broker for a catalog loader");
		goto out;
	}
	for (;;) {
		struct pollfd p = {.fd = CAT_FD, .events = POLLIN};
		int64_t left = deadline - now_ms();
		ssize_t n;

		if (left <= 0 || poll(&p, 1, (int)left) <= 0) {
			snprintf(err, errn, "the broker did not answer a catalog request");
			goto out;
		}
		n = fdpass_recv(CAT_FD, &ans, sizeof(ans), fds, 1, &nfds);
		if (n == -EAGAIN)
			continue;
		if (n != (ssize_t)(sizeof(ans.h) + sizeof(ans.a)) || ans.h.type != WM_CATFD ||
		    !memchr(ans.a.error, 0, sizeof(ans.a.error))) {
			for (int i = 0; i < nfds; i++)
				close(fds[i]);
			snprintf(err, errn, "the broker's catalog answer is not one");
			goto out;
		}
		if (ans.h.token != req.h.token) { /* an answer to a request given up on */
			for (int i = 0; i < nfds; i++)
				close(fds[i]);
			continue;
		}
		break;
	}
	if (!ans.a.ok || nfds != 1) {
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
		snprintf(err, errn, "%s", ans.a.error[0] ? ans.a.error : "no catalog loader");
		goto out;
	}
	*fd = fds[0];
	rc = 0;
out:
	pthread_mutex_unlock(&g_cat_mu);
	return rc;
}

/* ---- messages from the broker --------------------------------------------------------- */

static int enter_sandbox(void)
{
	struct sandbox_id id = {.uid = hoopd.o.run_uid, .gid = hoopd.o.run_gid};
	char err[256];
	int r;

	snprintf(id.name, sizeof(id.name), "%s", hoopd.o.user ? hoopd.o.user : "hoop");
	if ((r = sandbox_enter(&id, 0, err, sizeof(err)))) {
		log_error("engine worker %d: cannot enter its sandbox: %s", g_idx, err);
		return -1;
	}
	if ((r = catalog_fetch_init())) {
		log_error("engine worker %d: cannot start the catalog threads: %s", g_idx,
			  strerror(-r));
		return -1;
	}
	return 0;
}

static int take_policy(const uint8_t *body, size_t len)
{
	struct wm_policy h;
	struct policy *np;
	size_t want;
	const uint8_t *ca;
	char err[512];

	if (len < sizeof(h))
		return -1;
	memcpy(&h, body, sizeof(h));
	want = sizeof(h) + sizeof(struct policy);
	for (int i = 0; i < POLICY_MAX_TARGETS; i++)
		want += h.ca_len[i];
	if (h.policy_len != sizeof(struct policy) || len != want) {
		log_error("engine worker %d: a policy message of the wrong size", g_idx);
		return -1;
	}
	if (!(np = malloc(sizeof(*np))))
		return -1;
	memcpy(np, body + sizeof(h), sizeof(*np));
	if (masking_install(&np->masking, h.has_key ? h.key : NULL, err, sizeof(err))) {
		/* the broker loaded it first: this is a worker out of memory */
		log_error("engine worker %d: masking: %s", g_idx, err);
		explicit_bzero(&h, sizeof(h));
		free(np);
		return -1;
	}
	explicit_bzero(h.key, sizeof(h.key));
	policy_free(hoopd.pol);
	hoopd.pol = np;
	hoopd.pol_gen = h.gen;
	tls_policy_changed();
	ca = body + sizeof(h) + sizeof(struct policy);
	for (int i = 0; i < POLICY_MAX_TARGETS; i++) {
		tls_upstream_ca_given(i, (const char *)ca, h.ca_len[i]);
		ca += h.ca_len[i];
	}
	if (!g_serving) {
		if (enter_sandbox())
			exit(1);
		g_serving = 1;
		send_ctl(WM_READY, 0, NULL, 0);
		log_info("engine worker %d serving (pid %d, uid %u), sandboxed", g_idx, (int)getpid(),
			 (unsigned)getuid());
	} else {
		catalog_policy_changed();
	}
	return 0;
}

static int take_decide(uint32_t token, const uint8_t *body, size_t len)
{
	struct wm_decide d;
	struct wm_decided a = {0};
	struct approver who = {0};
	char *reason;
	int r;

	if (len < sizeof(d))
		return -1;
	memcpy(&d, body, sizeof(d));
	d.id[sizeof(d.id) - 1] = d.decision[sizeof(d.decision) - 1] = 0;
	d.scope[sizeof(d.scope) - 1] = d.sha256[sizeof(d.sha256) - 1] = 0;
	d.name[sizeof(d.name) - 1] = 0;
	reason = strndup((const char *)body + sizeof(d), len - sizeof(d));
	if (!reason)
		return -1;
	who.uid = d.uid;
	who.pid = d.pid;
	who.is_approver = d.is_approver;
	who.central = d.central;
	snprintf(who.name, sizeof(who.name), "%s", d.name);
	r = approvals_decide_as(d.id, d.decision, d.has_reason ? reason : NULL,
				d.has_scope ? d.scope : NULL, d.has_sha256 ? d.sha256 : NULL,
				d.for_s, &who, a.error, sizeof(a.error));
	free(reason);
	a.found = r != -ENOENT;
	a.ok = r == 0;
	send_ctl(WM_DECIDED, token, &a, sizeof(a));
	return 0;
}

/* This worker's counters, as the broker sums them. */
static void stats(struct wm_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->st = hoopd.st;
	stmtcache_stats(&st->sc);
	tls_counters_get(&st->tls);
}

static void take_status(uint32_t token)
{
	struct wm_stats st;
	struct jbuf j;
	uint8_t *m;

	stats(&st);
	jb_init(&j);
	relay_status_conns(&j);
	m = j.oom ? NULL : malloc(sizeof(st) + j.len);
	if (m) {
		memcpy(m, &st, sizeof(st));
		memcpy(m + sizeof(st), j.s, j.len);
		send_ctl(WM_STATUS_REPLY, token, m, sizeof(st) + j.len);
		free(m);
	} else {
		log_error("engine worker %d: out of memory for a status", g_idx);
	}
	jb_free(&j);
}

/* The broker said stop: the sessions end once the loop has left this batch of events (freed
 * now, an event later in the batch could still name one). */
static void stop(void)
{
	g_stopping = 1;
	loop_stop();
}

static int on_msg(struct wchan *c, uint8_t type, uint32_t token, const uint8_t *body, size_t len,
		  int *fds, int nfds)
{
	if (type == WM_SESSION) {
		struct wm_session m;

		if (len != sizeof(m) || nfds != 2 || !g_serving) {
			for (int i = 0; i < nfds; i++)
				close(fds[i]);
			log_error("engine worker %d: a session message that is not one", g_idx);
			return -1;
		}
		memcpy(&m, body, sizeof(m));
		if (g_stopping) {
			close(fds[0]);
			close(fds[1]);
			return 0;
		}
		relay_adopt(&m.agent, fds[0], fds[1], m.accel, m.connecting);
		return 0;
	}
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
	switch (type) {
	case WM_POLICY:
		return take_policy(body, len);
	case WM_DECIDE:
		return take_decide(token, body, len);
	case WM_STATUS:
		take_status(token);
		return 0;
	case WM_APPROVALS: {
		struct jbuf j;

		jb_init(&j);
		approvals_list_array(&j);
		if (!j.oom)
			send_ctl(WM_APPROVALS_REPLY, token, j.s, j.len);
		jb_free(&j);
		return 0;
	}
	case WM_GRANT: {
		struct wm_grant g;

		if (len != sizeof(g))
			return -1;
		memcpy(&g, body, sizeof(g));
		g.key[sizeof(g.key) - 1] = g.owner[sizeof(g.owner) - 1] = 0;
		if (grants_add(g.key, g.owner, g.for_ms))
			log_error("engine worker %d: out of memory keeping a grant", g_idx);
		return 0;
	}
	case WM_STOP:
		stop();
		return 0;
	default:
		log_error("engine worker %d: unknown message %u from the broker", g_idx, type);
		return -1;
	}
}

static void on_ctl_end(struct wchan *c, const char *why)
{
	/* The broker is gone: its sessions' sockets go with this process (agents see their
	 * connections close; new ones are refused in the kernel while hoopd is down). */
	log_error("engine worker %d: the broker's channel ended (%s); exiting", g_idx, why);
	_exit(1);
}

static void on_audit_lost(void)
{
	log_error("engine worker %d: the audit channel to the broker is gone; exiting", g_idx);
	_exit(1);
}

static void on_synced(struct loop_watch *w, uint32_t events)
{
	if (audit_sync_done())
		relay_release_synced();
}

static void tick(void)
{
	static int64_t last_stats;
	int64_t t = now_ms();

	if (!g_serving)
		return; /* no policy yet */
	events_flush();
	relay_release_synced();
	audit_sync_start(relay_waiting_sync());
	relay_reap();
	audit_tick();
	approvals_tick();
	catalog_tick();
	if (t - last_stats >= 1000) {
		struct wm_stats st;

		last_stats = t;
		stats(&st);
		send_ctl(WM_STATS, 0, &st, sizeof(st));
	}
	audit_remote_flush(); /* the records of this round, together */
}

int worker_main(int idx)
{
	struct rlimit rl;
	int r;

	g_idx = idx;
	signal(SIGPIPE, SIG_IGN);
	/* A stop is the broker's to run (a service manager signals the whole group): the
	 * worker ends its sessions when the broker says so, and dies with it otherwise. */
	signal(SIGTERM, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	/* What would be opened lazily, opened now: OpenSSL's configuration, the agent TLS CA
	 * (the broker made it), the time zone. */
	OPENSSL_init_ssl(OPENSSL_INIT_LOAD_CONFIG, NULL);
	tzset();
	verdict_hook = policy_verdict;
	approvals_init();
	if (tls_init(hoopd.o.state_dir, hoopd.o.tls_cert, hoopd.o.tls_key, hoopd.o.agent_tls))
		return 1;
	{
		SSL_CTX *warm = SSL_CTX_new(TLS_client_method()); /* loads the providers */

		SSL_CTX_free(warm);
	}
	if ((r = loop_init())) {
		log_error("engine worker %d: %s", idx, strerror(-r));
		return 1;
	}
	if ((r = audit_remote_attach(AUDIT_FD, on_audit_lost)) ||
	    loop_add(&g_syncw, audit_sync_fd(), EPOLLIN, on_synced)) {
		log_error("engine worker %d: the audit channel: %s", idx, strerror(r ? -r : errno));
		return 1;
	}
	relay_on_end = on_session_end;
	approvals_notify_hook = on_notify;
	approvals_grant_hook = on_grant;
	approvals_held_hook = on_held;
	catalog_remote = cat_remote;
	if (wchan_open(&g_ctl, CTL_FD, WCHAN_MSG_MAX, on_msg, on_ctl_end, NULL)) {
		log_error("engine worker %d: the control channel: %s", idx, strerror(errno));
		return 1;
	}
	r = loop_run(1000, tick);
	/* stopping: held statements fail, sessions end; what that wrote (records, ENDED) goes to
	 * the broker, then the channels close */
	approvals_fail_all("hoopd stopped");
	relay_close_all();
	relay_reap();
	catalog_fetch_stop();
	masking_stop();
	events_close();
	for (int64_t until = now_ms() + 1000; g_ctl.q && !g_ctl.ended && now_ms() < until;) {
		struct pollfd p = {.fd = g_ctl.fd, .events = POLLOUT};

		if (poll(&p, 1, 100) < 0 && errno != EINTR)
			break;
		wchan_flush(&g_ctl);
	}
	wchan_close(&g_ctl);
	return r ? 1 : 0;
}
