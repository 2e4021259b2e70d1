/*
 * Prometheus text endpoint (--metrics [ADDR:]PORT): GET anything, get every counter.
 *
 * Served by the event loop every agent session shares, so nothing here may wait: sockets are
 * non-blocking, each connection has its own state (request read so far, response left to
 * send), requests are bounded (2 KiB), connections too (METRICS_MAX_CONNS; beyond, new ones
 * are closed at once) and each has METRICS_TIMEOUT_MS to finish or is closed. Loopback only
 * unless --metrics-public says otherwise.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "daemon.h"
#include "bpfctl.h"
#include "control.h"
#include "central_child.h"
#include "log.h"
#include "stmtcache.h"
#include "workers.h"

#define METRICS_MAX_CONNS  16
#define METRICS_TIMEOUT_MS 5000
#define METRICS_REQ_MAX	   2048

struct mconn {
	struct loop_watch w;
	char req[METRICS_REQ_MAX];
	size_t len;
	char *resp; /* once the request is read: what is left to send */
	size_t off, rlen;
	int64_t deadline;
	int expired;
	struct mconn *next;
};

static struct loop_watch g_mw, g_tw = {.fd = -1};
static struct mconn *g_conns;
static int g_nconns;
static uint64_t g_refused, g_timed_out;

static size_t put_metric(char *b, size_t n, const char *name, const char *type, const char *help,
			 uint64_t v)
{
	int r = snprintf(b, n, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type,
			 name, (unsigned long long)v);

	return r < 0 ? 0 : (size_t)r < n ? (size_t)r : n ? n - 1 : 0;
}

/* The whole response (header and body), malloc'd; NULL out of memory. */
static char *render(size_t *len)
{
	char body[12288], hdr[256], *out;
	uint64_t k[HOOP_ERR_MAX] = {0};
	struct stmtcache_stats sc;
	struct hoopd_stats st = hoopd.st;
	struct central_state cs;
	size_t o = 0;
	int hl;

	bpfctl_counters(k);
	stmtcache_stats(&sc);
	workers_add_stats(&st, &sc, NULL); /* the engine workers' counters, as they last said */
#define M(name, type, help, v) o += put_metric(body + o, sizeof(body) - o, name, type, help, v)
	M("hoop_connections_accepted_total", "counter", "Agent connections accepted.",
	  st.conns_accepted);
	M("hoop_connections_active", "gauge", "Agent connections open now.", st.conns_active);
	M("hoop_connections_closed_total", "counter", "Agent connections closed.",
	  st.conns_closed);
	M("hoop_connections_refused_total", "counter",
	  "Accepted connections refused for want of a redirect record.",
	  st.conns_refused_nostash);
	M("hoop_connections_refused_cgroup_limit_total", "counter",
	  "Agent connections refused: their cgroup had limits.connections_per_cgroup open.",
	  st.conns_refused_cgroup);
	M("hoop_connections_cut_mid_message_total", "counter",
	  "Sessions ended because a side hung up in the middle of a message.",
	  st.conns_cut_midmessage);
	M("hoop_statements_refused_size_limit_total", "counter",
	  "Statements refused by limits.statement_bytes, _tokens or _depth.",
	  st.statements_oversized);
	M("hoop_bytes_buffered", "gauge",
	  "Bytes held for sessions: from agents and databases, not yet consumed or delivered.",
	  st.buffered);
	M("hoop_upstream_connect_errors_total", "counter", "Upstream connects that failed.",
	  st.conns_upstream_failed);
	M("hoop_bytes_agent_to_db_total", "counter", "Bytes relayed from agents to databases.",
	  st.bytes_agent_to_db);
	M("hoop_bytes_db_to_agent_total", "counter", "Bytes relayed from databases to agents.",
	  st.bytes_db_to_agent);
	M("hoop_listener_errors_total", "counter", "Listeners that could not be opened.",
	  st.listener_errors);
	M("hoop_policy_reloads_total", "counter", "Policy reloads applied.", st.policy_reloads);
	M("hoop_policy_reload_failures_total", "counter", "Policy reloads refused.",
	  st.policy_reload_failures);
	M("hoop_control_requests_total", "counter", "Control socket requests.",
	  st.control_requests);
	M("hoop_metrics_connections_refused_total", "counter",
	  "Metrics connections closed unanswered: too many open at once.", g_refused);
	M("hoop_metrics_connections_timed_out_total", "counter",
	  "Metrics connections closed unanswered: no complete request in time.", g_timed_out);
	M("hoop_bpf_redirected_total", "counter", "Connects redirected by the kernel.",
	  k[HOOP_ERR_REDIRECTED]);
	M("hoop_bpf_no_listener_total", "counter",
	  "Targeted connects from a namespace without a listener.", k[HOOP_ERR_NO_LISTENER]);
	M("hoop_bpf_fail_open_total", "counter", "Connects let through by --fail-open.",
	  k[HOOP_ERR_FAIL_OPEN]);
	M("hoop_bpf_errors_total", "counter", "BPF-side stash, re-key and sockhash failures.",
	  k[HOOP_ERR_STASH_FULL] + k[HOOP_ERR_REKEY] + k[HOOP_ERR_SOCKHASH]);
	M("hoop_bpf_accel_sends_total", "counter", "hoopd sends short-circuited by sk_msg.",
	  k[HOOP_ERR_ACCEL_HIT]);
	M("hoop_statement_shape_hits_total", "counter",
	  "Statements judged and planned from an earlier statement of the same shape.", sc.hits);
	M("hoop_statement_shape_misses_total", "counter",
	  "Statements with a shape parsed because none was kept (or it was stale).", sc.misses);
	M("hoop_statement_shapes_kept", "gauge", "Statement shapes kept.", sc.entries);
	central_state(&cs);
	if (cs.configured) {
		M("hoop_central_local_seq", "gauge", "The newest record of the local audit trail.",
		  cs.local_seq);
		M("hoop_central_shipped_seq", "gauge",
		  "The newest record of this node in the central database.", cs.shipped_seq);
		M("hoop_central_lag_records", "gauge",
		  "Records of the local audit trail not yet in the central database.",
		  cs.lag_records);
		M("hoop_central_connected", "gauge",
		  "1 while the shipper is connected to the central database.", cs.connected);
		M("hoop_central_shipper_restarts_total", "counter",
		  "Times the central shipper child died and was started again.", cs.restarts);
	}
#undef M
	hl = snprintf(hdr, sizeof(hdr),
		      "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
		      "Content-Length: %zu\r\nConnection: close\r\n\r\n",
		      o);
	out = malloc((size_t)hl + o);
	if (!out)
		return NULL;
	memcpy(out, hdr, (size_t)hl);
	memcpy(out + hl, body, o);
	*len = (size_t)hl + o;
	return out;
}

