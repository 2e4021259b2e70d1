/*
 * One loopback listener pair (127.0.0.1 and ::1 on the configured port) per network namespace
 * that holds agents. hoopd enters the namespace with setns(), creates the socket and returns: a
 * socket keeps the namespace it was made in, so one epoll loop serves every namespace.
 *
 * The database leg is dialled from hoopd's own namespace whenever the destination is reachable
 * from there: whatever crosses the agent's namespace, a root agent with CAP_NET_RAW can read or
 * inject. Only destinations that exist in the agent's namespace alone (its loopback, its own
 * addresses, a network only it is routed to) are dialled from inside it (netns_dial_where).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"
#include "daemon.h"
#include "attach.h"
#include "netns.h"
#include "log.h"

struct listener {
	uint64_t ino; /* netns inode: the namespace's identity */
	uint64_t cookie;
	int nsfd; /* -1 for hoopd's own namespace */
	int fd4, fd6;
	struct loop_watch w4, w6;
	int first_pid;
	int nconns; /* relayed connections accepted here and still open */
	int seen;   /* scratch for netns_gc */
	struct listener *next;
};

static struct listener *g_listeners;
static void (*g_on_accept)(struct listener *ln, int fd);

int netns_init(void (*on_accept)(struct listener *ln, int fd))
{
	struct stat st;

	g_on_accept = on_accept;
	hoopd.host_netns_fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (hoopd.host_netns_fd < 0 || fstat(hoopd.host_netns_fd, &st))
		return -errno;
	hoopd.host_netns_ino = st.st_ino;
	return 0;
}

/* socket() inside the namespace nsfd names (-1: hoopd's own). Thread-safe: setns() changes
 * only the calling thread. */
static int socket_in(int nsfd, int family, int type)
{
	int fd, saved;

	if (nsfd >= 0 && setns(nsfd, CLONE_NEWNET))
		return -errno;
	fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	saved = errno;
	if (nsfd >= 0 && setns(hoopd.host_netns_fd, CLONE_NEWNET)) {
		/* Cannot return to our own namespace: every later socket would be wrong. */
		log_error("cannot return to hoopd's network namespace: %s; exiting",
			  strerror(errno));
		abort();
	}
	if (fd < 0)
		return -saved;
	return fd;
}

/* Run socket() inside ln's namespace. */
int netns_socket(struct listener *ln, int family)
{
	return socket_in(ln->nsfd, family, SOCK_STREAM);
}

int netns_socket_dial(struct listener *ln, int family, enum netns_dial where)
{
	return socket_in(where == NETNS_DIAL_AGENT ? ln->nsfd : -1, family, SOCK_STREAM);
}

/* Loopback and unspecified addresses (connect() to 0.0.0.0 or :: reaches the local host) name
 * the namespace the connect runs in. */
static int is_local_only(int family, const uint8_t *a)
{
	static const uint8_t zero[16];

	if (family == AF_INET)
		return a[0] == 127 || !memcmp(a, zero, 4);
	return !memcmp(a, zero, 15) && (a[15] == 1 || a[15] == 0);
}

static void fill_sa(struct sockaddr_storage *ss, socklen_t *sl, int family, const uint8_t *a,
		    uint16_t port_be)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		s4->sin_family = AF_INET;
		s4->sin_port = port_be;
		memcpy(&s4->sin_addr, a, 4);
		*sl = sizeof(*s4);
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = port_be;
		memcpy(&s6->sin6_addr, a, 16);
		*sl = sizeof(*s6);
	}
}

/* Probe a namespace with a UDP socket: is a local address there (bind succeeds), and is there a
 * route to it (connect of a datagram socket does the route lookup and sends nothing)? */
static void probe_in(int nsfd, int family, const uint8_t *a, int *local, int *routed)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int fd = socket_in(nsfd, family, SOCK_DGRAM);

	*local = *routed = 0;
	if (fd < 0)
		return;
	fill_sa(&ss, &sl, family, a, 0);
	*local = bind(fd, (struct sockaddr *)&ss, sl) == 0;
	fill_sa(&ss, &sl, family, a, htons(9));
	*routed = connect(fd, (struct sockaddr *)&ss, sl) == 0;
	close(fd);
}

static enum netns_dial dial_where(int nsfd, int family, const uint8_t *addr)
{
	int alocal, arouted, hlocal, hrouted;

