/*
 * The broker's end of the audit channel (audit_ipc.h): reads each engine worker's records from
 * the event loop, appends them to this process's store (one chain), and tells each worker which
 * of its records are written or on disk. It checks framing only: what a record says is the
 * worker's, as it was the single process's before the split.
 */
#include "audit_ipc.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "audit_store.h"
#include "isotime.h"
#include "json.h"
#include "log.h"
#include "loop.h"
#include "trail.h"

/* Frames read from one worker per wake-up: others get their turn (the loop is level-triggered
 * and comes back for the rest). */
#define SERVE_BATCH 64

/* A worker's record appended, not yet acknowledged: its local number and the global seq the
 * store had reached after it (a checkpoint may follow it: waiting for that is only safer). */
struct seqmap {
	uint64_t n, seq;
};

struct served {
	struct loop_watch w;
	struct served *next;
	uint32_t id;
	int dead;  /* cut off or deleted: freed by audit_serve_tick, after the loop's batch */
	char *rec; /* the record being put together from its pieces */
	size_t len, cap;
	uint64_t refused_lo, refused_hi; /* records the store refused since the last ack */
	int reset; /* it died with acknowledgements unread: what it sent is read to the end */
	uint64_t got;	/* records of this worker appended: its local numbering */
	uint64_t acked; /* last number sent in an acknowledgement */
	uint32_t seg_sent;
	int failing_sent;
	struct seqmap *map; /* ring of appended records awaiting their sync */
	size_t map_head, map_len, map_cap;
	int wants_sync;
};

static struct {
	struct served *list, *graveyard;
	audit_lost_cb cb;
	void *cb_arg;
	void (*started_cb)(uint32_t worker_id, const char *session, void *arg);
	size_t record_max;
	struct json_tokener *tok; /* record_forged's, reset for each record */
	char frame[AUDIT_IPC_FRAME_MAX];
} srv = {.record_max = TRAIL_RECORD_MAX};

void audit_serve_on_lost(audit_lost_cb cb, void *arg)
{
	srv.cb = cb;
	srv.cb_arg = arg;
}

void audit_serve_on_started(void (*cb)(uint32_t worker_id, const char *session, void *arg))
{
	srv.started_cb = cb;
}

void audit_serve_record_max(size_t max)
{
	srv.record_max = max && max < TRAIL_RECORD_MAX ? max : TRAIL_RECORD_MAX;
}

static struct served *find(uint32_t id)
{
	for (struct served *s = srv.list; s; s = s->next)
		if (s->id == id)
			return s;
	return NULL;
}

/* Out of the list and the loop; its memory waits for audit_serve_tick (an event of this loop
 * batch may still name it). */
static void drop(struct served *s)
{
	struct served **pp;

	for (pp = &srv.list; *pp && *pp != s; pp = &(*pp)->next)
		;
	if (*pp)
		*pp = s->next;
	loop_del(&s->w);
	close(s->w.fd);
	s->w.fd = -1;
	s->dead = 1;
	s->next = srv.graveyard;
	srv.graveyard = s;
}

/* The worker is gone: recorded when it was cut off (its channel closing is the split's to
 * record, as worker_lost, with what it knows of the worker's sessions), then reported. */
static void lose(struct served *s, enum audit_lost_why why, const char *detail)
{
	uint32_t id = s->id;

	if (why == AUDIT_LOST_BAD_FRAME) {
		char ts[TS_ISO_US_LEN];
		struct jbuf j;

		log_error("audit: worker %u sent a frame that is not a record (%s): cut off", id,
			  detail);
		ts_iso_us(ts);
		jb_init(&j);
		jb_obj_open(&j);
		jb_kv_str(&j, "ts", ts);
		jb_kv_str(&j, "kind", "audit_channel_cut");
		jb_kv_uint(&j, "worker", id);
		jb_kv_str(&j, "problem", detail);
		jb_kv_uint(&j, "records", s->got);
		jb_obj_close(&j);
		if (j.oom || audit_append(jb_str(&j), j.len))
			log_error("audit: cannot record that worker %u was cut off", id);
		jb_free(&j);
	} else {
		log_warn("audit: the channel of worker %u is gone (%s) after %llu records", id,
			 detail, (unsigned long long)s->got);
	}
	drop(s);
	if (srv.cb)
		srv.cb(id, why, detail, srv.cb_arg);
}

