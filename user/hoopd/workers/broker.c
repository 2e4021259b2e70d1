/*
 * The process split, broker side (workers.h, docs/architecture.md).
 *
 * Each worker is `hoopd --worker N <hoopd's options>`, exec'd fresh (no key, no BPF object, no
 * descriptor but its three channels: control on 3, audit on 4, catalog on 5), which sandboxes
 * itself once it has what it needs. The broker hands it sessions (wm_session and the two
 * sockets), the policy (the parsed struct, the masking key, the upstream CAs: files the worker
 * may not open), decisions and questions; it takes back session ends, answers, counters,
 * notifications and grants. Records go over the audit channel (audit_ipc.h) into the broker's
 * one chain.
 *
 * Placement (place()): a session goes to the worker that runs its attached cgroup's other
 * sessions, so that the cgroup's buffer budget and caps are counted in one process; the first
 * session of a cgroup goes to its home worker (by hash), or to the least busy one when the home
 * runs two or more sessions more. Agents spread over the workers; one agent's sessions share
 * one.
 *
 * A worker is not trusted: the broker reads only fixed-size structs whose strings it checks,
 * and JSON arrays it parses with json-c before it passes them on; anything else ends the
 * worker (it is lost: killed, its sessions' ends recorded as worker_lost, its held requests as
 * failed, and a new one started).
 */
#include "workers.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "approvals.h"
#include "audit_ipc.h"
#include "audit_store.h"
#include "catalog_fetch.h"
#include "daemon.h"
#include "isotime.h"
#include "log.h"
#include "mask_live.h"
#include "netns.h"
#include "policy.h"
#include "record.h"
#include "relay.h"
#include "session.h"
#include "tls.h"
#include "wchan.h"
#include "wire.h"

#define MAX_WORKERS 64
#define ASK_MS 1500	     /* a worker that has not answered a control request by then is left out */
#define LOST_AUDIT_MS 2000   /* a lost worker's records are read for this long at most */
#define STOP_MS 5000	     /* at stop, workers end their sessions within this, or are killed */
#define CA_MAX (4u << 20)    /* an upstream CA file sent to workers */
#define HELD_MAX 100000	     /* open approval requests the broker keeps per worker */
#define LOADERS_MAX 3	     /* catalog loaders at once per worker (its threads' number) */
#define NOTIFY_MAX 32	     /* notify commands running at once, all workers together */
#define CONN_JSON_MAX 16384  /* a connection object in a worker's status answer */

struct stub {
	struct agent a;
	struct listener *ln;
	struct cg_use *cgu;
	int started; /* its session_start is in the chain (the broker appended it) */
	struct stub *next;
};

struct held {
	struct wm_held h;
	struct held *next;
};

struct worker {
	int idx;
	pid_t pid;
	uint32_t audit_id;
	struct wchan ctl, cat;
	int up;		 /* spawned, channels open, not lost */
	int ready;	 /* said WM_READY */
	int dying;	 /* lost: its audit channel drains, then finish() */
	int audit_gone;	 /* its audit channel is closed */
	int64_t spawned_ms, died_ms, respawn_at;
	int quick_deaths; /* lost soon after it started, in a row: respawns back off */
	uint64_t started, lost; /* how many times it was started, and lost */
	struct wm_stats stats;
	struct stub *stubs;
	struct held *held;
	int nheld;
	int notify_credit; /* requests opened and not yet notified: one notify command each */
	int loaders;	   /* catalog loaders running for it */
	/* The one fingerprint grant its answer to a decision may make: for the owner of the
	 * held request's session, for the time the approver gave (and nothing else). */
	int grant_ok;
	char grant_owner[256];
	int64_t grant_ms;
	char why[200];
};

/* A control request the workers answer. */
enum ask_kind { ASK_STATUS = 1, ASK_APPROVALS, ASK_DECIDE };
struct ask {
	uint64_t handle;
	enum ask_kind kind;
	uint32_t token;
	uint64_t want; /* bit i: worker i is still to answer */
	int64_t deadline;
	struct json_object *items; /* status, approvals: the array built */
	int found, ok;
	char error[512];
	struct ask *next;
};

struct loader {
	pid_t pid;
	int64_t deadline;
	int worker; /* whose: counted against its LOADERS_MAX until reaped */
	struct loader *next;
};

void (*workers_answer)(uint64_t handle, const char *json);
void (*workers_status_json)(struct jbuf *j, const char *conns_json);

static struct worker g_w[MAX_WORKERS];
static int g_n;
static char **g_argv; /* the workers' argv: hoopd --worker N <hoopd's own options> */
static int g_argc;
static uint32_t g_audit_ids, g_tokens;
static struct ask *g_asks;
static struct loader *g_loaders;
static int g_stopping;

static int64_t now(void)
{
	return now_ms();
}

static struct worker *by_audit(uint32_t id)
{
	for (int i = 0; i < g_n; i++)
		if (g_w[i].audit_id == id && (g_w[i].up || g_w[i].dying))
			return &g_w[i];
	return NULL;
}

/* ---- the policy ----------------------------------------------------------------------- */

