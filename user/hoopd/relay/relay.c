/*
 * Accepted agent connections: find where the agent meant to go and who it is (the BPF stash,
 * identity.c), connect upstream (from hoopd's namespace unless the destination exists only in
 * the agent's: netns.c), and move bytes through the target's protocol engine (engines.c) with
 * back-pressure: a side is read only while the engine keeps up and what waits for the other
 * side stays under the high-water mark. Bytes for the database wait for the records that
 * describe them to be durable (barrier.h). Owns sockets and TLS; engines see buffers. Writes
 * every session's session_start (at accept, or at the engine's login) and session_end, so that
 * every target's sessions are in the trail.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "barrier.h"
#include "engine.h"
#include "record.h"
#include "daemon.h"
#include "bpfctl.h"
#include "netns.h"
#include "relay.h"
#include "policy.h"
#include "identity.h"
#include "log.h"
#include "tls.h"

#define READ_CHUNK (64 * 1024)

/* When the other sessions of its cgroup (or of hoopd) hold their budget of unfinished
 * messages, a session still reads up to this much: small statements keep flowing, a large
 * message waits for room. */
#define BUDGET_FLOOR READ_CHUNK

/*
 * What one attached agent cgroup holds (issue 14 point 10), its descendants included: its open
 * sessions, capped by limits.connections_per_cgroup, and the bytes its sessions hold (from the
 * agents and from their databases, not yet consumed or delivered), capped by
 * limits.cgroup_buffer_bytes (all sessions together: limits.buffer_bytes). Keyed on the
 * attachment (session.cap_cgid), not the leaf: an agent that may create child cgroups would
 * otherwise get a fresh budget in each.
 */
struct cg_use {
	uint64_t id;
	unsigned conns;
	size_t buffered;
	struct cg_use *next;
};
static struct cg_use *g_cgs;

static struct session *g_sessions;
static struct session *g_dead;
/* Sessions whose engine yielded with work left (s->more), and the eventfd that makes the loop
 * come back for them at once, after the events already waiting (one agent's pipeline of
 * costly statements cannot keep the loop from the others). */
static struct session *g_yield;
static int g_kick_fd = -1;
static struct loop_watch g_kick_w;
/* Sessions that stopped reading their agent for want of buffer budget (agent_cap), and
 * whether budget has been freed since: they are looked at again from on_kick. */
static int g_starved, g_budget_freed;

static int kick(void);
static int g_waiting; /* sessions whose bytes wait for their records to be durable */

static struct cg_use *cg_use_get(uint64_t id)
{
	struct cg_use *c;

	for (c = g_cgs; c; c = c->next)
		if (c->id == id)
			return c;
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->id = id;
	c->next = g_cgs;
	g_cgs = c;
	return c;
}

static void cg_use_put(struct cg_use *c)
{
	if (c->conns || c->buffered)
		return;
	for (struct cg_use **pp = &g_cgs; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			free(c);
			return;
		}
}

/* Bring the cgroup's and hoopd's count of buffered bytes up to date with what s holds: from
 * the agent and from its database, not yet consumed or not yet delivered (a result the agent
 * asked for and does not read counts too). */
static void account(struct session *s)
{
	size_t now = s->dead ? 0 : s->a.in.len + s->s.in.len + s->a.out.len + s->s.out.len;

	if (!s->cgu || now == s->counted)
		return;
	s->cgu->buffered += now - s->counted; /* modular: a decrease works too */
	hoopd.st.buffered += now - s->counted;
	if (now < s->counted && g_starved && !g_budget_freed) {
		g_budget_freed = 1; /* starved sessions look again, once per loop round */
		kick();
	}
	s->counted = now;
}

static const struct policy_limits *relay_limits(void)
{
	static const struct policy_limits dflt = {
		.connections_per_cgroup = LIMITS_CONNECTIONS_PER_CGROUP,
		.cgroup_buffer_bytes = LIMITS_CGROUP_BUFFER_BYTES,
		.buffer_bytes = LIMITS_BUFFER_BYTES,
	};

	return hoopd.pol ? &hoopd.pol->limits : &dflt;
}

/* How many unconsumed bytes of side d hoopd may hold for this session now. */
static size_t side_cap(struct session *s, struct side *d)
{
	const struct policy_limits *l = relay_limits();
	size_t cap = hoopd.o.max_message + READ_CHUNK, e;

	if (d == &s->a && s->eng && s->eng->agent_cap && s->est &&
	    (e = s->eng->agent_cap(s->est)) && e < cap)
		cap = e;
	/* The budgets count the other sessions' bytes: a session alone can always finish a
	 * message up to --max-message, and a cgroup holds at most its budget plus one such. */
	if (cap > BUDGET_FLOOR &&
	    ((s->cgu && s->cgu->buffered - s->counted >= l->cgroup_buffer_bytes) ||
	     hoopd.st.buffered - s->counted >= l->buffer_bytes)) {
		cap = d->in.len > BUDGET_FLOOR ? d->in.len : BUDGET_FLOOR;
		if (!s->starved && d->in.len >= cap) {
			s->starved = 1;
			g_starved++;
		}
	}
	return cap;
}

static void side_free(struct side *d)
{
	if (d->ssl)
		SSL_free(d->ssl);
	if (d->fd >= 0)
		close(d->fd);
	buf_free(&d->in);
	buf_free(&d->out);
}

static void unyield(struct session *s)
{
	if (!s->yielded)
		return;
	for (struct session **pp = &g_yield; *pp; pp = &(*pp)->next_yield)
		if (*pp == s) {
			*pp = s->next_yield;
			break;
		}
	s->yielded = 0;
}