static int map_push(struct served *s, uint64_t n, uint64_t seq)
{
	if (s->map_len == s->map_cap) {
		size_t nc = s->map_cap ? s->map_cap * 2 : 64;
		struct seqmap *m = malloc(nc * sizeof(*m));

		if (!m)
			return -ENOMEM;
		for (size_t i = 0; i < s->map_len; i++)
			m[i] = s->map[(s->map_head + i) % s->map_cap];
		free(s->map);
		s->map = m;
		s->map_cap = nc;
		s->map_head = 0;
	}
	s->map[(s->map_head + s->map_len) % s->map_cap] = (struct seqmap){n, seq};
	s->map_len++;
	return 0;
}

/* Tell the worker what of its records is durable now, and where records go, when that
 * changed. A full socket (the worker does not read) is tried again at the next tick. */
static void ack(struct served *s)
{
	uint64_t durable = audit_durable(), upto = s->acked;
	struct audit_ipc_ack a = {.type = AUDIT_IPC_ACK};

	while (s->map_len && s->map[s->map_head].seq <= durable) {
		upto = s->map[s->map_head].n;
		s->map_head = (s->map_head + 1) % s->map_cap;
		s->map_len--;
	}
	if (!s->map_len)
		s->wants_sync = 0;
	a.durable = upto;
	a.segment = audit_segment();
	a.failing = !audit_healthy();
	a.refused_lo = s->refused_lo;
	a.refused_hi = s->refused_hi;
	if (upto == s->acked && a.segment == s->seg_sent && a.failing == s->failing_sent &&
	    !a.refused_hi)
		return;
	if (send(s->w.fd, &a, sizeof(a), MSG_DONTWAIT | MSG_NOSIGNAL) != sizeof(a))
		return; /* full, or gone: the read side finds out which */
	s->refused_lo = s->refused_hi = 0;
	s->acked = upto;
	s->seg_sent = a.segment;
	s->failing_sent = a.failing;
}

/* Append the whole record in s->rec. A record the store refuses (disk full) is dropped and
 * named in the next acknowledgement: the worker refuses the statement that waited for it, as
 * the single process refused a statement whose record it could not write. Nothing waits in
 * the broker for space, and the next record is tried as it comes. 0 when written, 1 when
 * refused. */
static int put(struct served *s)
{
	int r = audit_append(s->rec, s->len);

	s->got++;
	if (r) {
		if (!s->refused_lo)
			s->refused_lo = s->got;
		s->refused_hi = s->got;
	}
	/* A refused record is settled at once (seq 0): what waits for it learns it was refused,
	 * not that it is still to come. */
	if (map_push(s, s->got, r ? 0 : audit_last_seq())) {
		log_error("audit: out of memory: worker %u's record %llu is acknowledged late",
			  s->id, (unsigned long long)s->got);
	}
	s->len = 0;
	if (s->cap > (1u << 20)) { /* after a huge record, do not keep its buffer */
		free(s->rec);
		s->rec = NULL;
		s->cap = 0;
	}
	return r ? 1 : 0;
}

/*
 * What a worker's record may not be, checked before it joins the chain (a compromised worker
 * must not make `hoopctl verify` fail for the whole node, nor speak as the store): one JSON
 * object, parsed whole (json-c, bounded depth), with "ts" and "kind" as every record builder
 * writes them, no key the store itself writes on a line ("seq", "prev") or in a checkpoint
 * ("sig", "hmac", "key"), and no kind that is the store's or the broker's. 1 with why when so.
 */
static int record_forged(const char *rec, size_t len, char *why, size_t whyn, char *started,
			 size_t startedn)
{
	static const char *const store_keys[] = {"seq", "prev", "sig", "hmac", "key", NULL};
	static const char *const store_kinds[] = {"checkpoint", "audit_open", "retention",
						  "audit_tail_unverified", "audit_channel_cut",
						  NULL};
	struct json_tokener *tok = srv.tok;
	struct json_object *o = NULL, *v;
	const char *kind;
	int bad = 1;

	if (!tok)
		tok = srv.tok = json_tokener_new_ex(64);
	else
		json_tokener_reset(tok);
	if (!tok || len > INT32_MAX) {
		snprintf(why, whyn, "no memory to check it");
		goto out;
	}
	o = json_tokener_parse_ex(tok, rec, (int)len);
	if (!o || json_tokener_get_parse_end(tok) != len ||
	    !json_object_is_type(o, json_type_object)) {
		snprintf(why, whyn, "not one JSON object");
		goto out;
	}
	for (int i = 0; store_keys[i]; i++)
		if (json_object_object_get_ex(o, store_keys[i], NULL)) {
			snprintf(why, whyn, "it has the store's key \"%s\"", store_keys[i]);
			goto out;
		}
	if (!json_object_object_get_ex(o, "ts", &v) || !json_object_is_type(v, json_type_string) ||
	    !json_object_object_get_ex(o, "kind", &v) || !json_object_is_type(v, json_type_string)) {
		snprintf(why, whyn, "no \"ts\" and \"kind\"");
		goto out;
	}
	kind = json_object_get_string(v);
	for (int i = 0; store_kinds[i]; i++)
		if (!strcmp(kind, store_kinds[i])) {
			snprintf(why, whyn, "a record of the store's kind \"%s\"", kind);
			goto out;
		}
	started[0] = '\0';
	if (!strcmp(kind, "session_start") && json_object_object_get_ex(o, "session", &v) &&
	    json_object_is_type(v, json_type_string))
		snprintf(started, startedn, "%s", json_object_get_string(v));
	bad = 0;
out:
	json_object_put(o);
	return bad;
}