static int read_small(const char *path, char **out, size_t *len)
{
	FILE *f = fopen(path, "re");
	char *b = NULL;
	size_t n = 0, cap = 0;

	*out = NULL;
	*len = 0;
	if (!f)
		return -errno;
	for (;;) {
		if (n == cap) {
			char *nb;

			if (cap >= CA_MAX) {
				free(b);
				fclose(f);
				return -EFBIG;
			}
			cap = cap ? 2 * cap : 65536;
			if (!(nb = realloc(b, cap))) {
				free(b);
				fclose(f);
				return -ENOMEM;
			}
			b = nb;
		}
		size_t r = fread(b + n, 1, cap - n, f);

		if (!r)
			break;
		n += r;
	}
	fclose(f);
	*out = b;
	*len = n;
	return 0;
}

/* The policy message: the parsed policy, the masking key, each target's upstream CA. */
static int policy_msg(struct buf *m)
{
	struct wm_policy h = {.gen = hoopd.pol_gen, .policy_len = sizeof(struct policy)};
	char *ca[POLICY_MAX_TARGETS] = {0};
	char err[512];
	int r = 0;

	if (hoopd.pol->masking.enabled) {
		if (masking_read_key(&hoopd.pol->masking, hoopd.o.state_dir, h.key, err,
				     sizeof(err))) {
			log_error("engine workers: %s", err);
			return -1;
		}
		h.has_key = 1;
	}
	for (int i = 0; i < hoopd.pol->ntargets && i < POLICY_MAX_TARGETS; i++) {
		const char *p = tls_upstream_ca_path(i);
		size_t l = 0;

		if (p && (r = read_small(p, &ca[i], &l)))
			log_warn("engine workers: cannot read %s for target %s: %s (its TLS leg "
				 "fails to verify)",
				 p, hoopd.pol->targets[i].name, strerror(-r));
		h.ca_len[i] = (uint32_t)l;
	}
	r = buf_append(m, &h, sizeof(h)) || buf_append(m, hoopd.pol, sizeof(struct policy));
	for (int i = 0; i < POLICY_MAX_TARGETS; i++) {
		if (ca[i] && !r)
			r = buf_append(m, ca[i], h.ca_len[i]);
		free(ca[i]);
	}
	explicit_bzero(&h, sizeof(h));
	return r ? -1 : 0;
}

static void send_policy(struct worker *w, const struct buf *m)
{
	if (w->up && wchan_send(&w->ctl, WM_POLICY, 0, buf_head(m), m->len, NULL, 0))
		log_error("engine worker %d: cannot send it the policy", w->idx);
}

void workers_policy_changed(void)
{
	struct buf m = {0};

	if (!g_n)
		return;
	if (policy_msg(&m) == 0)
		for (int i = 0; i < g_n; i++)
			send_policy(&g_w[i], &m);
	explicit_bzero(buf_head(&m), m.len);
	buf_free(&m);
}

/* ---- losing a worker ------------------------------------------------------------------ */

static void ask_drop_worker(int idx);
static struct stub **stub_find(struct worker *w, const char *id);

/* Its channels are drained: record the end of its sessions and its held requests, start a
 * new one (soon, or later if it keeps dying). */
static void finish(struct worker *w)
{
	int64_t t = now();
	int nsess = 0, nheld = 0;

	for (struct stub *s = w->stubs, *n; s; s = n) {
		n = s->next;
		if (s->started) {
			struct ev_session_end e = {.reason = "worker_lost",
						   .duration_ms = t - s->a.started_ms};

			ev_session_end(&s->a, &e);
		}
		relay_remote_end(s->cgu, s->ln);
		free(s);
		nsess++;
	}
	w->stubs = NULL;
	/* Its catalog loaders serve no one now (reaped by the tick). */
	for (struct loader *l = g_loaders; l; l = l->next)
		if (l->worker == w->idx && l->pid > 0)
			kill(l->pid, SIGKILL);
	for (struct held *h = w->held, *n; h; h = n) {
		struct jbuf j;
		char ts[TS_ISO_US_LEN];

		n = h->next;
		ts_iso_us(ts);
		jb_init(&j);
		jb_obj_open(&j);
		jb_kv_str(&j, "ts", ts);
		jb_kv_str(&j, "kind", "approval_decision");
		jb_kv_str(&j, "session", h->h.session);
		jb_kv_str(&j, "approval", h->h.id);
		jb_kv_str(&j, "rule", h->h.rule);
		jb_kv_str(&j, "decision", "failed");
		jb_kv_str(&j, "why", "worker_lost");
		jb_obj_close(&j);
		if (j.oom || audit_append(j.s, j.len))
			log_error("engine worker %d: cannot record approval %s failed", w->idx,
				  h->h.id);
		jb_free(&j);
		free(h);
		nheld++;
	}
	w->held = NULL;
	w->nheld = 0;
	w->dying = 0;
	w->quick_deaths = t - w->spawned_ms < 10000 ? w->quick_deaths + 1 : 0;
	w->respawn_at = t + (w->quick_deaths ? (1000LL << (w->quick_deaths < 5 ? w->quick_deaths
										  : 5))
					     : 0);
	if (g_stopping && !nsess && !nheld)
		log_info("engine worker %d stopped (%s)", w->idx, w->why);
	else
		log_error("engine worker %d lost (%s): %d session(s) ended as worker_lost, %d "
			  "held statement(s) failed; %s",
			  w->idx, w->why, nsess, nheld,
			  g_stopping ? "hoopd is stopping" : "a new one starts");
}