static char *canned(const char *status, size_t *len)
{
	char *out;

	if (asprintf(&out, "HTTP/1.0 %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
		     status) < 0)
		return NULL;
	*len = strlen(out);
	return out;
}

static void mconn_close(struct mconn *c)
{
	loop_del(&c->w);
	close(c->w.fd);
	for (struct mconn **pp = &g_conns; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	free(c->resp);
	free(c);
	g_nconns--;
	if (!g_nconns && g_tw.fd >= 0) {
		struct itimerspec off = {0};

		timerfd_settime(g_tw.fd, 0, &off, NULL);
	}
}

/* Send what is left; 1 when all of it went (the connection is then closed). */
static int mconn_send(struct mconn *c)
{
	while (c->off < c->rlen) {
		ssize_t n = send(c->w.fd, c->resp + c->off, c->rlen - c->off, MSG_NOSIGNAL);

		if (n > 0) {
			c->off += (size_t)n;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			loop_mod(&c->w, EPOLLOUT);
			return 0;
		}
		break; /* the client left: nothing more to do for it */
	}
	mconn_close(c);
	return 1;
}

static void on_conn(struct loop_watch *w, uint32_t events)
{
	struct mconn *c = container_of(w, struct mconn, w);

	if (c->resp) {
		mconn_send(c);
		return;
	}
	for (;;) {
		ssize_t n = recv(c->w.fd, c->req + c->len, sizeof(c->req) - 1 - c->len, 0);

		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			mconn_close(c);
			return;
		}
		if (n < 0)
			return; /* more later (or the deadline) */
		c->len += (size_t)n;
		c->req[c->len] = '\0';
		if (strstr(c->req, "\r\n\r\n") || strstr(c->req, "\n\n"))
			break;
		if (c->len == sizeof(c->req) - 1) {
			c->resp = canned("431 Request Header Fields Too Large", &c->rlen);
			goto answer;
		}
	}
	if (strncmp(c->req, "GET ", 4))
		c->resp = canned("405 Method Not Allowed", &c->rlen);
	else
		c->resp = render(&c->rlen);
answer:
	if (!c->resp) {
		mconn_close(c);
		return;
	}
	mconn_send(c);
}