/* The engine closes; then the session's session_end goes on record (for every session whose
 * session_start did), with what the engine adds: records it writes as it closes (an approval
 * forgotten) come before it. */
static void record_end(struct session *s, const char *why)
{
	struct ev_session_end e = {.reason = why,
				   .bytes_agent_to_db = s->bytes_up,
				   .bytes_db_to_agent = s->bytes_down,
				   .duration_ms = now_ms() - s->started_ms};

	if (s->eng && s->est) {
		if (s->recorded && s->eng->end_info)
			s->eng->end_info(s->est, &e);
		s->eng->close(s->est, why);
	}
	s->est = NULL;
	if (s->recorded)
		ev_session_end(sess_agent(s), &e);
}

static void sess_kill(struct session *s, const char *why)
{
	if (s->dead)
		return;
	s->dead = 1;
	unyield(s);
	if (s->starved)
		g_starved--;
	s->starved = 0;
	if (s->wait_sync)
		g_waiting--;
	s->wait_sync = 0;
	if (why)
		hlog_conn(HLOG_INFO, s->id, s->peer, "closed (%s) after %llu bytes up, %llu down", why,
			  (unsigned long long)s->bytes_up, (unsigned long long)s->bytes_down);
	catalog_unwait(&s->cat_wait);
	record_end(s, why ? why : "hoopd stopping");
	account(s); /* dead: to zero */
	if (s->cgu) {
		s->cgu->conns--;
		cg_use_put(s->cgu);
		s->cgu = NULL;
	}
	loop_del(&s->a.w);
	if (s->s.fd >= 0)
		loop_del(&s->s.w);
	/* Freed after the current epoll batch: a later event in it may still name s. */
	s->next_dead = g_dead;
	g_dead = s;
	hoopd.st.conns_active--;
	hoopd.st.conns_closed++;
	if (s->ln)
		netns_conn_ref(s->ln, -1);
	if (relay_on_end)
		relay_on_end(s);
}

void relay_reap(void)
{
	struct session *n;

	for (struct session *s = g_dead; s; s = n) {
		n = s->next_dead;
		side_free(&s->a);
		side_free(&s->s);
		if (s->prev)
			s->prev->next = s->next;
		else
			g_sessions = s->next;
		if (s->next)
			s->next->prev = s->prev;
		free(s);
	}
	g_dead = NULL;
}

void sess_close(struct session *s, const char *why)
{
	if (!s->closing) {
		s->closing = 1;
		/* Said in the close line, once the agent has its last message. */
		snprintf(s->close_why, sizeof(s->close_why), "%s", why);
	}
}

void sess_hold(struct session *s)
{
	s->held = 1;
}

static void pump(struct session *s);

static void on_kick(struct loop_watch *w, uint32_t events)
{
	uint64_t v;
	struct session *l, *n;

	(void)!read(w->fd, &v, sizeof(v));
	if (g_budget_freed) {
		/* Budget was freed: starved sessions go on the yield list to read again (and
		 * starve again in agent_cap if it is still short). */
		g_budget_freed = 0;
		for (struct session *s = g_sessions; s && g_starved; s = s->next)
			if (s->starved && !s->dead) {
				s->starved = 0;
				g_starved--;
				s->a.readable = s->s.readable = 1;
				if (!s->yielded) {
					s->yielded = 1;
					s->next_yield = g_yield;
					g_yield = s;
				}
			}
	}
	l = g_yield;
	g_yield = NULL;
	for (struct session *s = l; s; s = n) {
		n = s->next_yield;
		s->yielded = 0;
	}
	/* pump may kill a session (unyield finds it on no list now) or yield it again (onto
	 * the fresh list): walk the old one by the links saved before. */
	for (struct session *s = l; s; s = n) {
		n = s->next_yield;
		s->next_yield = NULL;
		if (!s->dead)
			pump(s);
	}
}

/* Have on_kick run once the events already waiting are served. 0, or -1. */
static int kick(void)
{
	uint64_t one = 1;

	if (g_kick_fd < 0) {
		g_kick_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (g_kick_fd < 0 || loop_add(&g_kick_w, g_kick_fd, EPOLLIN, on_kick)) {
			log_error("cannot make the loop's wake-up eventfd: %s", strerror(errno));
			if (g_kick_fd >= 0)
				close(g_kick_fd);
			g_kick_fd = -1;
			return -1;
		}
	}
	(void)!write(g_kick_fd, &one, sizeof(one));
	return 0;
}

/* s's engine left work for later: come back once the events already waiting are served. */
static void yield(struct session *s)
{
	s->more = 0;
	if (s->yielded)
		return;
	if (kick())
		return; /* the session's next event (or the agent's) comes back to it */
	s->yielded = 1;
	s->next_yield = g_yield;
	g_yield = s;
}

void sess_resume(struct session *s)
{
	s->held = 0;
	s->a.readable = s->s.readable = 1; /* not polled for while held: look */
	if (!s->dead)
		pump(s);
}

struct session *sess_find(int (*pred)(struct session *s, void *arg), void *arg)
{
	for (struct session *s = g_sessions; s; s = s->next)
		if (!s->dead && pred(s, arg))
			return s;
	return NULL;
}

/* Open the database leg: a socket in hoopd's namespace, or the agent's when the destination
 * exists only there (netns_dial_where), connecting (non-blocking) to where the agent meant to go.
 * 0, or a negative errno. */