static void worker_lost(struct worker *w, const char *why)
{
	int st;

	if (!w->up)
		return;
	w->up = 0;
	w->ready = 0;
	w->dying = 1;
	if (!g_stopping)
		w->lost++;
	w->died_ms = now();
	snprintf(w->why, sizeof(w->why), "%s", why);
	if (w->pid > 0) {
		/* one already dying keeps its own cause of death */
		kill(w->pid, SIGKILL);
		while (waitpid(w->pid, &st, 0) < 0 && errno == EINTR)
			;
		if (WIFSIGNALED(st) && WTERMSIG(st) != SIGKILL)
			snprintf(w->why, sizeof(w->why), "%s; killed by signal %d%s", why,
				 WTERMSIG(st),
				 WTERMSIG(st) == SIGSYS ? " (a call its sandbox forbids)" : "");
		else if (WIFEXITED(st))
			snprintf(w->why, sizeof(w->why), "%s; exited with status %d", why,
				 WEXITSTATUS(st));
		w->pid = 0;
	}
	/* What it said before it died (sessions whose start it recorded), then its records:
	 * the audit channel reports its end once it has read them all. */
	wchan_pump(&w->ctl);
	wchan_close(&w->ctl);
	wchan_close(&w->cat);
	ask_drop_worker(w->idx);
	if (w->audit_gone)
		finish(w);
}

/* A session's start is in the chain: if its worker is lost, its end goes there too. Known from
 * the record itself as the broker appends it, not from what the worker says. */
static void on_audit_started(uint32_t id, const char *session, void *arg)
{
	struct worker *w = by_audit(id);
	struct stub **pp = w ? stub_find(w, session) : NULL;

	if (pp)
		(*pp)->started = 1;
}

static void on_audit_lost(uint32_t id, enum audit_lost_why why, const char *detail, void *arg)
{
	struct worker *w = by_audit(id);

	if (!w)
		return;
	w->audit_gone = 1;
	if (w->dying)
		finish(w);
	else
		worker_lost(w, detail && *detail ? detail : "its audit channel closed");
}

/* ---- control requests ----------------------------------------------------------------- */

static struct ask *ask_new(uint64_t handle, enum ask_kind kind)
{
	struct ask *a = calloc(1, sizeof(*a));

	if (!a)
		return NULL;
	a->handle = handle;
	a->kind = kind;
	a->token = ++g_tokens ? g_tokens : ++g_tokens;
	a->deadline = now() + ASK_MS;
	a->items = json_object_new_array();
	a->next = g_asks;
	g_asks = a;
	return a;
}

static void ask_answer(struct ask *a)
{
	struct jbuf j;

	jb_init(&j);
	switch (a->kind) {
	case ASK_STATUS:
		workers_status_json(&j, json_object_to_json_string_ext(a->items,
								       JSON_C_TO_STRING_PLAIN));
		break;
	case ASK_APPROVALS:
		jb_obj_open(&j);
		jb_kv_bool(&j, "ok", 1);
		jb_key(&j, "approvals");
		jb_raw(&j, json_object_to_json_string_ext(a->items, JSON_C_TO_STRING_PLAIN));
		jb_obj_close(&j);
		break;
	case ASK_DECIDE:
		jb_obj_open(&j);
		jb_kv_bool(&j, "ok", a->found && a->ok);
		/* found: the request was pending here (a refusal), or not (gone): the central
		 * shipper tells the two apart */
		jb_kv_bool(&j, "found", a->found);
		if (!(a->found && a->ok))
			jb_kv_str(&j, "error", a->error[0] ? a->error
							   : "no pending approval by that id");
		jb_obj_close(&j);
		break;
	}
	workers_answer(a->handle, j.oom ? "{\"ok\":false,\"error\":\"out of memory\"}" : jb_str(&j));
	jb_free(&j);
}

static void ask_done(struct ask *a)
{
	for (struct ask **pp = &g_asks; *pp; pp = &(*pp)->next)
		if (*pp == a) {
			*pp = a->next;
			break;
		}
	ask_answer(a);
	json_object_put(a->items);
	free(a);
}

static void ask_check(struct ask *a)
{
	if (!a->want || (a->kind == ASK_DECIDE && a->found))
		ask_done(a);
}

static void ask_drop_worker(int idx)
{
	for (struct ask *a = g_asks, *n; a; a = n) {
		n = a->next;
		if (a->want & (1ULL << idx)) {
			a->want &= ~(1ULL << idx);
			ask_check(a);
		}
	}
}

/* Send the question to every worker that is up; answer at once when none is. */
static void ask_all(struct ask *a, uint8_t type, const void *body, size_t len)
{
	for (int i = 0; i < g_n; i++)
		if (g_w[i].up && !wchan_send(&g_w[i].ctl, type, a->token, body, len, NULL, 0))
			a->want |= 1ULL << i;
	ask_check(a);
}

