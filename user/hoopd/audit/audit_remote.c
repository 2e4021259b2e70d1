/*
 * The worker's end of the audit channel (audit_ipc.h): audit_store.h's calls, in a process that
 * opens no files, send records to the broker's store and read its acknowledgements. Records
 * the socket has no room for wait in a bounded queue, in order; the event loop never blocks.
 */
#include "audit_ipc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "audit_int.h"
#include "audit_store.h"
#include "log.h"
#include "loop.h"
#include "trail.h"

#define REFUSED_RANGES 64
#define CRITICAL_KEPT 4096 /* the latest statement records' numbers */

/*
 * What waits to go, in order: a batch (whole records joined by newlines, sent as one
 * AUDIT_IPC_BATCH frame: cap is its room), a record too long for a frame (sent in pieces), or
 * a sync request. off: how much of it has gone (a batch goes whole or not at all).
 */
enum qkind { Q_BATCH, Q_LONG, Q_SYNC };
struct qrec {
	struct qrec *next;
	size_t len, off, cap;
	enum qkind kind;
	char data[];
};

/* The channel (the event loop's alone). */
static struct {
	int fd; /* -1: not attached, or the broker is gone */
	void (*on_lost)(void);
	int lost;
	uint64_t n;	   /* this worker's records taken so far: 1..n */
	uint64_t durable;  /* acknowledged: written (flush) or on disk (fsync) */
	uint64_t reported; /* durable when audit_sync_done last said so */
	uint32_t segment;
	int failing;	/* the broker says it cannot write the trail */
	int sync_asked; /* a sync request is out, not answered yet */
	struct qrec *head, *tail;
	struct qrec *spare; /* a batch's room, kept for the next one */
	size_t qbytes;
	int refusing; /* the queue is full: said once */
	/* Records the broker's store refused (audit_ipc_ack): the last REFUSED_RANGES ranges;
	 * older ones have been looked at by every session that waited on them. */
	struct {
		uint64_t lo, hi;
	} refused[REFUSED_RANGES];
	unsigned nrefused, refused_next;
	uint64_t critical[CRITICAL_KEPT]; /* numbers of statement records, a ring, ascending */
	unsigned ncritical, critical_next;
	/* EPOLLOUT while the queue waits, on a dup of fd: main watches fd itself for EPOLLIN
	 * (audit_sync_fd), and one descriptor cannot be in one epoll set twice */
	struct loop_watch outw;
	int out_fd, out_on;
} rem = {.fd = -1, .out_fd = -1};

static void lost(const char *why)
{
	if (rem.lost)
		return;
	rem.lost = 1;
	log_error("audit: the channel to the broker is gone (%s): statements are refused", why);
	if (rem.out_fd >= 0) {
		loop_del(&rem.outw);
		close(rem.out_fd);
		rem.out_fd = -1;
	}
	/* Closing the last descriptor of the socket takes it out of every epoll set too, so a
	 * hung-up channel does not wake the loop forever. */
	close(rem.fd);
	rem.fd = -1;
	if (rem.on_lost)
		rem.on_lost();
}

/* Send what is left of q from q->off, in frames. 0 when all of it went, -EAGAIN when the
 * socket is full, or another negative errno (the channel is lost). */