static void on_timer(struct loop_watch *w, uint32_t events)
{
	uint64_t ticks;
	int64_t now = now_ms();
	struct mconn *n;

	(void)!read(w->fd, &ticks, sizeof(ticks));
	/* Not closed here: an event for c may wait later in this epoll batch. Shut down, its
	 * own callback sees the end and closes it. */
	for (struct mconn *c = g_conns; c; c = n) {
		n = c->next;
		if (now >= c->deadline && !c->expired) {
			c->expired = 1;
			g_timed_out++;
			shutdown(c->w.fd, SHUT_RDWR);
			loop_mod(&c->w, EPOLLIN);
		}
	}
}

static void on_metrics(struct loop_watch *w, uint32_t events)
{
	/* A bounded batch per wake: the listener stays readable if more wait. */
	for (int i = 0; i < METRICS_MAX_CONNS; i++) {
		int fd = accept4(w->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		struct mconn *c;

		if (fd < 0)
			return;
		if (g_nconns >= METRICS_MAX_CONNS || !(c = calloc(1, sizeof(*c)))) {
			g_refused++;
			close(fd);
			continue;
		}
		c->deadline = now_ms() + METRICS_TIMEOUT_MS;
		if (loop_add(&c->w, fd, EPOLLIN, on_conn)) {
			close(fd);
			free(c);
			continue;
		}
		c->next = g_conns;
		g_conns = c;
		if (!g_nconns++ && g_tw.fd >= 0) {
			struct itimerspec t = {.it_interval = {.tv_sec = 0, .tv_nsec = 500000000},
					       .it_value = {.tv_sec = 0, .tv_nsec = 500000000}};

			timerfd_settime(g_tw.fd, 0, &t, NULL);
		}
		on_conn(&c->w, EPOLLIN); /* the request is often there already */
	}
}

/* --metrics [ADDR:]PORT: ADDR is 127.0.0.1 unless given, and must be a loopback address
 * unless --metrics-public: the counters say how busy each agent cgroup is. */
int metrics_init(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	char host[64] = "127.0.0.1", *end;
	const char *colon, *ps;
	int fd, one = 1;
	long port;

	if (!hoopd.o.metrics_addr)
		return 0;
	colon = strrchr(hoopd.o.metrics_addr, ':');
	ps = colon ? colon + 1 : hoopd.o.metrics_addr;
	if (colon) {
		if ((size_t)(colon - hoopd.o.metrics_addr) >= sizeof(host)) {
			log_error(
			    "--metrics wants [ADDR:]PORT, e.g. 9477 or 127.0.0.1:9477 (got '%s')",
			    hoopd.o.metrics_addr);
			return -EINVAL;
		}
		memcpy(host, hoopd.o.metrics_addr, (size_t)(colon - hoopd.o.metrics_addr));
		host[colon - hoopd.o.metrics_addr] = '\0';
	}
	errno = 0;
	port = strtol(ps, &end, 10);
	if (errno || !*ps || *end || inet_pton(AF_INET, host, &a.sin_addr) != 1 || port < 1 ||
	    port > 65535) {
		log_error("--metrics wants [ADDR:]PORT with an IPv4 ADDR, e.g. 9477 or "
			  "127.0.0.1:9477 (got '%s')",
			  hoopd.o.metrics_addr);
		return -EINVAL;
	}
	if ((ntohl(a.sin_addr.s_addr) >> 24) != 127 && !hoopd.o.metrics_public) {
		log_error("--metrics %s would serve hoopd's counters beyond this host; add "
			  "--metrics-public to mean it (and limit who can reach it), or use "
			  "127.0.0.1",
			  hoopd.o.metrics_addr);
		return -EINVAL;
	}
	a.sin_port = htons((uint16_t)port);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 64)) {
		int e = errno;

		log_error("metrics endpoint %s: %s", hoopd.o.metrics_addr, strerror(e));
		close(fd);
		return -e;
	}
	g_tw.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (g_tw.fd < 0 || loop_add(&g_tw, g_tw.fd, EPOLLIN, on_timer)) {
		int e = errno;

		log_error("metrics endpoint: cannot make its timer: %s", strerror(e));
		close(fd);
		if (g_tw.fd >= 0)
			close(g_tw.fd);
		return -e;
	}
	log_info("metrics on http://%s:%ld/metrics", host, port);
	return loop_add(&g_mw, fd, EPOLLIN, on_metrics);
}