void workers_ask_status(uint64_t handle)
{
	struct ask *a = ask_new(handle, ASK_STATUS);

	if (!a) {
		workers_answer(handle, "{\"ok\":false,\"error\":\"out of memory\"}");
		return;
	}
	ask_all(a, WM_STATUS, NULL, 0);
}

void workers_ask_approvals(uint64_t handle)
{
	struct ask *a = ask_new(handle, ASK_APPROVALS);

	if (!a) {
		workers_answer(handle, "{\"ok\":false,\"error\":\"out of memory\"}");
		return;
	}
	ask_all(a, WM_APPROVALS, NULL, 0);
}

/* The worker holding approval id, with its session's stub (for the owner), or NULL. */
static struct worker *holder(const char *id, struct stub **st)
{
	for (int i = 0; i < g_n; i++) {
		if (!g_w[i].up)
			continue;
		for (struct held *h = g_w[i].held; h; h = h->next)
			if (!strcmp(h->h.id, id)) {
				struct stub **pp = stub_find(&g_w[i], h->h.session);

				*st = pp ? *pp : NULL;
				return &g_w[i];
			}
	}
	return NULL;
}

void workers_decide(uint64_t handle, const char *id, const char *decision, const char *reason,
		    const char *scope, const char *sha256, long long for_s,
		    const struct approver *who)
{
	struct ask *a = ask_new(handle, ASK_DECIDE);
	struct wm_decide d = {.for_s = for_s, .uid = who->uid, .pid = who->pid,
			      .is_approver = (uint8_t)who->is_approver,
			      .central = (uint8_t)who->central};
	struct stub *st = NULL;
	struct worker *w;

	if (!a) {
		workers_answer(handle, "{\"ok\":false,\"error\":\"out of memory\"}");
		return;
	}
	/* Only the worker that holds it hears of it (who decides, and why, is nobody else's). */
	w = holder(id, &st);
	if (!w) {
		snprintf(a->error, sizeof(a->error),
			 "no pending approval %.40s (decided, timed out, or cancelled?)", id);
		ask_check(a);
		return;
	}
	snprintf(d.id, sizeof(d.id), "%s", id);
	snprintf(d.decision, sizeof(d.decision), "%s", decision);
	snprintf(d.name, sizeof(d.name), "%s", who->name);
	d.has_reason = reason != NULL;
	if ((d.has_scope = scope != NULL))
		snprintf(d.scope, sizeof(d.scope), "%s", scope);
	if ((d.has_sha256 = sha256 != NULL))
		snprintf(d.sha256, sizeof(d.sha256), "%s", sha256);
	w->grant_ok = 0;
	if (st && scope && !strcmp(scope, "fingerprint") && !strcmp(decision, "approve") &&
	    st->a.owner[0]) {
		w->grant_ok = 1;
		snprintf(w->grant_owner, sizeof(w->grant_owner), "%s", st->a.owner);
		w->grant_ms = (for_s > 0 ? (int64_t)for_s : 600) * 1000;
	}
	{
		size_t rl = reason ? strlen(reason) : 0;
		uint8_t *m = malloc(sizeof(d) + rl);

		if (!m) {
			snprintf(a->error, sizeof(a->error), "out of memory");
			ask_check(a);
			return;
		}
		memcpy(m, &d, sizeof(d));
		if (rl)
			memcpy(m + sizeof(d), reason, rl);
		if (!wchan_send(&w->ctl, WM_DECIDE, a->token, m, sizeof(d) + rl, NULL, 0))
			a->want |= 1ULL << w->idx;
		free(m);
	}
	ask_check(a);
}

static struct ask *ask_by_token(uint32_t token, int idx)
{
	for (struct ask *a = g_asks; a; a = a->next)
		if (a->token == token && (a->want & (1ULL << idx)))
			return a;
	return NULL;
}

/* The elements of a JSON array text, counted without parsing it (commas at depth 1 outside
 * strings), so that a worker cannot make json-c build millions of tiny objects. */
static size_t array_elements(const uint8_t *p, size_t len)
{
	size_t n = 0, depth = 0;
	int str = 0, any = 0;

	for (size_t i = 0; i < len; i++) {
		uint8_t c = p[i];

		if (str) {
			if (c == '\\')
				i++;
			else if (c == '"')
				str = 0;
			continue;
		}
		if (c == '"')
			str = 1;
		else if (c == '[' || c == '{')
			depth++;
		else if ((c == ']' || c == '}') && depth)
			depth--;
		else if (c == ',' && depth == 1)
			n++;
		if (depth >= 1 && c != ' ' && !(depth == 1 && (c == '[' || c == ']')))
			any = 1;
	}
	return any ? n + 1 : 0;
}

/* A worker's JSON array, checked and appended to the answer's, each object marked with the
 * worker's index: 0, or -1 (not an array of objects, or more than max of them). */
