/*
 * Accepted agent connections: find where the agent meant to go and who it is (the BPF stash),
 * connect upstream from the agent's namespace, and relay bytes both ways with back-pressure:
 * a side is read only while the buffer toward the other side has room. This is the generic TCP
 * relay; protocol engines plug in between the two buffers.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"
#include "hoopd.h"
#include "log.h"

struct half {
	char *buf;
	size_t off, len; /* bytes [off, off+len) wait to be written */
	int eof;	 /* the reading side said EOF */
	int shut;	 /* we passed the EOF on with shutdown(SHUT_WR) */
};

struct conn {
	char session[20];
	char peer[64];	   /* the agent's address as hoopd sees it */
	char dst[64];	   /* the original destination */
	struct listener *ln;
	struct loop_watch aw, uw;
	int afd, ufd;
	int connecting;
	int dead;
	int accel;
	struct half a2u, u2a;
	struct hoop_origin o;
	char exe[256];
	char cgroup[512];
	char owner[256];
	char target[64];
	int64_t started_ms;
	uint64_t bytes_up, bytes_down;
	struct conn *prev, *next;
	struct conn *next_dead;
};

static struct conn *g_conns;
static struct conn *g_dead;
static uint64_t g_session_seq;

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void new_session_id(char *out, size_t n)
{
	if (!g_session_seq) {
		if (getrandom(&g_session_seq, sizeof(g_session_seq), 0) != sizeof(g_session_seq))
			g_session_seq = (uint64_t)now_ms() << 20;
		g_session_seq &= 0x0000ffffffffffffULL;
		g_session_seq |= 1;
	}
	snprintf(out, n, "s%012llx", (unsigned long long)(g_session_seq++ & 0xffffffffffffULL));
}

static void fmt_addr(int family, const uint8_t *addr, uint16_t port_be, char *out, size_t n)
{
	char a[INET6_ADDRSTRLEN] = "?";

	inet_ntop(family == HOOP_AF_INET ? AF_INET : AF_INET6, addr, a, sizeof(a));
	if (family == HOOP_AF_INET)
		snprintf(out, n, "%s:%u", a, ntohs(port_be));
	else
		snprintf(out, n, "[%s]:%u", a, ntohs(port_be));
}

static void conn_kill(struct conn *c, const char *why)
{
	if (c->dead)
		return;
	c->dead = 1;
	if (why)
		hlog_conn(HLOG_INFO, c->session, c->peer,
			  "closed (%s) after %llu bytes up, %llu down", why,
			  (unsigned long long)c->bytes_up, (unsigned long long)c->bytes_down);
	loop_del(&c->aw);
	if (c->ufd >= 0)
		loop_del(&c->uw);
	/* Freed after the current epoll batch: a later event in it may still name c. */
	c->next_dead = g_dead;
	g_dead = c;
	G.st.conns_active--;
	G.st.conns_closed++;
	netns_conn_ref(c->ln, -1);
}

void relay_reap(void)
{
	struct conn *n;

	for (struct conn *c = g_dead; c; c = n) {
		n = c->next_dead;
		close(c->afd);
		if (c->ufd >= 0)
			close(c->ufd);
		if (c->prev)
			c->prev->next = c->next;
		else
			g_conns = c->next;
		if (c->next)
			c->next->prev = c->prev;
		free(c->a2u.buf);
		free(c->u2a.buf);
		free(c);
	}
	g_dead = NULL;
}

/* Move bytes from one socket into a half; 0 = fine, -1 = error. */
static int fill(int fd, struct half *h, uint64_t *count)
{
	if (h->eof)
		return 0;
	if (h->off && h->off + h->len == G.o.relay_buf) {
		memmove(h->buf, h->buf + h->off, h->len);
		h->off = 0;
	}
	while (h->off + h->len < G.o.relay_buf) {
		ssize_t n = recv(fd, h->buf + h->off + h->len, G.o.relay_buf - h->off - h->len, 0);

		if (n > 0) {
			h->len += (size_t)n;
			*count += (uint64_t)n;
			continue;
		}
		if (n == 0) {
			h->eof = 1;
			return 0;
		}
		if (errno == EAGAIN || errno == EINTR)
			return 0;
		return -1;
	}
	return 0;
}