static int send_frames(struct qrec *q)
{
	for (;;) {
		size_t chunk = q->len - q->off;
		uint8_t type;
		struct iovec iov[2];
		struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};

		switch (q->kind) {
		case Q_SYNC:
			type = AUDIT_IPC_SYNC;
			chunk = 0;
			break;
		case Q_BATCH:
			type = AUDIT_IPC_BATCH;
			break;
		default:
			if (chunk > AUDIT_IPC_FRAME_MAX - 1)
				chunk = AUDIT_IPC_FRAME_MAX - 1;
			type = q->off + chunk == q->len ? AUDIT_IPC_RECORD : AUDIT_IPC_MORE;
		}
		iov[0].iov_base = &type;
		iov[0].iov_len = 1;
		iov[1].iov_base = q->data + q->off;
		iov[1].iov_len = chunk;
		if (sendmsg(rem.fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? -EAGAIN : -errno;
		q->off += chunk;
		if (q->off == q->len)
			return 0;
	}
}

static void on_writable(struct loop_watch *w, uint32_t events);

/* Watch for room in the socket while the queue waits (when there is a loop to watch from:
 * without one, acknowledgements and audit_sync_start move the queue). */
static void want_out(int on)
{
	if (on == rem.out_on || rem.fd < 0)
		return;
	if (on && rem.out_fd < 0) {
		rem.out_fd = fcntl(rem.fd, F_DUPFD_CLOEXEC, 0);
		if (rem.out_fd < 0 || loop_add(&rem.outw, rem.out_fd, EPOLLOUT, on_writable)) {
			log_warn("audit: cannot watch the channel for room: %s", strerror(errno));
			if (rem.out_fd >= 0)
				close(rem.out_fd);
			rem.out_fd = -1;
			return;
		}
	} else if (rem.out_fd >= 0) {
		loop_mod(&rem.outw, on ? EPOLLOUT : 0);
	}
	rem.out_on = on;
}

/* Send what waits, oldest first. */
static void flush(void)
{
	while (rem.head && !rem.lost) {
		struct qrec *q = rem.head;
		int r = send_frames(q);

		if (r == -EAGAIN)
			break;
		if (r) {
			lost(strerror(-r));
			return;
		}
		rem.head = q->next;
		if (!rem.head)
			rem.tail = NULL;
		rem.qbytes -= q->len;
		if (q->kind == Q_BATCH && !rem.spare)
			rem.spare = q; /* the next round's batch */
		else
			free(q);
	}
	if (!rem.head && rem.refusing) {
		log_warn("audit: the channel to the broker has room again: statements flow again");
		rem.refusing = 0;
	}
	want_out(rem.head != NULL);
}

static void on_writable(struct loop_watch *w, uint32_t events)
{
	flush();
}

/* Put p[0..len) at the end of what waits: into the open batch when it has room, else as a new
 * element. It goes at the next flush (the worker's tick, after each round of its loop: the
 * records of one round travel together). */
static int enqueue(const char *p, size_t len, enum qkind kind)
{
	struct qrec *q = rem.tail;
	size_t cap;

	if (kind == Q_BATCH && q && q->kind == Q_BATCH && !q->off && q->len + 1 + len <= q->cap) {
		q->data[q->len++] = '\n';
		memcpy(q->data + q->len, p, len);
		q->len += len;
		rem.qbytes += len + 1;
		return 0;
	}
	if (kind == Q_BATCH && len > AUDIT_IPC_FRAME_MAX - 1)
		kind = Q_LONG;
	cap = kind == Q_BATCH ? AUDIT_IPC_FRAME_MAX - 1 : len;
	if (kind == Q_BATCH && rem.spare) {
		q = rem.spare;
		rem.spare = NULL;
	} else if (!(q = malloc(sizeof(*q) + cap))) {
		return -ENOMEM;
	}
	q->next = NULL;
	q->len = len;
	q->off = 0;
	q->cap = cap;
	q->kind = kind;
	memcpy(q->data, p, len);
	if (rem.tail)
		rem.tail->next = q;
	else
		rem.head = q;
	rem.tail = q;
	rem.qbytes += len;
	return 0;
}

static int remote_append(const char *obj, size_t len)
{
	int r;

	if (rem.lost)
		return -EPIPE;
	/* What the broker would cut this worker off for, refused here instead. */
	if (len < 2 || obj[0] != '{' || obj[len - 1] != '}' || memchr(obj, '\n', len))
		return -EINVAL;
	if (len > TRAIL_RECORD_MAX)
		return -EMSGSIZE;
	/* Order is kept: behind what waits, as long as the queue has room (a record is always
	 * taken when nothing waits). */
	if (rem.head && rem.qbytes + len > AUDIT_IPC_QUEUE_MAX) {
		flush();
		if (rem.lost)
			return -EPIPE;
	}
	if (rem.head && rem.qbytes + len > AUDIT_IPC_QUEUE_MAX) {
		if (!rem.refusing)
			log_error("audit: the broker does not keep up (%zu bytes wait for it): "
				  "statements are refused until they have gone",
				  rem.qbytes);
		rem.refusing = 1;
		return -ENOBUFS;
	}
	r = enqueue(obj, len, Q_BATCH);
	if (r)
		return r;
	rem.n++;
	return 0;
}

void audit_remote_flush(void)
{
	if (rem.head && !rem.lost)
		flush();
}

static uint64_t remote_durable(void)
{
	return rem.durable;
}

/* Ask the broker for a sync when a session waits for records it has not acknowledged (behind
 * those records: the broker has them all when it reads the request). */
static void remote_sync_start(int waiting)
{
	if (rem.lost)
		return;
	flush();
	if (!waiting || rem.durable >= rem.n || rem.sync_asked)
		return;
	rem.sync_asked = 1;
	if (enqueue("", 0, Q_SYNC))
		rem.sync_asked = 0; /* no memory: the next round asks again */
	else
		flush();
}

static int remote_sync_fd(void)
{
	return rem.fd;
}

static int remote_sync_done(void)
{
	struct audit_ipc_ack a;
	ssize_t r;
	int moved = 0;

	while (!rem.lost) {
		r = recv(rem.fd, &a, sizeof(a), MSG_DONTWAIT);
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			break;
		if (r <= 0) {
			lost(r ? strerror(errno) : "closed by the broker");
			break;
		}
		if (r != sizeof(a) || a.type != AUDIT_IPC_ACK) {
			log_error("audit: the broker sent a message that is not an acknowledgement "
				  "(%zd bytes)",
				  r);
			continue;
		}
		/* More than this worker sent cannot be durable. */
		if (a.durable > rem.durable)
			rem.durable = a.durable > rem.n ? rem.n : a.durable;
		rem.segment = a.segment;
		rem.failing = a.failing;
		rem.sync_asked = 0;
		if (a.refused_hi && a.refused_lo <= a.refused_hi && a.refused_hi <= rem.n) {
			if (rem.nrefused < REFUSED_RANGES) {
				rem.refused[rem.refused_next].lo = a.refused_lo;
				rem.refused[rem.refused_next].hi = a.refused_hi;
				rem.refused_next = (rem.refused_next + 1) % REFUSED_RANGES;
				rem.nrefused++;
			} else {
				/* full: merged into the newest, wider (more refused, never less) */
				unsigned k = (rem.refused_next + REFUSED_RANGES - 1) % REFUSED_RANGES;

				if (a.refused_lo < rem.refused[k].lo)
					rem.refused[k].lo = a.refused_lo;
				if (a.refused_hi > rem.refused[k].hi)
					rem.refused[k].hi = a.refused_hi;
			}
			moved = 1; /* sessions waiting on them are refused now */
		}
	}
	flush(); /* an acknowledgement means the broker read: room, likely */
	moved |= rem.durable > rem.reported;
	rem.reported = rem.durable;
	return moved;
}

static uint64_t remote_last_seq(void)
{
	return rem.n;
}

static uint32_t remote_segment(void)
{
	return rem.segment;
}

static int remote_healthy(void)
{
	return !rem.lost && !rem.failing && !rem.refusing;
}

/* At shut-down: what waits gets a second to go, then the channel closes. */
static void remote_close(void)
{
	int64_t until = audit_mono_ms() + 1000;

	while (rem.head && !rem.lost && audit_mono_ms() < until) {
		struct pollfd p = {.fd = rem.fd, .events = POLLOUT};

		if (poll(&p, 1, 100) < 0 && errno != EINTR)
			break;
		flush();
	}
	if (rem.head)
		log_error("audit: %zu bytes of records did not reach the broker before the stop",
			  rem.qbytes);
	while (rem.head) {
		struct qrec *q = rem.head;

		rem.head = q->next;
		free(q);
	}
	rem.tail = NULL;
	rem.qbytes = 0;
	free(rem.spare);
	rem.spare = NULL;
	if (rem.out_fd >= 0) {
		loop_del(&rem.outw);
		close(rem.out_fd);
		rem.out_fd = -1;
	}
	rem.out_on = 0;
	if (rem.fd >= 0)
		close(rem.fd);
	rem.fd = -1;
	rem.lost = 1;
}

static void remote_mark_critical(void)
{
	rem.critical[rem.critical_next] = rem.n;
	rem.critical_next = (rem.critical_next + 1) % CRITICAL_KEPT;
	if (rem.ncritical < CRITICAL_KEPT)
		rem.ncritical++;
}

/* A refused range meets (after, upto] at a statement record. With more statement records in
 * flight than the ring keeps, any refusal in the range counts (refuse rather than guess). */
static int remote_refused_in(uint64_t after, uint64_t upto)
{
	uint64_t oldest = rem.ncritical < CRITICAL_KEPT ? 0 : rem.critical[rem.critical_next];

	for (unsigned i = 0; i < rem.nrefused; i++) {
		uint64_t lo = rem.refused[i].lo > after + 1 ? rem.refused[i].lo : after + 1;
		uint64_t hi = rem.refused[i].hi < upto ? rem.refused[i].hi : upto;

		if (lo > hi)
			continue;
		if (lo < oldest)
			return 1;
		for (unsigned k = 0; k < rem.ncritical; k++)
			if (rem.critical[k] >= lo && rem.critical[k] <= hi)
				return 1;
	}
	return 0;
}

static const struct audit_ops remote_ops = {
    .append = remote_append,
    .durable = remote_durable,
    .sync_start = remote_sync_start,
    .sync_fd = remote_sync_fd,
    .sync_done = remote_sync_done,
    .last_seq = remote_last_seq,
    .segment = remote_segment,
    .healthy = remote_healthy,
    .close = remote_close,
    .refused_in = remote_refused_in,
    .mark_critical = remote_mark_critical,
};

int audit_remote_attach(int fd, void (*on_lost)(void))
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK))
		return -errno;
	if (rem.fd >= 0)
		return -EBUSY;
	rem.fd = fd;
	rem.on_lost = on_lost;
	rem.lost = 0;
	rem.n = rem.durable = rem.reported = 0;
	audit_use_ops(&remote_ops);
	return 0;
}