	if (nsfd < 0)
		return NETNS_DIAL_HOOPD; /* the agent shares hoopd's namespace */
	if (is_local_only(family, addr))
		return NETNS_DIAL_AGENT;
	probe_in(nsfd, family, addr, &alocal, &arouted);
	if (alocal)
		return NETNS_DIAL_AGENT; /* the agent's own address: only it has that server */
	probe_in(-1, family, addr, &hlocal, &hrouted);
	/* The agent's routes cannot take a destination away from hoopd: only one hoopd cannot
	 * reach, and the agent can, is dialled from the agent's side. */
	if (!hlocal && !hrouted && arouted)
		return NETNS_DIAL_AGENT;
	return NETNS_DIAL_HOOPD;
}

enum netns_dial netns_dial_where(struct listener *ln, int family, const uint8_t *addr)
{
	return dial_where(ln->nsfd, family, addr);
}

const char *netns_dial_name(enum netns_dial where)
{
	return where == NETNS_DIAL_AGENT ? "agent" : "hoopd";
}

uint64_t netns_cookie(const struct listener *ln)
{
	return ln->cookie;
}

int netns_nsfd(const struct listener *ln)
{
	return ln->nsfd;
}

uint64_t netns_ino(const struct listener *ln)
{
	return ln->ino;
}

static time_t g_paused; /* when listeners stopped polling (out of descriptors), or 0 */

static void pause_listeners(void)
{
	for (struct listener *l = g_listeners; l; l = l->next) {
		loop_mod(&l->w4, 0);
		if (l->fd6 >= 0)
			loop_mod(&l->w6, 0);
	}
	g_paused = time(NULL);
}

/* From the event loop's tick: try again once a second (sessions may have closed). */
void netns_resume(void)
{
	if (!g_paused || time(NULL) - g_paused < 1)
		return;
	g_paused = 0;
	for (struct listener *l = g_listeners; l; l = l->next) {
		loop_mod(&l->w4, EPOLLIN);
		if (l->fd6 >= 0)
			loop_mod(&l->w6, EPOLLIN);
	}
}

static void accept_ready(struct listener *ln, int lfd)
{
	for (int i = 0; i < 64; i++) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				/* Level-triggered: polling on would spin. Agents wait in the
				 * backlog until descriptors free up. */
				log_error("cannot accept agent connections: %s (raise the open-file "
					  "limit: each agent connection takes two); retrying every "
					  "second",
					  strerror(errno));
				pause_listeners();
			} else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
				log_warn("accept on netns %llu: %s", (unsigned long long)ln->ino,
					 strerror(errno));
			}
			return;
		}
		g_on_accept(ln, fd);
	}
}

static void on_accept4(struct loop_watch *w, uint32_t events)
{
	accept_ready(container_of(w, struct listener, w4), w->fd);
}

static void on_accept6(struct loop_watch *w, uint32_t events)
{
	accept_ready(container_of(w, struct listener, w6), w->fd);
}

static int open_listener(struct listener *ln, int family, char *err, size_t errn)
{
	struct sockaddr_storage ss = {0};
	socklen_t sl;
	int fd, one = 1;

	fd = netns_socket(ln, family);
	if (fd < 0) {
		snprintf(err, errn, "socket: %s", strerror(-fd));
		return fd;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;

		a->sin_family = AF_INET;
		a->sin_port = htons(hoopd.o.listen_port);
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sl = sizeof(*a);
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		a->sin6_family = AF_INET6;
		a->sin6_port = htons(hoopd.o.listen_port);
		a->sin6_addr = in6addr_loopback;
		sl = sizeof(*a);
	}
	if (bind(fd, (struct sockaddr *)&ss, sl) || listen(fd, 4096)) {
		int e = errno;

		snprintf(err, errn, "cannot listen on %s:%u in netns %llu: %s%s",
			 family == AF_INET ? "127.0.0.1" : "[::1]", hoopd.o.listen_port,
			 (unsigned long long)ln->ino, strerror(e),
			 e == EADDRNOTAVAIL ? " (is loopback up in that namespace? "
					      "ip link set lo up)"
			 : e == EADDRINUSE ? " (another program holds the port; choose "
					     "another with --listen-port)"
					   : "");
		close(fd);
		return -e;
	}
	return fd;
}

static struct listener *find_ino(uint64_t ino)
{
	for (struct listener *l = g_listeners; l; l = l->next)
		if (l->ino == ino)
			return l;
	return NULL;
}