static int take_array(struct ask *a, int idx, const uint8_t *p, size_t len, size_t max)
{
	struct json_tokener *tok = json_tokener_new_ex(32);
	struct json_object *arr;
	int r = -1;

	if (!tok)
		return -1;
	if (array_elements(p, len) > max) {
		json_tokener_free(tok);
		return -1;
	}
	arr = len < INT32_MAX ? json_tokener_parse_ex(tok, (const char *)p, (int)len) : NULL;
	if (arr && json_tokener_get_parse_end(tok) == len &&
	    json_object_is_type(arr, json_type_array)) {
		size_t n = json_object_array_length(arr);

		r = 0;
		for (size_t i = 0; i < n; i++) {
			struct json_object *o = json_object_array_get_idx(arr, i);

			if (!json_object_is_type(o, json_type_object)) {
				r = -1;
				break;
			}
			json_object_object_add(o, "worker", json_object_new_int(idx));
			json_object_array_add(a->items, json_object_get(o));
		}
	}
	json_object_put(arr);
	json_tokener_free(tok);
	return r;
}

/* ---- what workers say ----------------------------------------------------------------- */

static int terminated(const char *s, size_t n)
{
	return memchr(s, 0, n) != NULL;
}

static struct stub **stub_find(struct worker *w, const char *id)
{
	for (struct stub **pp = &w->stubs; *pp; pp = &(*pp)->next)
		if (!strncmp((*pp)->a.id, id, sizeof((*pp)->a.id)))
			return pp;
	return NULL;
}

static int bad(struct worker *w, const char *what)
{
	log_error("engine worker %d broke the protocol (%s): cut off", w->idx, what);
	return -1;
}

static int on_grant(struct worker *w, const uint8_t *body, size_t len)
{
	struct wm_grant g;

	if (len != sizeof(g))
		return bad(w, "grant size");
	memcpy(&g, body, sizeof(g));
	if (!terminated(g.key, sizeof(g.key)) || !terminated(g.owner, sizeof(g.owner)))
		return bad(w, "grant");
	/* A worker's grant covers the other workers' agents only as the approver gave it: the
	 * owner of the request's session, the time asked for, once per decision. */
	if (!w->grant_ok || strcmp(g.owner, w->grant_owner) || g.for_ms != w->grant_ms)
		return bad(w, "a grant no decision asked for");
	w->grant_ok = 0;
	for (int i = 0; i < g_n; i++)
		if (&g_w[i] != w && g_w[i].up)
			(void)wchan_send(&g_w[i].ctl, WM_GRANT, 0, &g, sizeof(g), NULL, 0);
	return 0;
}

static int on_held(struct worker *w, int open, const uint8_t *body, size_t len)
{
	struct wm_held h;

	if (len != sizeof(h))
		return bad(w, "held size");
	memcpy(&h, body, sizeof(h));
	if (!terminated(h.id, sizeof(h.id)) || !terminated(h.session, sizeof(h.session)) ||
	    !terminated(h.rule, sizeof(h.rule)))
		return bad(w, "held");
	if (open) {
		struct held *n;

		if (!stub_find(w, h.session))
			return bad(w, "a held request of a session it does not run");
		w->notify_credit++;
		if (w->nheld >= HELD_MAX || !(n = calloc(1, sizeof(*n))))
			return 0; /* only the worker_lost record of it is lost */
		n->h = h;
		n->next = w->held;
		w->held = n;
		w->nheld++;
		return 0;
	}
	for (struct held **pp = &w->held; *pp; pp = &(*pp)->next)
		if (!strcmp((*pp)->h.id, h.id)) {
			struct held *d = *pp;

			*pp = d->next;
			free(d);
			w->nheld--;
			break;
		}
	return 0;
}

static int on_answer(struct worker *w, uint8_t type, uint32_t token, const uint8_t *body,
		     size_t len)
{
	struct ask *a = ask_by_token(token, w->idx);

	if (!a)
		return 0; /* late: the client had its answer */
	a->want &= ~(1ULL << w->idx);
	if (type == WM_DECIDED) {
		struct wm_decided d;

		if (a->kind != ASK_DECIDE || len != sizeof(d))
			return bad(w, "decided");
		memcpy(&d, body, sizeof(d));
		if (!terminated(d.error, sizeof(d.error)))
			return bad(w, "decided error");
		w->grant_ok = 0; /* its grant came before its answer, or never */
		if (d.found) {
			a->found = 1;
			a->ok = d.ok;
			snprintf(a->error, sizeof(a->error), "%s", d.error);
		} else if (!a->error[0]) {
			snprintf(a->error, sizeof(a->error), "%s", d.error);
		}
	} else if (type == WM_STATUS_REPLY) {
		if (a->kind != ASK_STATUS || len < sizeof(struct wm_stats))
			return bad(w, "status");
		size_t nst = 0;

		for (struct stub *st = w->stubs; st; st = st->next)
			nst++;
		if (len - sizeof(struct wm_stats) > (nst + 1) * CONN_JSON_MAX)
			return bad(w, "a status answer larger than its sessions");
		memcpy(&w->stats, body, sizeof(w->stats));
		if (take_array(a, w->idx, body + sizeof(struct wm_stats), len - sizeof(struct wm_stats),
			       nst + 1))
			return bad(w, "status connections");
	} else {
		if (a->kind != ASK_APPROVALS || take_array(a, w->idx, body, len, (size_t)w->nheld + 1))
			return bad(w, "approvals");
	}
	ask_check(a);
	return 0;
}