/* The whole record in s->rec: checked, then appended. 0, or -EPROTO with why. */
static int take_record(struct served *s, char *why, size_t whyn)
{
	char started[64];

	if (s->len < 2 || s->rec[0] != '{' || s->rec[s->len - 1] != '}') {
		snprintf(why, whyn, "record %llu is not a JSON object text (%zu bytes)",
			 (unsigned long long)s->got + 1, s->len);
		return -EPROTO;
	}
	if (record_forged(s->rec, s->len, why, whyn, started, sizeof(started))) {
		char w2[160];

		snprintf(w2, sizeof(w2), "record %llu: %s", (unsigned long long)s->got + 1, why);
		snprintf(why, whyn, "%s", w2);
		return -EPROTO;
	}
	if (put(s) == 0 && started[0] && srv.started_cb)
		srv.started_cb(s->id, started, srv.cb_arg);
	return 0;
}

/* Add p[0..pl) to the record being put together. 0, or -EPROTO with why. */
static int gather(struct served *s, const char *p, size_t pl, char *why, size_t whyn)
{
	if (pl > srv.record_max - s->len) {
		snprintf(why, whyn, "record %llu is over %zu bytes", (unsigned long long)s->got + 1,
			 srv.record_max);
		return -EPROTO;
	}
	if (s->len + pl > s->cap) {
		size_t nc = s->cap ? s->cap : 4096;
		char *x;

		while (nc < s->len + pl)
			nc = nc > srv.record_max / 2 ? srv.record_max : nc * 2;
		x = realloc(s->rec, nc);
		if (!x) {
			snprintf(why, whyn, "no memory for record %llu (%zu bytes)",
				 (unsigned long long)s->got + 1, s->len + pl);
			return -EPROTO;
		}
		s->rec = x;
		s->cap = nc;
	}
	memcpy(s->rec + s->len, p, pl);
	s->len += pl;
	return 0;
}

/* One frame: 0, or -EPROTO with why (cut it off). */
static int take(struct served *s, const char *f, size_t n, char *why, size_t whyn)
{
	const char *p = f + 1;
	size_t pl = n - 1;

	if (f[0] == AUDIT_IPC_SYNC && n == 1) {
		s->wants_sync = 1;
		return 0;
	}
	if (f[0] == AUDIT_IPC_BATCH) {
		/* Whole records, one per line; not in the middle of a record in pieces. */
		if (s->len) {
			snprintf(why, whyn, "a batch inside record %llu",
				 (unsigned long long)s->got + 1);
			return -EPROTO;
		}
		while (pl) {
			const char *nl = memchr(p, '\n', pl);
			size_t rl = nl ? (size_t)(nl - p) : pl;

			if (gather(s, p, rl, why, whyn) || take_record(s, why, whyn))
				return -EPROTO;
			if (!nl)
				return 0;
			p = nl + 1;
			pl -= rl + 1;
			if (!pl) {
				snprintf(why, whyn, "a batch that ends with a newline");
				return -EPROTO;
			}
		}
		snprintf(why, whyn, "an empty batch");
		return -EPROTO;
	}
	if (f[0] != AUDIT_IPC_MORE && f[0] != AUDIT_IPC_RECORD) {
		snprintf(why, whyn, "a frame of unknown type 0x%02x (%zu bytes)",
			 (unsigned char)f[0], n);
		return -EPROTO;
	}
	if (memchr(p, '\n', pl)) {
		snprintf(why, whyn, "a newline inside record %llu", (unsigned long long)s->got + 1);
		return -EPROTO;
	}
	if (gather(s, p, pl, why, whyn))
		return -EPROTO;
	if (f[0] == AUDIT_IPC_MORE)
		return 0;
	return take_record(s, why, whyn);
}