static int drain(int fd, struct half *h)
{
	while (h->len) {
		ssize_t n = send(fd, h->buf + h->off, h->len, MSG_NOSIGNAL);

		if (n > 0) {
			h->off += (size_t)n;
			h->len -= (size_t)n;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return 0;
		return -1;
	}
	h->off = 0;
	if (h->eof && !h->shut) {
		shutdown(fd, SHUT_WR);
		h->shut = 1;
	}
	return 0;
}

static void rearm(struct conn *c)
{
	uint32_t ae = 0, ue = 0;

	if (c->connecting) {
		ue = EPOLLOUT;
	} else {
		if (!c->a2u.eof && c->a2u.len < G.o.relay_buf)
			ae |= EPOLLIN;
		if (!c->u2a.eof && c->u2a.len < G.o.relay_buf)
			ue |= EPOLLIN;
		if (c->a2u.len)
			ue |= EPOLLOUT;
		if (c->u2a.len)
			ae |= EPOLLOUT;
	}
	if (c->connecting && !c->a2u.eof && c->a2u.len < G.o.relay_buf)
		ae |= EPOLLIN;
	loop_mod(&c->aw, ae);
	loop_mod(&c->uw, ue);
	if (c->a2u.shut && c->u2a.shut)
		conn_kill(c, "both sides done");
}

static void conn_fail(struct conn *c, const char *side, int err)
{
	char why[128];

	snprintf(why, sizeof(why), "%s connection: %s", side, strerror(err));
	conn_kill(c, why);
}

static void pump(struct conn *c)
{
	uint64_t up = 0, down = 0;

	if (fill(c->afd, &c->a2u, &up)) {
		conn_fail(c, "agent", errno);
		return;
	}
	c->bytes_up += up;
	G.st.bytes_agent_to_db += up;
	if (!c->connecting) {
		if (fill(c->ufd, &c->u2a, &down)) {
			conn_fail(c, "database", errno);
			return;
		}
		c->bytes_down += down;
		G.st.bytes_db_to_agent += down;
		if (drain(c->ufd, &c->a2u)) {
			conn_fail(c, "database", errno);
			return;
		}
		if (drain(c->afd, &c->u2a)) {
			conn_fail(c, "agent", errno);
			return;
		}
	}
	rearm(c);
}

static void on_agent(struct loop_watch *w, uint32_t events)
{
	struct conn *c = container_of(w, struct conn, aw);

	if (c->dead)
		return;
	pump(c);
}

static void on_upstream(struct loop_watch *w, uint32_t events)
{
	struct conn *c = container_of(w, struct conn, uw);

	if (c->dead)
		return;
	if (c->connecting) {
		int err = 0;
		socklen_t l = sizeof(err);

		getsockopt(c->ufd, SOL_SOCKET, SO_ERROR, &err, &l);
		if (err) {
			hlog_conn(HLOG_WARN, c->session, c->peer, "cannot reach %s: %s", c->dst,
				  strerror(err));
			G.st.conns_upstream_failed++;
			conn_kill(c, "upstream connect failed");
			return;
		}
		c->connecting = 0;
		hlog_conn(HLOG_DEBUG, c->session, c->peer, "connected upstream to %s", c->dst);
	}
	pump(c);
}

static void read_identity(struct conn *c)
{
	char p[64];
	ssize_t n;
	struct attachment *a;

	snprintf(p, sizeof(p), "/proc/%u/exe", c->o.tgid);
	n = readlink(p, c->exe, sizeof(c->exe) - 1);
	c->exe[n > 0 ? n : 0] = '\0';
	if (cg_of_pid((int)c->o.tgid, c->cgroup, sizeof(c->cgroup)))
		c->cgroup[0] = '\0';
	a = attach_find_for_pid((int)c->o.tgid, c->cgroup);
	if (!a)
		a = attach_find_id(c->o.cgroup_id);
	snprintf(c->owner, sizeof(c->owner), "%s", a ? a->owner : "");
	if ((int)c->o.target_id < G.pol->ntargets)
		snprintf(c->target, sizeof(c->target), "%s", G.pol->targets[c->o.target_id].name);
}

void relay_accept(struct listener *ln, int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct hoop_sock_key key = {0};
	struct conn *c;
	int r, one = 1;

	G.st.conns_accepted++;
	if (getpeername(fd, (struct sockaddr *)&ss, &sl)) {
		close(fd);
		return;
	}
	key.netns_cookie = netns_cookie(ln);
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;

		key.family = HOOP_AF_INET;
		memcpy(key.addr, &a->sin_addr, 4);
		key.port = a->sin_port;
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

		if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
			key.family = HOOP_AF_INET;
			memcpy(key.addr, &a->sin6_addr.s6_addr[12], 4);
		} else {
			key.family = HOOP_AF_INET6;
			memcpy(key.addr, &a->sin6_addr, 16);
		}
		key.port = a->sin6_port;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return;
	}
	c->afd = fd;
	c->ufd = -1;
	c->ln = ln;
	c->started_ms = now_ms();
	new_session_id(c->session, sizeof(c->session));
	fmt_addr(key.family, key.addr, key.port, c->peer, sizeof(c->peer));
	if (bpfctl_take_origin(&key, &c->o)) {
		/* Not a connection the kernel redirected (or its stash is gone): we do not know
		 * where it wanted to go, so it goes nowhere. */
		hlog_conn(HLOG_WARN, c->session, c->peer,
			  "no redirect record for this connection in netns %llu; refusing it",
			  (unsigned long long)netns_ino(ln));
		G.st.conns_refused_nostash++;
		close(fd);
		free(c);
		return;
	}
	fmt_addr(c->o.orig_family, c->o.orig_addr, c->o.orig_port, c->dst, sizeof(c->dst));
	read_identity(c);
	c->a2u.buf = malloc(G.o.relay_buf);
	c->u2a.buf = malloc(G.o.relay_buf);
	if (!c->a2u.buf || !c->u2a.buf)
		goto fail;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (G.o.accel == ACCEL_SOCKMAP) {
		/* Before the first byte we send, so all of them take the same path. */
		if ((r = bpfctl_accel_insert(fd)) == 0) {
			c->accel = 1;
			G.st.accel_inserted++;
		} else {
			G.st.accel_insert_failed++;
			hlog_conn(HLOG_DEBUG, c->session, c->peer, "no acceleration: %s",
				  strerror(-r));
		}
	}

	c->ufd = netns_socket(ln, c->o.orig_family == HOOP_AF_INET ? AF_INET : AF_INET6);
	if (c->ufd < 0) {
		hlog_conn(HLOG_ERROR, c->session, c->peer, "upstream socket: %s",
			  strerror(-c->ufd));
		c->ufd = -1;
		goto fail;
	}
	setsockopt(c->ufd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	memset(&ss, 0, sizeof(ss));
	if (c->o.orig_family == HOOP_AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;

		a->sin_family = AF_INET;
		a->sin_port = c->o.orig_port;
		memcpy(&a->sin_addr, c->o.orig_addr, 4);
		sl = sizeof(*a);
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

		a->sin6_family = AF_INET6;
		a->sin6_port = c->o.orig_port;
		memcpy(&a->sin6_addr, c->o.orig_addr, 16);
		sl = sizeof(*a);
	}
	c->connecting = 1;
	if (connect(c->ufd, (struct sockaddr *)&ss, sl) && errno != EINPROGRESS) {
		hlog_conn(HLOG_WARN, c->session, c->peer, "cannot reach %s: %s", c->dst,
			  strerror(errno));
		G.st.conns_upstream_failed++;
		goto fail;
	}
	if (loop_add(&c->aw, c->afd, EPOLLIN, on_agent) ||
	    loop_add(&c->uw, c->ufd, EPOLLOUT, on_upstream)) {
		loop_del(&c->aw);
		goto fail;
	}
	c->next = g_conns;
	if (g_conns)
		g_conns->prev = c;
	g_conns = c;
	G.st.conns_active++;
	netns_conn_ref(ln, 1);
	hlog_conn(HLOG_INFO, c->session, c->peer,
		  "agent pid=%u uid=%u comm=%.16s exe=%s cgroup=%s owner=%s -> %s (target %s)%s",
		  c->o.tgid, c->o.uid, c->o.comm, c->exe[0] ? c->exe : "?", c->cgroup,
		  c->owner[0] ? c->owner : "-", c->dst, c->target, c->accel ? " [accel]" : "");
	return;
fail:
	close(c->afd);
	if (c->ufd >= 0)
		close(c->ufd);
	free(c->a2u.buf);
	free(c->u2a.buf);
	free(c);
}