static int dial_upstream(struct session *s)
{
	struct sockaddr_storage ss = {0};
	socklen_t sl;
	int one = 1, family = s->o.orig_family == HOOP_AF_INET ? AF_INET : AF_INET6;

	s->up_netns = netns_dial_where(s->ln, family, s->o.orig_addr);
	s->s.fd = netns_socket_dial(s->ln, family, (enum netns_dial)s->up_netns);
	if (s->s.fd < 0) {
		int e = s->s.fd;

		s->s.fd = -1;
		return e;
	}
	setsockopt(s->s.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (s->o.orig_family == HOOP_AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;

		a->sin_family = AF_INET;
		a->sin_port = s->o.orig_port;
		memcpy(&a->sin_addr, s->o.orig_addr, 4);
		sl = sizeof(*a);
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

		a->sin6_family = AF_INET6;
		a->sin6_port = s->o.orig_port;
		memcpy(&a->sin6_addr, s->o.orig_addr, 16);
		sl = sizeof(*a);
	}
	s->connecting = 1;
	if (connect(s->s.fd, (struct sockaddr *)&ss, sl) && errno != EINPROGRESS)
		return -errno;
	return 0;
}

static void on_server(struct loop_watch *w, uint32_t events);

int sess_tls_agent(struct session *s)
{
	char ip[INET6_ADDRSTRLEN] = "";
	SSL *ssl;

	inet_ntop(s->o.orig_family == HOOP_AF_INET ? AF_INET : AF_INET6, s->o.orig_addr, ip,
		  sizeof(ip));
	ssl = tls_agent_new(s->a.fd, ip);

	if (!ssl)
		return -1;
	s->a.ssl = ssl;
	s->a.handshaking = 1;
	return 0;
}

int sess_tls_server(struct session *s, SSL_CTX *ctx, const char *sni)
{
	SSL *ssl = tls_server_new(ctx, s->s.fd, sni);

	if (!ssl)
		return -1;
	s->s.ssl = ssl;
	s->s.handshaking = 1;
	s->s.ssl_wants_write = 1; /* we speak first (ClientHello): wake on writable */
	return 0;
}

/*
 * Reads land in one loop-wide buffer and only what arrived is copied into the side's, so that
 * a connection's buffers are as large as what it has pending, and nothing while it idles
 * (buf_trim after each pump). A buffer already holding a large message takes reads directly.
 */
static uint8_t g_scratch[READ_CHUNK];

/* Where the next read goes and how much it may take: the buffer's own room when it has a lot,
 * else the scratch. */
static uint8_t *read_room(struct side *d, size_t *room, int *direct)
{
	size_t tail = buf_tailroom(&d->in);

	*direct = d->in.data && tail >= 16384;
	if (*direct) {
		*room = tail < READ_CHUNK ? tail : READ_CHUNK;
		return d->in.data + d->in.off + d->in.len;
	}
	*room = READ_CHUNK;
	return g_scratch;
}

/* n bytes were read into t (read_room's). 0, or -1 out of memory. */
static int read_done(struct side *d, const uint8_t *t, size_t n, int direct)
{
	if (direct) {
		buf_commit(&d->in, n);
		return 0;
	}
	return buf_append(&d->in, t, n) ? -1 : 0;
}

/* Read what the side has, up to cap buffered bytes. 1 = progress, 0 = nothing, -1 = error. */
static int side_read(struct side *d, size_t cap)
{
	int progress = 0;

	while (!d->eof && d->in.len < cap) {
		size_t room;
		int direct;
		uint8_t *t = read_room(d, &room, &direct);
		ssize_t n;

		if (room > cap - d->in.len)
			room = cap - d->in.len; /* the cap is a bound, not a hint */

		if (d->ssl) {
			int r = SSL_read(d->ssl, t, (int)room);

			if (r > 0) {
				if (read_done(d, t, (size_t)r, direct))
					return -1;
				progress = 1;
				continue;
			}
			switch (SSL_get_error(d->ssl, r)) {
			case SSL_ERROR_WANT_READ:
				d->ssl_wants_write = 0;
				d->readable = 0; /* the socket is drained: epoll says when not */
				return progress;
			case SSL_ERROR_WANT_WRITE:
				d->ssl_wants_write = 1;
				return progress;
			case SSL_ERROR_ZERO_RETURN:
				d->eof = 1;
				return 1;
			case SSL_ERROR_SYSCALL:
				if (r == 0 || errno == 0) {
					d->eof = 1; /* TCP EOF without close_notify */
					return 1;
				}
				return -1;
			default:
				errno = EPROTO;
				return -1;
			}
		}
		n = recv(d->fd, t, room, 0);
		if (n > 0) {
			if (read_done(d, t, (size_t)n, direct))
				return -1;
			progress = 1;
			if ((size_t)n < room) {
				d->readable = 0; /* drained: epoll says when there is more */
				return 1;
			}
			continue;
		}
		if (n == 0) {
			d->eof = 1;
			return 1;
		}
		if (errno == EAGAIN || errno == EINTR) {
			d->readable = 0;
			return progress;
		}
		return -1;
	}
	return progress;
}

/* Write what is queued. 0 = fine (maybe partial), -1 = error. */
static int side_flush(struct side *d)
{
	while (d->out.len) {
		ssize_t n;

		if (d->ssl) {
			int r = SSL_write(d->ssl, buf_head(&d->out), (int)(d->out.len > 1 << 20 ? 1 << 20
											 : d->out.len));

			if (r > 0) {
				buf_consume(&d->out, (size_t)r);
				continue;
			}
			switch (SSL_get_error(d->ssl, r)) {
			case SSL_ERROR_WANT_READ:
			case SSL_ERROR_WANT_WRITE:
				return 0;
			default:
				errno = EPIPE;
				return -1;
			}
		}
		n = send(d->fd, buf_head(&d->out), d->out.len, MSG_NOSIGNAL);
		if (n > 0) {
			buf_consume(&d->out, (size_t)n);
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return 0;
		return -1;
	}
	return 0;
}

/* Drive a TLS handshake. 1 = done, 0 = in progress, -1 = failed. */
static int side_handshake(struct session *s, struct side *d)
{
	int r = SSL_do_handshake(d->ssl), e;

	if (r == 1) {
		d->handshaking = 0;
		return 1;
	}
	e = SSL_get_error(d->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		d->ssl_wants_write = e == SSL_ERROR_WANT_WRITE;
		return 0;
	}
	{
		char msg[256];

		ERR_error_string_n(ERR_get_error(), msg, sizeof(msg));
		hlog_conn(HLOG_WARN, s->id, s->peer, "TLS handshake with the %s failed: %s",
			  d == &s->a ? "agent" : "database", msg);
	}
	return -1;
}

static uint32_t interest(struct session *s, struct side *d, struct side *other, int is_agent)
{
	uint32_t ev = 0;

	if (d->handshaking)
		return d->ssl_wants_write ? EPOLLOUT : EPOLLIN;
	if (is_agent && s->held)
		ev |= EPOLLRDHUP; /* notice an agent that leaves while its statement waits */
	if ((d->out.len && !(d == &s->s && s->wait_sync)) || d->ssl_wants_write)
		ev |= EPOLLOUT;
	if (!d->eof && !s->closing &&
	    d->in.len < side_cap(s, d) &&
	    other->out.len < hoopd.o.relay_buf && !(is_agent && s->held) &&
	    !(!is_agent && s->connecting))
		ev |= EPOLLIN;
	return ev;
}

static void rearm(struct session *s)
{
	if (!s->a.unwatched)
		loop_mod(&s->a.w, interest(s, &s->a, &s->s, 1));
	if (s->s.fd >= 0 && !s->s.unwatched)
		loop_mod(&s->s.w, s->connecting ? EPOLLOUT : interest(s, &s->s, &s->a, 0));
}

/* A side has hung up (or reset) while what it sent ends in an unfinished message: it can
 * never be finished, so nothing after it can come either. Ends the session (after what is
 * queued for the agent, when the agent can still read it). 1 when it did. */
static int cut_unfinished(struct session *s, struct side *d)
{
	int agent = d == &s->a;

	if (!d->eof || !d->in.len || !s->eng->partial ||
	    !s->eng->partial(s->est, &d->in, agent))
		return 0;
	hoopd.st.conns_cut_midmessage++;
	hlog_conn(HLOG_WARN, s->id, s->peer,
		  "the %s hung up in the middle of a message (%zu bytes of it buffered)",
		  agent ? "agent" : "database", d->in.len);
	buf_consume(&d->in, d->in.len);
	account(s);
	if (agent || !s->a.out.len || s->a.shut)
		sess_kill(s, agent ? "agent hung up mid-message" : "database hung up mid-message");
	else
		sess_close(s, "database hung up mid-message");
	return 1;
}

static void fail(struct session *s, const char *side, int err)
{
	char why[128];

	snprintf(why, sizeof(why), "%s connection: %s", side, strerror(err));
	sess_kill(s, why);
}

/* Drive TLS handshakes in progress, and look at the agent's first byte for a ClientHello
 * sent without negotiation. 0: go on; 1: a handshake comes first (next round); -1: the session
 * died. */
static int pump_tls(struct session *s)
{
	int r;

	if (s->a.handshaking) {
		r = side_handshake(s, &s->a);
		if (r < 0) {
			sess_kill(s, "agent TLS handshake failed");
			return -1;
		}
		if (r > 0 && s->eng->tls_done)
			s->eng->tls_done(s->est, 1, 1);
	}
	if (s->s.handshaking && !s->connecting) {
		r = side_handshake(s, &s->s);
		if (r != 0 && s->eng->tls_done)
			s->eng->tls_done(s->est, 0, r > 0);
		if (r < 0 && !s->closing) {
			sess_kill(s, "database TLS handshake failed");
			return -1;
		}
	}
	if (s->dead)
		return -1;
	if (!s->peeked && s->eng->direct_tls && !s->a.ssl) {
		uint8_t c;
		ssize_t n = recv(s->a.fd, &c, 1, MSG_PEEK);

		if (n == 1) {
			s->peeked = 1;
			if (c == 0x16 && s->eng->direct_tls(s->est) == 0 && sess_tls_agent(s)) {
				sess_kill(s, "cannot start TLS");
				return -1;
			}
			if (s->a.handshaking)
				return 1;
		} else if (n == 0) {
			s->peeked = 1;
		}
	}
	return 0;
}

/* Read side d (when epoll said it is readable and no read found it empty since; TLS may hold
 * bytes it read ahead, or want to write before it reads, whatever the socket says), counting
 * what came into *count and hoopd's total. 0, or -1 when the session died. */
static int pump_read(struct session *s, struct side *d, uint64_t *count, uint64_t *total)
{
	size_t before = d->in.len;

	if (!(d->readable || d->unwatched ||
	      (d->ssl && (d->ssl_wants_write || SSL_has_pending(d->ssl)))))
		return 0;
	if (side_read(d, side_cap(s, d)) < 0) {
		fail(s, d == &s->a ? "agent" : "database", errno);
		return -1;
	}
	*count += d->in.len - before;
	*total += d->in.len - before;
	account(s);
	return 0;
}

/* The agent's bytes: read them and hand them to the engine. 0, or -1 when the session died. */
static int pump_agent(struct session *s)
{
	if (!s->a.handshaking && !s->closing && !s->held && s->s.out.len < hoopd.o.relay_buf &&
	    pump_read(s, &s->a, &s->bytes_up, &hoopd.st.bytes_agent_to_db))
		return -1;
	if (s->a.in.len && !s->held && !s->closing && !s->yielded) {
		size_t before = s->a.in.len;

		if (s->eng->agent_data(s->est, &s->a.in) && s->dead)
			return -1;
		s->consumed += before - s->a.in.len;
		account(s);
		if (s->more)
			yield(s);
	}
	if (!s->held && !s->closing && !s->yielded && cut_unfinished(s, &s->a))
		return -1;
	return 0;
}

/* The database's bytes: read them and hand them to the engine. 0, or -1 when the session
 * died. */
static int pump_server(struct session *s)
{
	if (!s->connecting && !s->s.handshaking && s->a.out.len < hoopd.o.relay_buf &&
	    pump_read(s, &s->s, &s->bytes_down, &hoopd.st.bytes_db_to_agent))
		return -1;
	if (s->s.in.len && !s->s.handshaking) {
		size_t before = s->s.in.len;

		if (s->eng->server_data(s->est, &s->s.in) && s->dead)
			return -1;
		s->consumed += before - s->s.in.len;
		account(s);
	}
	if (!s->closing && !s->s.handshaking && cut_unfinished(s, &s->s))
		return -1;
	return 0;
}

/* In an engine worker, the broker's store refused a record the bytes queued for the database
 * wait for (disk full: audit_refused_in): they never go. The statement was judged and is
 * refused as the single process refuses one it cannot record (58030), but the engine has
 * passed it on already, so the session ends with it. 1 when so. */
static int refuse_unrecorded(struct session *s)
{
	static const char msg[] = "hoop: the audit trail cannot be written; the statement was not "
				  "forwarded";
	struct buf b = {0};

	if (!s->s.out.len || !audit_refused_in(s->passed_seq, s->need_seq))
		return 0;
	buf_consume(&s->s.out, s->s.out.len);
	s->out_seen = 0;
	if (s->wait_sync)
		g_waiting--;
	s->wait_sync = 0;
	if (s->eng && s->eng->refuse_conn && !s->eng->refuse_conn(&b, "58030", msg))
		buf_append(&s->a.out, buf_head(&b), b.len);
	buf_free(&b);
	hlog_conn(HLOG_ERROR, s->id, s->peer, "a record of this session could not be written "
		  "(audit trail): what it sent is not forwarded, and it ends");
	sess_close(s, "audit trail cannot be written");
	return 1;
}

/* Send what is queued each way, pass EOFs on, and end a session that is done. 0, or -1 when
 * the session died. */
static int pump_send(struct session *s)
{
	/* Nothing reaches the database before its record is durable: bytes queued for it
	 * since we last looked are described by records written before, up to now. */
	if (s->s.out.len > s->out_seen)
		s->need_seq = barrier_mark();
	if (refuse_unrecorded(s)) {
		/* what is queued for the agent (the refusal) goes, then the session ends */
	} else if (s->s.out.len && !barrier_passed(s->need_seq)) {
		if (!s->wait_sync)
			g_waiting++;
		s->wait_sync = 1;
	} else if (!s->connecting && !s->s.handshaking) {
		size_t before = s->s.out.len;

		if (s->wait_sync)
			g_waiting--;
		s->wait_sync = 0;
		if (side_flush(&s->s) < 0) {
			fail(s, "database", errno);
			return -1;
		}
		s->flushed += before - s->s.out.len;
		if (s->s.out.len < before)
			s->passed_seq = s->need_seq;
	}
	s->out_seen = s->s.out.len;
	if (!s->a.handshaking) {
		size_t before = s->a.out.len;

		if (side_flush(&s->a) < 0) {
			fail(s, "agent", errno);
			return -1;
		}
		s->flushed += before - s->a.out.len;
	}
	/* Half-close: pass an EOF on once everything before it is delivered. */
	if (s->a.eof && !s->a.in.len && !s->s.out.len && !s->s.shut && !s->connecting) {
		shutdown(s->s.fd, SHUT_WR);
		s->s.shut = 1;
	}
	if (s->s.eof && !s->s.in.len && !s->a.out.len && !s->a.shut) {
		shutdown(s->a.fd, SHUT_WR);
		s->a.shut = 1;
	}
	if (s->closing && !s->a.out.len) {
		sess_kill(s, s->close_why);
		return -1;
	}
	/* Done when each side's EOF has been passed on, i.e. after everything before it was
	 * delivered. (Both peers having sent EOF is not enough: bytes may still wait for
	 * either.) */
	if ((s->a.shut && s->s.shut) ||
	    (s->a.eof && s->s.eof && !s->a.out.len && !s->s.out.len && !s->a.in.len &&
	     !s->s.in.len)) {
		sess_kill(s, "both sides done");
		return -1;
	}
	return 0;
}

/* Move what can move for s, a few rounds while there is progress and its turn lasts. */
static void pump(struct session *s)
{
	for (int round = 0; round < 8 && !s->dead; round++) {
		/* Bytes moved anywhere this round: read, consumed by the engine, or sent. Comparing
		 * buffer lengths is not enough (read, consumed and sent in one round leaves them
		 * as they were, while an engine may now take input it had to leave waiting). */
		uint64_t moved = s->bytes_up + s->bytes_down + s->consumed + s->flushed;
		int r = pump_tls(s);

		if (r < 0)
			return;
		if (r > 0)
			continue; /* the handshake comes first */
		if (pump_agent(s) || pump_server(s) || pump_send(s))
			return;
		account(s);
		if (s->bytes_up + s->bytes_down + s->consumed + s->flushed == moved || s->yielded)
			break; /* no progress this round, or its turn is over */
	}
	if (!s->dead) {
		/* An idle connection holds no buffer memory. */
		buf_trim(&s->a.in);
		buf_trim(&s->a.out);
		buf_trim(&s->s.in);
		buf_trim(&s->s.out);
		rearm(s);
	}
}

#define READABLE (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)

/* epoll said HUP or ERR on d, which it reports whatever we ask for: left watched, a side that
 * can do no more would wake the loop for ever. Closed both ways after our own EOF went out:
 * the side is done, stop watching it. HUP alone (the peer's FIN, and our side shut) is no
 * reset: what the peer sent before its FIN may still wait in the socket, unread while the
 * other side's queue was full, and it is owed to the other side whole. Stop watching, and let
 * pump read it up to the EOF (unwatched sides are read whenever pump runs); a message it cuts
 * short ends the session there. ERR is a reset: nothing more can reach the agent or come from
 * the database. */
static void hung_up(struct session *s, struct side *d, uint32_t events)
{
	if (d->shut && d->eof) {
		loop_del(&d->w);
		d->unwatched = 1;
		return;
	}
	if (!(events & EPOLLERR) && !d->eof) {
		loop_del(&d->w);
		d->unwatched = 1;
		d->readable = 1;
		pump(s);
		return;
	}
	if (d == &s->a) {
		sess_kill(s, "agent connection reset");
		return;
	}
	loop_del(&d->w);
	d->unwatched = 1;
	d->eof = 1;
	if (!cut_unfinished(s, d))
		sess_close(s, "database connection reset");
	if (!s->dead)
		pump(s);
}

static void on_agent(struct loop_watch *w, uint32_t events)
{
	struct session *s = container_of(w, struct session, a.w);

	if (s->dead)
		return;
	if (events & READABLE)
		s->a.readable = 1;
	if (s->held && (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
		sess_kill(s, "agent left while its statement was held");
		return;
	}
	pump(s);
	if (!s->dead && (events & (EPOLLHUP | EPOLLERR)))
		hung_up(s, &s->a, events);
}

static void on_server(struct loop_watch *w, uint32_t events)
{
	struct session *s = container_of(w, struct session, s.w);

	if (s->dead)
		return;
	if (events & READABLE)
		s->s.readable = 1;
	if (s->connecting) {
		int err = 0;
		socklen_t l = sizeof(err);

		getsockopt(s->s.fd, SOL_SOCKET, SO_ERROR, &err, &l);
		if (err) {
			hlog_conn(HLOG_WARN, s->id, s->peer, "cannot reach %s: %s", s->dst,
				  strerror(err));
			hoopd.st.conns_upstream_failed++;
			sess_kill(s, "upstream connect failed");
			return;
		}
		s->connecting = 0;
		hlog_conn(HLOG_DEBUG, s->id, s->peer, "connected upstream to %s", s->dst);
		if (s->eng->server_connected)
			s->eng->server_connected(s->est);
	}
	pump(s);
	if (!s->dead && !s->connecting && (events & (EPOLLHUP | EPOLLERR)))
		hung_up(s, &s->s, events);
}

/* The agent's cgroup has limits.connections_per_cgroup sessions open: say so (engine_ops
 * refuse_conn; a PostgreSQL
 * client reads an ErrorResponse even in answer to its SSLRequest, as from a server that
 * cannot start a backend), put it on record, and close. */
static void refuse_over_cap(struct session *s, int fd)
{
	char msg[200], sink[4096];
	struct buf b = {0};
	const struct engine_ops *eng;

	snprintf(msg, sizeof(msg),
		 "hoop: too many connections from this agent's attached cgroup (%u open, the "
		 "limit; limits.connections_per_cgroup)",
		 s->cgu->conns);
	hoopd.st.conns_refused_cgroup++;
	hlog_conn(HLOG_WARN, s->id, s->peer, "refused: %s", msg);
	ev_conn_refused(sess_agent(s), "53300", msg);
	eng = engine_for(s->protocol);
	if (eng && eng->refuse_conn && !eng->refuse_conn(&b, "53300", msg))
		(void)!send(fd, buf_head(&b), b.len, MSG_NOSIGNAL | MSG_DONTWAIT);
	buf_free(&b);
	/* What the agent sent already, read, so that close() sends FIN and not a reset that
	 * could overtake the error. */
	while (recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0)
		;
	shutdown(fd, SHUT_WR);
	close(fd);
}

/* The key the connect hook stashed the agent's origin under: its namespace and its address
 * as hoopd sees it. 0, or -1 when the peer is gone. */
static int origin_key(struct listener *ln, int fd, struct hoop_sock_key *key)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (getpeername(fd, (struct sockaddr *)&ss, &sl))
		return -1;
	key->netns_cookie = netns_cookie(ln);
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;

		key->family = HOOP_AF_INET;
		memcpy(key->addr, &a->sin_addr, 4);
		key->port = a->sin_port;
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

		if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
			key->family = HOOP_AF_INET;
			memcpy(key->addr, &a->sin6_addr.s6_addr[12], 4);
		} else {
			key->family = HOOP_AF_INET6;
			memcpy(key->addr, &a->sin6_addr, 16);
		}
		key->port = a->sin6_port;
	}
	return 0;
}