/* After a batch the store could not write whole: this worker's records past what it wrote
 * (the newest of its map) are refused, as if the store had refused each. */
static void batch_refused(struct served *s)
{
	uint64_t written = audit_last_seq();

	for (size_t i = s->map_len; i-- > 0;) {
		struct seqmap *m = &s->map[(s->map_head + i) % s->map_cap];

		if (!m->seq)
			continue; /* refused already */
		if (m->seq <= written)
			break;
		m->seq = 0;
		if (!s->refused_lo || m->n < s->refused_lo)
			s->refused_lo = m->n;
		if (m->n > s->refused_hi)
			s->refused_hi = m->n;
	}
}

static void on_readable(struct loop_watch *w, uint32_t events)
{
	struct served *s = container_of(w, struct served, w);
	char why[160];
	int gone = 0;

	if (s->dead)
		return;
	/* What this wake-up reads is written in one go (audit_batch_begin). */
	audit_batch_begin();
	for (int i = 0; i < SERVE_BATCH && !gone; i++) {
		/* MSG_TRUNC: the frame's real length, to refuse one over the bound */
		ssize_t r = recv(w->fd, srv.frame, sizeof(srv.frame), MSG_DONTWAIT | MSG_TRUNC);
		int t;

		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			break;
		/*
		 * ECONNRESET: it died with acknowledgements unread. The kernel reports that
		 * once, before the frames still queued (sock_error() comes first in
		 * __skb_try_recv_datagram), so those whole records are read and appended as
		 * a live worker's are; the end of file follows them. Taking the error for
		 * the end lost what a crashed worker had sent last.
		 */
		if (r < 0 && errno == ECONNRESET) {
			s->reset = 1;
			continue;
		}
		if (r < 0) {
			snprintf(why, sizeof(why), "%s", strerror(errno));
			gone = AUDIT_LOST_IO;
		} else if (r == 0) {
			snprintf(why, sizeof(why), "%s", s->reset ? "reset" : "closed");
			gone = AUDIT_LOST_CLOSED;
		} else if ((size_t)r > sizeof(srv.frame)) {
			snprintf(why, sizeof(why), "a frame of %zd bytes, over %u", r,
				 AUDIT_IPC_FRAME_MAX);
			gone = AUDIT_LOST_BAD_FRAME;
		} else if ((t = take(s, srv.frame, (size_t)r, why, sizeof(why))) == -EPROTO) {
			gone = AUDIT_LOST_BAD_FRAME;
		} else if (t) {
			break;
		}
	}
	/* The records read are written before anything is said about them: the worker's
	 * acknowledgement, or its loss (whose records follow these). */
	if (audit_batch_end())
		batch_refused(s);
	if (gone)
		lose(s, (enum audit_lost_why)gone, why);
	else
		ack(s);
}

int audit_serve_add(int fd, uint32_t worker_id)
{
	struct served *s;
	int fl = fcntl(fd, F_GETFL), r;

	if (find(worker_id))
		return -EEXIST;
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK))
		return -errno;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->id = worker_id;
	s->failing_sent = -1; /* the first acknowledgement goes out: the segment, at least */
	r = loop_add(&s->w, fd, EPOLLIN, on_readable);
	if (r) {
		free(s);
		return r;
	}
	s->next = srv.list;
	srv.list = s;
	ack(s);
	return 0;
}

int audit_serve_del(uint32_t worker_id)
{
	struct served *s = find(worker_id);

	if (!s)
		return -ENOENT;
	drop(s);
	return 0;
}

void audit_serve_synced(void)
{
	for (struct served *s = srv.list; s; s = s->next)
		ack(s);
}

int audit_serve_waiting(void)
{
	for (struct served *s = srv.list; s; s = s->next)
		if (s->wants_sync && s->map_len)
			return 1;
	return 0;
}

void audit_serve_tick(void)
{
	while (srv.graveyard) {
		struct served *s = srv.graveyard;

		srv.graveyard = s->next;
		free(s->rec);
		free(s->map);
		free(s);
	}
	for (struct served *s = srv.list; s; s = s->next)
		ack(s);
}

void audit_serve_close_all(void)
{
	while (srv.list)
		drop(srv.list);
	audit_serve_tick();
	if (srv.tok)
		json_tokener_free(srv.tok);
	srv.tok = NULL;
}