static int on_ctl_msg(struct wchan *c, uint8_t type, uint32_t token, const uint8_t *body,
		      size_t len, int *fds, int nfds)
{
	struct worker *w = c->owner;
	struct wm_ended e;
	struct stub **pp;

	for (int i = 0; i < nfds; i++)
		close(fds[i]);
	if (nfds)
		return bad(w, "descriptors from a worker");
	switch (type) {
	case WM_READY:
		w->ready = 1;
		log_info("engine worker %d ready (pid %d)", w->idx, (int)w->pid);
		return 0;
	case WM_ENDED:
		if (len != sizeof(e))
			return bad(w, "ended");
		memcpy(&e, body, sizeof(e));
		if ((pp = stub_find(w, e.id))) {
			struct stub *s = *pp;

			*pp = s->next;
			relay_remote_end(s->cgu, s->ln);
			free(s);
		}
		return 0;
	case WM_STATS:
		if (len != sizeof(w->stats))
			return bad(w, "stats");
		memcpy(&w->stats, body, sizeof(w->stats));
		return 0;
	case WM_NOTIFY:
		/* one JSON line for the command's stdin, which reads it as the agent's data */
		if (!len || len > (1u << 20) || memchr(body, '\n', len))
			return bad(w, "notify");
		/* one command per request it opened, and only so many at once */
		if (w->notify_credit <= 0)
			return bad(w, "a notification for no request");
		w->notify_credit--;
		if (approvals_notify_running() >= NOTIFY_MAX)
			log_warn("approvals: %d notify commands still run; this one is skipped",
				 NOTIFY_MAX);
		else
			(void)approvals_run_notify((const char *)body, len);
		return 0;
	case WM_GRANT_MADE:
		return on_grant(w, body, len);
	case WM_HELD:
	case WM_UNHELD:
		return on_held(w, type == WM_HELD, body, len);
	case WM_DECIDED:
	case WM_STATUS_REPLY:
	case WM_APPROVALS_REPLY:
		return on_answer(w, type, token, body, len);
	default:
		return bad(w, "unknown message");
	}
}

static void on_ctl_end(struct wchan *c, const char *why)
{
	worker_lost(c->owner, why);
}

/* The catalog channel: a loader for the worker's thread. */
static int on_cat_msg(struct wchan *c, uint8_t type, uint32_t token, const uint8_t *body,
		      size_t len, int *fds, int nfds)
{
	struct worker *w = c->owner;
	struct catalog_remote_req r;
	struct wm_catfd ans = {0};
	struct loader *l;
	int fd = -1;
	pid_t pid = 0;

	for (int i = 0; i < nfds; i++)
		close(fds[i]);
	if (nfds || type != WM_CATREQ || len != sizeof(r))
		return bad(w, "catalog request");
	memcpy(&r, body, sizeof(r));
	if (w->loaders >= LOADERS_MAX) {
		snprintf(ans.error, sizeof(ans.error), "%d catalog loads run for this worker already",
			 LOADERS_MAX);
	} else if (catalog_spawn_for(&r, &fd, &pid, ans.error, sizeof(ans.error)) == 0) {
		ans.ok = 1;
		if ((l = calloc(1, sizeof(*l)))) {
			l->pid = pid;
			l->worker = w->idx;
			w->loaders++;
			l->deadline = now() + CATALOG_REMOTE_MS;
			l->next = g_loaders;
			g_loaders = l;
		} else {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			close(fd);
			ans.ok = 0;
			snprintf(ans.error, sizeof(ans.error), "out of memory");
		}
	}
	if (wchan_send(&w->cat, WM_CATFD, token, &ans, sizeof(ans), ans.ok ? &fd : NULL,
		       ans.ok ? 1 : 0))
		log_warn("engine worker %d: cannot answer its catalog request", w->idx);
	if (fd >= 0)
		close(fd);
	return 0;
}

static void on_cat_end(struct wchan *c, const char *why)
{
	struct worker *w = c->owner;

	if (w->up)
		worker_lost(w, "its catalog channel closed");
}

/* ---- starting workers ----------------------------------------------------------------- */