void (*relay_on_end)(const struct session *s);
int (*relay_handoff)(const struct session *s, struct cg_use *cgu);

/* The session, its sockets and identity ready, starts: into the loop and the lists, the
 * engine opened. 0, or -1 when it could not (s is freed, its descriptors closed, unless it is
 * on the lists already: then it is killed as any session). */
static int start_session(struct session *s)
{
	s->passed_seq = barrier_mark(); /* records before it are not its own */
	s->eng = engine_for(s->protocol);
	if (!s->eng || loop_add(&s->a.w, s->a.fd, EPOLLIN, on_agent))
		goto fail;
	if (loop_add(&s->s.w, s->s.fd, s->connecting ? EPOLLOUT : EPOLLIN, on_server)) {
		loop_del(&s->a.w);
		goto fail;
	}
	s->next = g_sessions;
	if (g_sessions)
		g_sessions->prev = s;
	g_sessions = s;
	hoopd.st.conns_active++;
	s->cgu->conns++;
	if (s->ln)
		netns_conn_ref(s->ln, 1);
	hlog_conn(HLOG_INFO, s->id, s->peer,
		  "agent pid=%u uid=%u comm=%.16s exe=%s cgroup=%s owner=%s -> %s (target %s, %s, "
		  "dialled from %s's netns)%s",
		  s->o.tgid, s->o.uid, s->o.comm, s->exe[0] ? s->exe : "?", s->cgroup,
		  s->owner[0] ? s->owner : "-", s->dst, s->target, s->eng->name,
		  netns_dial_name((enum netns_dial)s->up_netns), s->accel ? " [accel]" : "");
	s->est = s->eng->open(s);
	if (!s->est) {
		sess_kill(s, "engine could not start");
		return -1;
	}
	if (!s->eng->login)
		sess_record_start(s, NULL); /* no login to wait for: the session begins now */
	return 0;
fail:
	if (relay_on_end)
		relay_on_end(s); /* the broker counts it until told */
	close(s->a.fd);
	if (s->s.fd >= 0)
		close(s->s.fd);
	cg_use_put(s->cgu);
	free(s);
	return -1;
}

