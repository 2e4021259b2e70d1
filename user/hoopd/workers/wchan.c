/* The broker <-> worker control channel (wchan.h). */
#include "wchan.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fdpass.h"

struct wchan_out {
	struct wchan_out *next;
	size_t len;
	int fds[WCHAN_FDS];
	int nfds;
	uint8_t bytes[];
};

static void out_free(struct wchan_out *o)
{
	for (int i = 0; i < o->nfds; i++)
		close(o->fds[i]);
	free(o);
}

static void end(struct wchan *c, const char *why)
{
	if (c->ended)
		return;
	wchan_close(c);
	if (c->on_end)
		c->on_end(c, why);
}

/* Send queued frames until the socket is full. 0, or -1 when the channel broke. */
static int drain(struct wchan *c)
{
	while (c->q) {
		struct wchan_out *o = c->q;
		int r = fdpass_send(c->fd, o->bytes, o->len, o->fds, o->nfds);

		if (r == -EAGAIN)
			break;
		if (r)
			return -1;
		c->q = o->next;
		if (!c->q)
			c->q_tail = NULL;
		c->queued -= o->len;
		out_free(o);
	}
	return loop_mod(&c->w, EPOLLIN | (c->q ? EPOLLOUT : 0)) ? -1 : 0;
}

static int deliver(struct wchan *c, const struct wchan_hdr *h, const uint8_t *body, size_t len,
		   int *fds, int nfds)
{
	if ((c->rx_open && (h->type != c->rx_type || h->token != c->rx_token || nfds)) ||
	    (!c->rx_open && h->more && nfds)) {
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
		end(c, c->rx_open ? "a frame of another message in the middle of one"
				  : "descriptors with a message of several frames");
		return -1;
	}
	if (!h->more && !c->rx_open)
		return c->on_msg(c, h->type, h->token, body, len, fds, nfds);
	if (c->rx.len + len > c->max_msg) {
		end(c, "a message over its size limit");
		return -1;
	}
	if (!c->rx_open) {
		c->rx_open = 1;
		c->rx_type = h->type;
		c->rx_token = h->token;
	}
	if (buf_append(&c->rx, body, len)) {
		end(c, "out of memory");
		return -1;
	}
	if (h->more)
		return 0;
	c->rx_open = 0;
	{
		int r = c->on_msg(c, c->rx_type, c->rx_token, buf_head(&c->rx), c->rx.len, NULL, 0);

		if (!c->ended) {
			buf_consume(&c->rx, c->rx.len);
			buf_trim(&c->rx);
		}
		return r;
	}
}

static void on_io(struct loop_watch *w, uint32_t events)
{
	struct wchan *c = container_of(w, struct wchan, w);
	static uint8_t frame[WCHAN_FRAME];

	if (c->ended)
		return; /* closed earlier in this batch of events */
	if ((events & EPOLLOUT) && drain(c)) {
		end(c, "the channel broke");
		return;
	}
	if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		return;
	for (int rounds = 0; rounds < 64 && !c->ended; rounds++) {
		int fds[WCHAN_FDS], nfds = 0;
		ssize_t n = fdpass_recv(c->fd, frame, sizeof(frame), fds, WCHAN_FDS, &nfds);
		struct wchan_hdr h;

		if (n == -EAGAIN)
			return;
		if (n == 0) {
			end(c, "the peer closed the channel");
			return;
		}
		if (n < 0) {
			end(c, n == -EMSGSIZE ? "a frame over its size" : "the channel broke");
			return;
		}
		memcpy(&h, frame, sizeof(h) <= (size_t)n ? sizeof(h) : (size_t)n);
		if ((size_t)n < sizeof(h) || h.nfds != nfds || h.more > 1) {
			for (int i = 0; i < nfds; i++)
				close(fds[i]);
			end(c, "a frame that is not one");
			return;
		}
		if (deliver(c, &h, frame + sizeof(h), (size_t)n - sizeof(h), fds, nfds) < 0) {
			if (!c->ended)
				end(c, "a message the receiver refused");
			return;
		}
	}
}

int wchan_open(struct wchan *c, int fd, size_t max_msg, wchan_msg_cb on_msg, wchan_end_cb on_end,
	       void *owner)
{
	int fl = fcntl(fd, F_GETFL);

	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->max_msg = max_msg;
	c->on_msg = on_msg;
	c->on_end = on_end;
	c->owner = owner;
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK))
		return -errno;
	return loop_add(&c->w, fd, EPOLLIN, on_io);
}

static int queue(struct wchan *c, const struct wchan_hdr *h, const void *body, size_t len,
		 const int *fds, int nfds)
{
	struct wchan_out *o = malloc(sizeof(*o) + sizeof(*h) + len);

	if (!o)
		return -1;
	o->next = NULL;
	o->len = sizeof(*h) + len;
	o->nfds = 0;
	memcpy(o->bytes, h, sizeof(*h));
	if (len)
		memcpy(o->bytes + sizeof(*h), body, len);
	for (int i = 0; i < nfds; i++) {
		o->fds[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
		if (o->fds[i] < 0) {
			out_free(o);
			return -1;
		}
		o->nfds++;
	}
	if (c->q_tail)
		c->q_tail->next = o;
	else
		c->q = o;
	c->q_tail = o;
	c->queued += o->len;
	return 0;
}

int wchan_send(struct wchan *c, uint8_t type, uint32_t token, const void *body, size_t len,
	       const int *fds, int nfds)
{
	const uint8_t *p = body;
	size_t room = WCHAN_FRAME - sizeof(struct wchan_hdr);

	if (c->ended || nfds > WCHAN_FDS || (nfds && len > room))
		return -1;
	if (c->queued > WCHAN_QUEUE_MAX) {
		end(c, "the peer does not read its channel");
		return -1;
	}
	do {
		size_t n = len < room ? len : room;
		struct wchan_hdr h = {.type = type, .more = len > n, .nfds = (uint8_t)nfds,
				      .token = token};

		if (queue(c, &h, p, n, fds, nfds)) {
			end(c, "out of memory");
			return -1;
		}
		p += n;
		len -= n;
	} while (len);
	if (drain(c)) {
		end(c, "the channel broke");
		return -1;
	}
	return 0;
}

void wchan_pump(struct wchan *c)
{
	while (!c->ended) {
		int fds[1];
		ssize_t n = recv(c->fd, fds, 1, MSG_PEEK | MSG_DONTWAIT);

		if (n < 0 && errno == EAGAIN)
			return;
		on_io(&c->w, EPOLLIN); /* reads it, or sees the end */
	}
}

void wchan_flush(struct wchan *c)
{
	if (!c->ended)
		(void)drain(c);
}

void wchan_close(struct wchan *c)
{
	if (c->ended)
		return;
	c->ended = 1;
	loop_del(&c->w);
	close(c->fd);
	c->fd = -1;
	while (c->q) {
		struct wchan_out *o = c->q;

		c->q = o->next;
		out_free(o);
	}
	c->q_tail = NULL;
	c->queued = 0;
	buf_free(&c->rx);
}
