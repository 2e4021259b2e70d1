/* Prometheus text endpoint (--metrics ADDR:PORT): GET anything, get every counter. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hoopd.h"
#include "log.h"
#include "stmtcache.h"

static struct loop_watch g_mw;

static size_t put_metric(char *b, size_t n, const char *name, const char *type, const char *help,
			 uint64_t v)
{
	return (size_t)snprintf(b, n, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type,
				name, (unsigned long long)v);
}

static void on_metrics(struct loop_watch *w, uint32_t events)
{
	char body[8192], hdr[256], req[2048];
	uint64_t k[HOOP_ERR_MAX] = {0};
	struct stmtcache_stats sc;
	size_t o = 0;
	int fd = accept4(w->fd, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0)
		return;
	{
		struct timeval tv = {.tv_sec = 0, .tv_usec = 200000};

		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	}
	(void)!recv(fd, req, sizeof(req), 0);
	bpfctl_counters(k);
#define M(name, type, help, v) o += put_metric(body + o, sizeof(body) - o, name, type, help, v)
	M("hoop_connections_accepted_total", "counter", "Agent connections accepted.",
	  G.st.conns_accepted);
	M("hoop_connections_active", "gauge", "Agent connections open now.", G.st.conns_active);
	M("hoop_connections_closed_total", "counter", "Agent connections closed.",
	  G.st.conns_closed);
	M("hoop_connections_refused_total", "counter",
	  "Accepted connections refused for want of a redirect record.",
	  G.st.conns_refused_nostash);
	M("hoop_upstream_connect_errors_total", "counter", "Upstream connects that failed.",
	  G.st.conns_upstream_failed);
	M("hoop_bytes_agent_to_db_total", "counter", "Bytes relayed from agents to databases.",
	  G.st.bytes_agent_to_db);
	M("hoop_bytes_db_to_agent_total", "counter", "Bytes relayed from databases to agents.",
	  G.st.bytes_db_to_agent);
	M("hoop_listener_errors_total", "counter", "Listeners that could not be opened.",
	  G.st.listener_errors);
	M("hoop_policy_reloads_total", "counter", "Policy reloads applied.", G.st.policy_reloads);
	M("hoop_policy_reload_failures_total", "counter", "Policy reloads refused.",
	  G.st.policy_reload_failures);
	M("hoop_control_requests_total", "counter", "Control socket requests.",
	  G.st.control_requests);
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
	stmtcache_stats(&sc);
	M("hoop_statement_shape_hits_total", "counter",
	  "Statements judged and planned from an earlier statement of the same shape.", sc.hits);
	M("hoop_statement_shape_misses_total", "counter",
	  "Statements with a shape parsed because none was kept (or it was stale).", sc.misses);
	M("hoop_statement_shapes_kept", "gauge", "Statement shapes kept.", sc.entries);
#undef M
	snprintf(hdr, sizeof(hdr),
		 "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
		 "Content-Length: %zu\r\nConnection: close\r\n\r\n",
		 o);
	(void)!send(fd, hdr, strlen(hdr), MSG_NOSIGNAL);
	(void)!send(fd, body, o, MSG_NOSIGNAL);
	close(fd);
}

int metrics_init(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	char host[64];
	const char *colon;
	int fd, one = 1;
	long port;

	if (!G.o.metrics_addr)
		return 0;
	colon = strrchr(G.o.metrics_addr, ':');
	if (!colon || (size_t)(colon - G.o.metrics_addr) >= sizeof(host)) {
		log_error("--metrics wants ADDR:PORT, e.g. 127.0.0.1:9477 (got '%s')",
			  G.o.metrics_addr);
		return -EINVAL;
	}
	memcpy(host, G.o.metrics_addr, (size_t)(colon - G.o.metrics_addr));
	host[colon - G.o.metrics_addr] = '\0';
	port = strtol(colon + 1, NULL, 10);
	if (inet_pton(AF_INET, host, &a.sin_addr) != 1 || port < 1 || port > 65535) {
		log_error("--metrics wants an IPv4 ADDR:PORT, e.g. 127.0.0.1:9477 (got '%s')",
			  G.o.metrics_addr);
		return -EINVAL;
	}
	a.sin_port = htons((uint16_t)port);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 16)) {
		int e = errno;

		log_error("metrics endpoint %s: %s", G.o.metrics_addr, strerror(e));
		close(fd);
		return -e;
	}
	log_info("metrics on http://%s/metrics", G.o.metrics_addr);
	return loop_add(&g_mw, fd, EPOLLIN, on_metrics);
}