void relay_accept(struct listener *ln, int fd)
{
	struct hoop_sock_key key = {0};
	struct session *s;
	int r, one = 1;

	hoopd.st.conns_accepted++;
	if (origin_key(ln, fd, &key)) {
		close(fd);
		return;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		close(fd);
		return;
	}
	s->a.fd = fd;
	s->a.readable = 1; /* the agent may have written already */
	s->s.fd = -1;
	s->ln = ln;
	s->netns_ino = netns_ino(ln);
	s->started_ms = now_ms();
	identity_new_id(s->id, sizeof(s->id));
	identity_fmt_addr(key.family, key.addr, key.port, s->peer, sizeof(s->peer));
	if (bpfctl_take_origin(&key, &s->o)) {
		/* Not a connection the kernel redirected (or its stash is gone): we do not know
		 * where it wanted to go, so it goes nowhere. */
		hlog_conn(HLOG_WARN, s->id, s->peer,
			  "no redirect record for this connection in netns %llu; refusing it",
			  (unsigned long long)netns_ino(ln));
		hoopd.st.conns_refused_nostash++;
		close(fd);
		free(s);
		return;
	}
	identity_fmt_addr(s->o.orig_family, s->o.orig_addr, s->o.orig_port, s->dst,
			  sizeof(s->dst));
	identity_read(&s->agent);
	s->cgu = cg_use_get(s->cap_cgid);
	if (!s->cgu) {
		close(fd);
		free(s);
		return;
	}
	if (s->cgu->conns >= relay_limits()->connections_per_cgroup) {
		refuse_over_cap(s, fd);
		cg_use_put(s->cgu);
		free(s);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (hoopd.o.accel == ACCEL_SOCKMAP) {
		/* Before the first byte we send, so all of them take the same path. */
		if ((r = bpfctl_accel_insert(fd)) == 0) {
			s->accel = 1;
			hoopd.st.accel_inserted++;
		} else {
			hoopd.st.accel_insert_failed++;
			hlog_conn(HLOG_DEBUG, s->id, s->peer, "no acceleration: %s", strerror(-r));
		}
	}

	if ((r = dial_upstream(s))) {
		hlog_conn(HLOG_WARN, s->id, s->peer, "cannot reach %s: %s", s->dst, strerror(-r));
		hoopd.st.conns_upstream_failed++;
		close(s->a.fd);
		if (s->s.fd >= 0)
			close(s->s.fd);
		cg_use_put(s->cgu);
		free(s);
		return;
	}
	if (relay_handoff) {
		/* The process split: an engine worker runs the session; the broker keeps its
		 * count against the cgroup's cap and its namespace's reference until it ends. */
		if (relay_handoff(s, s->cgu) == 0) {
			s->cgu->conns++;
			netns_conn_ref(ln, 1);
		} else {
			hlog_conn(HLOG_WARN, s->id, s->peer, "refused: no engine worker to run it");
		}
		close(s->a.fd);
		close(s->s.fd);
		cg_use_put(s->cgu);
		free(s);
		return;
	}
	(void)start_session(s);
}

void relay_remote_end(struct cg_use *cgu, struct listener *ln)
{
	cgu->conns--;
	cg_use_put(cgu);
	netns_conn_ref(ln, -1);
}

void relay_adopt(const struct agent *a, int afd, int sfd, int accel, int connecting)
{
	struct session *s = calloc(1, sizeof(*s));

	if (!s) {
		struct session t; /* only its id and counters, for the broker */

		memset(&t, 0, sizeof(t));
		memcpy(t.id, a->id, sizeof(t.id));
		if (relay_on_end)
			relay_on_end(&t);
		close(afd);
		close(sfd);
		return;
	}
	s->agent = *a;
	s->a.fd = afd;
	s->a.readable = 1;
	s->s.fd = sfd;
	s->accel = accel;
	s->connecting = connecting;
	s->cgu = cg_use_get(s->cap_cgid);
	if (!s->cgu) {
		if (relay_on_end)
			relay_on_end(s);
		close(afd);
		close(sfd);
		free(s);
		return;
	}
	(void)start_session(s);
}

void relay_status_conns(struct jbuf *j)
{
	jb_arr_open(j);
	for (struct session *s = g_sessions; s; s = s->next) {
		char comm[17];

		if (s->dead)
			continue;
		memcpy(comm, s->o.comm, 16);
		comm[16] = '\0';
		jb_obj_open(j);
		jb_kv_str(j, "session", s->id);
		jb_kv_int(j, "pid", s->o.tgid);
		jb_kv_int(j, "tid", s->o.pid);
		jb_kv_int(j, "uid", s->o.uid);
		jb_kv_int(j, "gid", s->o.gid);
		jb_kv_str(j, "comm", comm);
		jb_kv_str(j, "exe", s->exe);
		jb_kv_str(j, "cgroup", s->cgroup);
		jb_kv_uint(j, "cgroup_id", s->o.cgroup_id);
		jb_kv_str(j, "owner", s->owner);
		jb_kv_str(j, "agent_addr", s->peer);
		jb_kv_str(j, "destination", s->dst);
		jb_kv_str(j, "target", s->target);
		jb_kv_str(j, "protocol", policy_protocol_name((enum hoop_protocol)s->protocol));
		jb_kv_uint(j, "netns_inode", s->netns_ino);
		jb_kv_str(j, "upstream_netns", netns_dial_name((enum netns_dial)s->up_netns));
		jb_kv_bool(j, "accelerated", s->accel);
		jb_kv_bool(j, "connecting", s->connecting);
		jb_kv_bool(j, "held", s->held);
		jb_kv_bool(j, "agent_tls", s->a.ssl != NULL);
		jb_kv_bool(j, "server_tls", s->s.ssl != NULL);
		jb_kv_uint(j, "bytes_agent_to_db", s->bytes_up);
		jb_kv_uint(j, "bytes_db_to_agent", s->bytes_down);
		jb_kv_int(j, "started_ms", s->started_ms);
		jb_kv_uint(j, "bytes_buffered", s->counted);
		if (s->eng->status && s->est)
			s->eng->status(s->est, j);
		jb_obj_close(j);
	}
	jb_arr_close(j);
}

void relay_status_limits(struct jbuf *j, const struct hoopd_stats *st)
{
	{
		const struct policy_limits *l = relay_limits();

		jb_key(j, "limits");
		jb_obj_open(j);
		jb_kv_uint(j, "statement_bytes", l->statement_bytes);
		jb_kv_uint(j, "statement_tokens", l->statement_tokens);
		jb_kv_uint(j, "statement_depth", l->statement_depth);
		jb_kv_uint(j, "connections_per_cgroup", l->connections_per_cgroup);
		jb_kv_uint(j, "cgroup_buffer_bytes", l->cgroup_buffer_bytes);
		jb_kv_uint(j, "buffer_bytes", l->buffer_bytes);
		jb_kv_uint(j, "max_message", hoopd.o.max_message);
		jb_kv_uint(j, "bytes_buffered", st->buffered);
		jb_kv_uint(j, "connections_refused_cgroup_limit", st->conns_refused_cgroup);
		jb_kv_uint(j, "statements_refused_size_limit", st->statements_oversized);
		jb_kv_uint(j, "connections_cut_mid_message", st->conns_cut_midmessage);
		jb_key(j, "cgroups");
		jb_arr_open(j);
		for (struct cg_use *c = g_cgs; c; c = c->next) {
			jb_obj_open(j);
			jb_kv_uint(j, "cgroup_id", c->id);
			jb_kv_uint(j, "connections", c->conns);
			jb_kv_uint(j, "bytes_buffered", c->buffered);
			jb_obj_close(j);
		}
		jb_arr_close(j);
		jb_obj_close(j);
	}
}

int relay_waiting_sync(void)
{
	return g_waiting;
}

void relay_release_synced(void)
{
	if (!g_waiting)
		return;
	for (struct session *s = g_sessions; s; s = s->next) {
		if (s->wait_sync && !s->dead &&
		    (barrier_passed(s->need_seq) || audit_refused_in(s->passed_seq, s->need_seq))) {
			s->wait_sync = 0;
			g_waiting--;
			/* Both sides stayed polled while it waited: their readable flags hold. */
			pump(s);
		}
	}
}

void relay_close_all(void)
{
	for (struct session *s = g_sessions; s; s = s->next) {
		if (!s->dead && s->a.out.len && !s->a.handshaking)
			side_flush(&s->a); /* last words, e.g. why a held statement did not run */
		sess_kill(s, NULL);
	}
	relay_reap();
	if (g_kick_fd >= 0) {
		loop_del(&g_kick_w);
		close(g_kick_fd);
		g_kick_fd = -1;
	}
}