int netns_ensure_pid(int pid, char *err, size_t errn)
{
	char p[64];
	struct stat st;
	struct listener *ln;
	socklen_t cl = sizeof(uint64_t);
	int nsfd, r;

	snprintf(p, sizeof(p), "/proc/%d/ns/net", pid);
	nsfd = open(p, O_RDONLY | O_CLOEXEC);
	if (nsfd < 0 || fstat(nsfd, &st)) {
		snprintf(err, errn, "%s: %s", p, strerror(errno));
		r = -errno;
		if (nsfd >= 0)
			close(nsfd);
		return r;
	}
	if (find_ino(st.st_ino)) {
		close(nsfd);
		return 0;
	}
	ln = calloc(1, sizeof(*ln));
	if (!ln) {
		close(nsfd);
		return -ENOMEM;
	}
	ln->ino = st.st_ino;
	ln->first_pid = pid;
	ln->fd4 = ln->fd6 = -1;
	ln->w4.fd = ln->w6.fd = -1;
	if (st.st_ino == hoopd.host_netns_ino) {
		close(nsfd);
		ln->nsfd = -1;
	} else {
		ln->nsfd = nsfd;
	}
	ln->fd4 = open_listener(ln, AF_INET, err, errn);
	if (ln->fd4 < 0) {
		r = ln->fd4;
		hoopd.st.listener_errors++;
		goto fail;
	}
	{
		char e6[256];

		ln->fd6 = open_listener(ln, AF_INET6, e6, sizeof(e6));
		if (ln->fd6 < 0)
			log_warn("no IPv6 listener (agents dialling IPv6 targets in this namespace "
				 "get connection refused): %s",
				 e6);
	}
	if (getsockopt(ln->fd4, SOL_SOCKET, SO_NETNS_COOKIE, &ln->cookie, &cl)) {
		r = -errno;
		snprintf(err, errn, "SO_NETNS_COOKIE: %s (kernel 5.14 or later is needed)",
			 strerror(errno));
		goto fail;
	}
	if ((r = loop_add(&ln->w4, ln->fd4, EPOLLIN, on_accept4)))
		goto fail;
	if (ln->fd6 >= 0 && (r = loop_add(&ln->w6, ln->fd6, EPOLLIN, on_accept6)))
		goto fail;
	ln->next = g_listeners;
	g_listeners = ln;
	log_info("listening on 127.0.0.1:%u%s in netns %llu (first seen from pid %d)",
		 hoopd.o.listen_port, ln->fd6 >= 0 ? " and [::1]" : "", (unsigned long long)ln->ino,
		 pid);
	return 0;
fail:
	if (ln->fd4 >= 0)
		close(ln->fd4);
	if (ln->fd6 >= 0)
		close(ln->fd6);
	if (ln->nsfd >= 0)
		close(ln->nsfd);
	free(ln);
	return r;
}

void netns_conn_ref(struct listener *ln, int delta)
{
	ln->nconns += delta;
}

static void listener_free(struct listener *l)
{
	if (l->fd4 >= 0) {
		loop_del(&l->w4);
		close(l->fd4);
	}
	if (l->fd6 >= 0) {
		loop_del(&l->w6);
		close(l->fd6);
	}
	if (l->nsfd >= 0)
		close(l->nsfd);
	free(l);
}

static int mark_pid(int pid, void *arg)
{
	char p[64];
	struct stat st;
	struct listener *l;

	snprintf(p, sizeof(p), "/proc/%d/ns/net", pid);
	if (stat(p, &st) == 0 && (l = find_ino(st.st_ino)))
		l->seen = 1;
	return 0;
}

/*
 * Close listeners in namespaces no attached process uses any more. Our listening socket would
 * otherwise keep a deleted pod's network namespace alive for as long as hoopd runs.
 */
void netns_gc(void)
{
	struct listener **pp = &g_listeners;

	for (struct listener *l = g_listeners; l; l = l->next)
		l->seen = l->nsfd < 0; /* hoopd's own namespace always stays */
	for (struct attachment *a = hoopd.attachments; a; a = a->next)
		cg_for_each_pid(a->path, mark_pid, NULL);
	while (*pp) {
		struct listener *l = *pp;

		if (l->seen || l->nconns) {
			pp = &l->next;
			continue;
		}
		log_info("closing the listener in netns %llu: no attached process uses it any more",
			 (unsigned long long)l->ino);
		*pp = l->next;
		listener_free(l);
	}
}

void netns_close_all(void)
{
	struct listener *n;

	for (struct listener *l = g_listeners; l; l = n) {
		n = l->next;
		listener_free(l);
	}
	g_listeners = NULL;
}

void netns_status(struct jbuf *j)
{
	jb_key(j, "listeners");
	jb_arr_open(j);
	for (struct listener *l = g_listeners; l; l = l->next) {
		jb_obj_open(j);
		jb_kv_uint(j, "netns_inode", l->ino);
		jb_kv_uint(j, "netns_cookie", l->cookie);
		jb_kv_bool(j, "host_netns", l->nsfd < 0);
		jb_kv_int(j, "port", hoopd.o.listen_port);
		jb_kv_bool(j, "ipv6", l->fd6 >= 0);
		jb_kv_int(j, "first_pid", l->first_pid);
		jb_obj_close(j);
	}
	jb_arr_close(j);
}