void relay_status(struct jbuf *j)
{
	jb_key(j, "connections");
	jb_arr_open(j);
	for (struct conn *c = g_conns; c; c = c->next) {
		char comm[17];

		if (c->dead)
			continue;
		memcpy(comm, c->o.comm, 16);
		comm[16] = '\0';
		jb_obj_open(j);
		jb_kv_str(j, "session", c->session);
		jb_kv_int(j, "pid", c->o.tgid);
		jb_kv_int(j, "tid", c->o.pid);
		jb_kv_int(j, "uid", c->o.uid);
		jb_kv_int(j, "gid", c->o.gid);
		jb_kv_str(j, "comm", comm);
		jb_kv_str(j, "exe", c->exe);
		jb_kv_str(j, "cgroup", c->cgroup);
		jb_kv_uint(j, "cgroup_id", c->o.cgroup_id);
		jb_kv_str(j, "owner", c->owner);
		jb_kv_str(j, "agent_addr", c->peer);
		jb_kv_str(j, "destination", c->dst);
		jb_kv_str(j, "target", c->target);
		jb_kv_str(j, "protocol", (int)c->o.target_id < G.pol->ntargets
						 ? policy_protocol_name(
							   G.pol->targets[c->o.target_id].protocol)
						 : "?");
		jb_kv_uint(j, "netns_inode", netns_ino(c->ln));
		jb_kv_bool(j, "accelerated", c->accel);
		jb_kv_bool(j, "connecting", c->connecting);
		jb_kv_uint(j, "bytes_agent_to_db", c->bytes_up);
		jb_kv_uint(j, "bytes_db_to_agent", c->bytes_down);
		jb_kv_int(j, "started_ms", c->started_ms);
		jb_obj_close(j);
	}
	jb_arr_close(j);
}

void relay_close_all(void)
{
	for (struct conn *c = g_conns; c; c = c->next)
		conn_kill(c, NULL);
	relay_reap();
}