static int spawn(struct worker *w)
{
	int ctl[2] = {-1, -1}, aud[2] = {-1, -1}, cat[2] = {-1, -1};
	int big = 4 << 20;
	char idx[16];
	sigset_t none;

	snprintf(idx, sizeof(idx), "%d", w->idx);
	g_argv[2] = idx;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ctl) ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, aud) ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, cat)) {
		log_error("engine worker %d: socketpair: %s", w->idx, strerror(errno));
		goto fail;
	}
	for (int i = 0; i < 2; i++) {
		setsockopt(ctl[i], SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof(big));
		setsockopt(aud[i], SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof(big));
	}
	sigemptyset(&none);
	w->pid = fork();
	if (w->pid < 0) {
		log_error("engine worker %d: fork: %s", w->idx, strerror(errno));
		w->pid = 0;
		goto fail;
	}
	if (w->pid == 0) {
		/* async-signal-safe calls only: the broker has threads */
		int hi[3];

		sigprocmask(SIG_SETMASK, &none, NULL);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		hi[0] = fcntl(ctl[1], F_DUPFD, 16);
		hi[1] = fcntl(aud[1], F_DUPFD, 16);
		hi[2] = fcntl(cat[1], F_DUPFD, 16);
		if (hi[0] < 0 || hi[1] < 0 || hi[2] < 0 || dup2(hi[0], 3) != 3 ||
		    dup2(hi[1], 4) != 4 || dup2(hi[2], 5) != 5)
			_exit(127);
		if (close_range(6, ~0U, 0))
			for (int fd = 6; fd < 65536; fd++)
				close(fd);
		execv("/proc/self/exe", g_argv);
		_exit(127);
	}
	close(ctl[1]);
	close(aud[1]);
	close(cat[1]);
	w->spawned_ms = now();
	w->started++;
	w->audit_id = ++g_audit_ids;
	w->audit_gone = 0;
	memset(&w->stats, 0, sizeof(w->stats));
	if (wchan_open(&w->ctl, ctl[0], WCHAN_MSG_MAX, on_ctl_msg, on_ctl_end, w)) {
		close(cat[0]);
		close(aud[0]);
		goto killit;
	}
	if (wchan_open(&w->cat, cat[0], 4096, on_cat_msg, on_cat_end, w)) {
		wchan_close(&w->ctl);
		close(aud[0]);
		goto killit;
	}
	if (audit_serve_add(aud[0], w->audit_id)) {
		wchan_close(&w->ctl);
		wchan_close(&w->cat);
		goto killit;
	}
	w->up = 1;
	{
		struct buf m = {0};

		if (policy_msg(&m) == 0)
			send_policy(w, &m);
		explicit_bzero(buf_head(&m), m.len);
		buf_free(&m);
	}
	log_info("engine worker %d started (pid %d)", w->idx, (int)w->pid);
	return 0;
killit:
	kill(w->pid, SIGKILL);
	waitpid(w->pid, NULL, 0);
	w->pid = 0;
	return -1;
fail:
	for (int i = 0; i < 2; i++) {
		if (ctl[i] >= 0)
			close(ctl[i]);
		if (aud[i] >= 0)
			close(aud[i]);
		if (cat[i] >= 0)
			close(cat[i]);
	}
	return -1;
}

/*
 * Placement: the worker that runs the cgroup's other sessions, so that its buffer budget,
 * held-statement cap and grants are counted in one process. A cgroup with none goes to its
 * home worker (where its cap_cgid hashes: the worker whose statement cache has its shapes),
 * unless that one runs PLACE_SLACK or more sessions beyond the least busy worker: then to that
 * one. Agents spread over the workers when the load is uneven, and keep their worker when not.
 */
#define PLACE_SLACK 2

static struct worker *place(const struct session *s, const struct cg_use *cgu)
{
	uint64_t h = s->cap_cgid * 0x9E3779B97F4A7C15ULL;
	int base = (int)((h >> 32) % (uint64_t)g_n);
	struct worker *best = NULL, *home = NULL;
	size_t best_n = SIZE_MAX, home_n = 0;

	for (int k = 0; k < g_n; k++) {
		struct worker *w = &g_w[(base + k) % g_n];
		size_t n = 0;

		if (!w->up)
			continue;
		for (const struct stub *st = w->stubs; st; st = st->next, n++)
			if (st->cgu == cgu)
				return w;
		if (!home) {
			home = w;
			home_n = n;
		}
		if (n < best_n) {
			best = w;
			best_n = n;
		}
	}
	return home && home_n < best_n + PLACE_SLACK ? home : best;
}

static int handoff(const struct session *s, struct cg_use *cgu)
{
	struct wm_session m = {.agent = s->agent, .accel = (uint8_t)s->accel,
			       .connecting = (uint8_t)s->connecting};
	int fds[2] = {s->a.fd, s->s.fd};
	struct worker *first = place(s, cgu);
	struct stub *st;

	if (!first)
		return -1;
	/* The placed worker; if its channel fails (it is being lost), any other that is up. */
	for (int k = -1; k < g_n; k++) {
		struct worker *w = k < 0 ? first : &g_w[k];

		if (!w->up || (k >= 0 && w == first))
			continue;
		if (!(st = calloc(1, sizeof(*st))))
			return -1;
		if (wchan_send(&w->ctl, WM_SESSION, 0, &m, sizeof(m), fds, 2)) {
			free(st);
			continue;
		}
		st->a = s->agent;
		st->ln = s->ln;
		st->cgu = cgu;
		st->next = w->stubs;
		w->stubs = st;
		return 0;
	}
	return -1;
}

int workers_start(int n, int argc, char **argv)
{
	if (n > MAX_WORKERS)
		n = MAX_WORKERS;
	g_argv = calloc((size_t)argc + 3, sizeof(*g_argv));
	if (!g_argv)
		return -1;
	g_argv[0] = "hoopd";
	g_argv[1] = "--worker";
	g_argv[2] = NULL; /* the index, at each spawn */
	for (int i = 1; i < argc; i++)
		g_argv[i + 2] = argv[i];
	g_argc = argc + 2;
	audit_serve_on_lost(on_audit_lost, NULL);
	audit_serve_on_started(on_audit_started);
	audit_serve_record_max(hoopd.o.max_message + (1u << 20));
	g_n = n;
	for (int i = 0; i < n; i++) {
		g_w[i].idx = i;
		if (spawn(&g_w[i]))
			return -1;
	}
	relay_handoff = handoff;
	return 0;
}

int workers_count(void)
{
	return g_n;
}

void workers_status(struct jbuf *j)
{
	jb_key(j, "workers");
	jb_arr_open(j);
	for (int i = 0; i < g_n; i++) {
		const struct worker *w = &g_w[i];
		int n = 0;

		for (const struct stub *s = w->stubs; s; s = s->next)
			n++;
		jb_obj_open(j);
		jb_kv_int(j, "worker", i);
		jb_kv_int(j, "pid", w->up ? w->pid : 0);
		jb_kv_bool(j, "ready", w->ready);
		jb_kv_int(j, "sessions", n);
		jb_kv_int(j, "held", w->nheld);
		jb_kv_uint(j, "started", w->started);
		jb_kv_uint(j, "lost", w->lost);
		jb_obj_close(j);
	}
	jb_arr_close(j);
}

void workers_add_stats(struct hoopd_stats *st, struct stmtcache_stats *sc,
		       struct tls_counters *tls)
{
	for (int i = 0; i < g_n; i++) {
		const struct hoopd_stats *w = &g_w[i].stats.st;
		uint64_t *d = (uint64_t *)st;
		const uint64_t *s = (const uint64_t *)w;

		_Static_assert(sizeof(struct hoopd_stats) % sizeof(uint64_t) == 0,
			       "hoopd_stats is counters only");
		for (size_t k = 0; st && k < sizeof(*st) / sizeof(uint64_t); k++)
			d[k] += s[k];
		if (tls) {
			tls->kept += g_w[i].stats.tls.kept;
			tls->minted += g_w[i].stats.tls.minted;
			tls->refused += g_w[i].stats.tls.refused;
		}
		if (sc) {
			sc->entries += g_w[i].stats.sc.entries;
			sc->hits += g_w[i].stats.sc.hits;
			sc->misses += g_w[i].stats.sc.misses;
		}
	}
}

void workers_reap(void)
{
	for (int i = 0; i < g_n; i++) {
		struct worker *w = &g_w[i];
		int st;
		char why[96];

		if (w->pid <= 0 || waitpid(w->pid, &st, WNOHANG) != w->pid)
			continue;
		w->pid = 0;
		if (WIFSIGNALED(st))
			snprintf(why, sizeof(why), "killed by signal %d", WTERMSIG(st));
		else
			snprintf(why, sizeof(why), "exited with status %d", WEXITSTATUS(st));
		worker_lost(w, why);
	}
	for (struct loader **pp = &g_loaders; *pp;) {
		struct loader *l = *pp;

		if (waitpid(l->pid, NULL, WNOHANG) == l->pid) {
			*pp = l->next;
			if (l->worker >= 0 && l->worker < g_n && g_w[l->worker].loaders > 0)
				g_w[l->worker].loaders--;
			free(l);
		} else {
			pp = &l->next;
		}
	}
}

void workers_tick(void)
{
	int64_t t = now();

	for (struct ask *a = g_asks, *n; a; a = n) {
		n = a->next;
		if (t >= a->deadline) {
			a->want = 0;
			ask_check(a);
		}
	}
	for (struct loader *l = g_loaders; l; l = l->next)
		if (t >= l->deadline) {
			kill(l->pid, SIGKILL); /* reaped on its SIGCHLD */
			l->deadline = INT64_MAX;
		}
	for (int i = 0; i < g_n; i++) {
		struct worker *w = &g_w[i];

		if (w->dying && t - w->died_ms > LOST_AUDIT_MS) {
			audit_serve_del(w->audit_id);
			w->audit_gone = 1;
			finish(w);
		}
		if (!w->up && !w->dying && !g_stopping && t >= w->respawn_at && spawn(w))
			w->respawn_at = t + 1000;
	}
}

static int g_stop_left;
static int64_t g_stop_deadline;

static void stop_tick(void)
{
	workers_reap();
	workers_tick();
	g_stop_left = 0;
	for (int i = 0; i < g_n; i++)
		g_stop_left += g_w[i].up || g_w[i].dying;
	if (!g_stop_left) {
		loop_stop();
		return;
	}
	if (now() >= g_stop_deadline)
		for (int i = 0; i < g_n; i++)
			if (g_w[i].up)
				worker_lost(&g_w[i], "did not stop in time");
}

void workers_stop(void)
{
	if (!g_n)
		return;
	g_stopping = 1;
	relay_handoff = NULL;
	for (int i = 0; i < g_n; i++)
		if (g_w[i].up)
			(void)wchan_send(&g_w[i].ctl, WM_STOP, 0, NULL, 0, NULL, 0);
	g_stop_deadline = now() + STOP_MS;
	stop_tick();
	if (g_stop_left)
		loop_run(100, stop_tick);
	for (struct loader *l = g_loaders, *n; l; l = n) {
		n = l->next;
		kill(l->pid, SIGKILL);
		waitpid(l->pid, NULL, 0);
		free(l);
	}
	g_loaders = NULL;
	while (g_asks) {
		g_asks->want = 0;
		ask_check(g_asks);
	}
}
