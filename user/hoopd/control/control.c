/*
 * The control socket hoopctl talks to: a Unix stream socket, one JSON request line in, one JSON
 * response line out. The socket is mode 0666 because approvers are ordinary users; every
 * request is authorised by the caller's SO_PEERCRED uid: root (or hoopd's own uid) may do
 * everything, an approver named in the policy may list and decide approvals (and ping),
 * anyone else is refused. So that no local user can lock the others out, slots are shared
 * fairly: each uid has a few, uids that may do nothing have fewer, and some are kept for root.
 */
#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "approvals.h"
#include "cgroup.h"
#include "daemon.h"
#include "attach.h"
#include "bpfctl.h"
#include "control.h"
#include "central_child.h"
#include "netns.h"
#include "relay.h"
#include "reload.h"
#include "sockdiag.h"
#include "policy.h"
#include "log.h"
#include "stmtcache.h"
#include "tls.h"
#include "workers.h"

#define CTL_MAX_REQ 65536

struct ctl_client {
	struct loop_watch w;
	char *buf;
	size_t len;
	uid_t uid;
	pid_t pid;
	char *out;
	size_t out_len, out_off;
	int64_t since;
	int other; /* neither root nor an approver: may only be refused */
	uint64_t handle; /* deferred: the workers answer (ctl_answer) */
	struct ctl_client *prev, *next;
};

static struct ctl_client *g_clients;

static struct loop_watch g_ctl;
static int g_ctl_fd = -1;
/* The socket is open to every local user (requests are authorised one by one), so the number
 * of clients at once is bounded: in all, per uid, and for uids that may not ask for anything
 * (they only ever get a refusal); the last CTL_ROOT_RESERVED slots are root's (or hoopd's own
 * uid's). */
#define CTL_MAX_CLIENTS 64
#define CTL_ROOT_RESERVED 16
#define CTL_MAX_PER_UID 8
#define CTL_MAX_PER_OTHER_UID 2
#define CTL_MAX_OTHERS 16
/* hoopctl sends its request at once and reads the answer at once: a client that has not sent
 * a whole request in CTL_REQ_MS, or is still there after CTL_LIFE_MS, is dropped (root gets
 * the longer CTL_ROOT_LIFE_MS). A request the engine workers answer (defer) waits for them:
 * the broker answers without a worker that is silent for 1.5 s (ASK_MS, broker.c), well
 * inside CTL_LIFE_MS. */
#define CTL_REQ_MS 1000
#define CTL_LIFE_MS 3000
#define CTL_ROOT_LIFE_MS 5000
static int g_nclients;

static int privileged(uid_t uid)
{
	return uid == 0 || uid == geteuid();
}

static void client_free(struct ctl_client *c)
{
	g_nclients--;
	if (c->prev)
		c->prev->next = c->next;
	else
		g_clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	loop_del(&c->w);
	close(c->w.fd);
	free(c->buf);
	free(c->out);
	free(c);
}

static void reply_err(struct jbuf *j, const char *msg)
{
	jb_obj_open(j);
	jb_kv_bool(j, "ok", 0);
	jb_kv_str(j, "error", msg);
	jb_obj_close(j);
}

static const char *jstr(struct json_object *req, const char *k)
{
	struct json_object *v;

	if (!json_object_object_get_ex(req, k, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static int jbool(struct json_object *req, const char *k)
{
	struct json_object *v;

	return json_object_object_get_ex(req, k, &v) && json_object_get_boolean(v);
}

static int resolve(struct json_object *req, char *path, size_t n, uint64_t *id, char *err,
		   size_t errn)
{
	const char *cg = jstr(req, "cgroup");

	if (!cg || !*cg) {
		snprintf(err, errn, "missing cgroup path");
		return -EINVAL;
	}
	if (cg_resolve(cg, path, n, err, errn))
		return -ENOENT;
	if (cg_id(path, id)) {
		snprintf(err, errn, "%s: %s", path, strerror(errno));
		return -errno;
	}
	return 0;
}

static void do_attach(struct json_object *req, struct jbuf *j, struct ctl_client *cl)
{
	char path[PATH_MAX], err[1024] = "", mnt[PATH_MAX], self[PATH_MAX * 2];
	const char *owner = jstr(req, "owner");
	struct json_object *labels;
	const char *labels_json = "{}";
	uint64_t id;
	int count = 0;
	struct jbuf ex;

	if (resolve(req, path, sizeof(path), &id, err, sizeof(err))) {
		reply_err(j, err);
		return;
	}
	/* Attaching hoopd's own cgroup (or an ancestor) would redirect hoopd's upstream
	 * connections into itself. */
	if (!cg_v2_mount(mnt, sizeof(mnt))) {
		size_t l = strlen(path);

		snprintf(self, sizeof(self), "%s%s", mnt, hoopd.self_cgroup);
		if (!strncmp(self, path, l) && (self[l] == '\0' || self[l] == '/')) {
			snprintf(err, sizeof(err),
				 "refusing to attach %s: hoopd itself runs in %s, and its own "
				 "database connections must not be redirected; move hoopd or the "
				 "agents to another cgroup",
				 path, self);
			reply_err(j, err);
			return;
		}
	}
	if (json_object_object_get_ex(req, "labels", &labels) &&
	    json_object_is_type(labels, json_type_object))
		labels_json = json_object_to_json_string_ext(
			labels, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	if (attach_add(path, id, owner, labels_json, err, sizeof(err))) {
		reply_err(j, err);
		return;
	}
	log_info("attached cgroup %s (id %llu, owner %s) at the request of uid %u pid %d", path,
		 (unsigned long long)id, owner && *owner ? owner : "-", cl->uid, cl->pid);
	jb_init(&ex);
	err[0] = '\0';
	if (sockdiag_existing(path, jbool(req, "reset_existing"), &ex, &count, err, sizeof(err)))
		log_warn("listing connections that predate the attach of %s: %s", path, err);
	jb_obj_open(j);
	jb_kv_bool(j, "ok", 1);
	jb_kv_str(j, "cgroup", path);
	jb_kv_uint(j, "cgroup_id", id);
	jb_kv_str(j, "owner", owner ? owner : "");
	jb_key(j, "existing");
	jb_raw(j, ex.len ? jb_str(&ex) : "[]");
	jb_kv_bool(j, "reset_existing", jbool(req, "reset_existing"));
	if (err[0])
		jb_kv_str(j, "existing_error", err);
	jb_obj_close(j);
	jb_free(&ex);
}

static void do_detach(struct json_object *req, struct jbuf *j, struct ctl_client *cl)
{
	char path[PATH_MAX], err[1024] = "";
	const char *cg = jstr(req, "cgroup");
	uint64_t id = 0;
	struct attachment *a = NULL;

	/* A cgroup that was removed can still be detached by the path it was attached with. */
	if (resolve(req, path, sizeof(path), &id, err, sizeof(err)) == 0)
		a = attach_find_id(id);
	if (!a && cg) {
		for (a = hoopd.attachments; a; a = a->next)
			if (!strcmp(a->path, cg))
				break;
		if (a)
			id = a->cgroup_id;
	}
	if (!a && !(id && bpfctl_is_attached(id))) {
		snprintf(err, sizeof(err), "%s is not attached", cg ? cg : "?");
		reply_err(j, err);
		return;
	}
	if (a)
		snprintf(path, sizeof(path), "%s", a->path); /* a is freed by attach_remove */
	if (attach_remove(id, err, sizeof(err))) {
		reply_err(j, err);
		return;
	}
	log_info("detached cgroup %s (id %llu) at the request of uid %u pid %d", path,
		 (unsigned long long)id, cl->uid, cl->pid);
	jb_obj_open(j);
	jb_kv_bool(j, "ok", 1);
	jb_kv_uint(j, "cgroup_id", id);
	jb_obj_close(j);
}

void control_status_json(struct jbuf *j, const char *conns_json)
{
	struct hoopd_stats st = hoopd.st;
	struct tls_counters tc;
	struct stmtcache_stats sc;
	uint64_t k[HOOP_ERR_MAX] = {0};
	static const char *const names[HOOP_ERR_MAX] = {
		"stash_full",	   "rekey_failed", "sockhash_failed", "no_listener",
		"redirected",	   "fail_open",	   "accel_miss",      "accel_hit"};

	jb_obj_open(j);
	jb_kv_bool(j, "ok", 1);
	jb_kv_str(j, "version", HOOPD_VERSION);
	jb_kv_int(j, "pid", getpid());
	jb_kv_str(j, "policy", hoopd.o.policy_path);
	jb_kv_int(j, "listen_port", hoopd.o.listen_port);
	jb_kv_str(j, "accel", hoopd.o.accel == ACCEL_SOCKMAP ? "sockmap" : "off");
	jb_kv_bool(j, "fail_open", hoopd.o.fail_open);
	jb_key(j, "targets");
	jb_arr_open(j);
	for (int i = 0; i < hoopd.pol->ntargets; i++) {
		jb_obj_open(j);
		jb_kv_str(j, "name", hoopd.pol->targets[i].name);
		jb_kv_str(j, "protocol", policy_protocol_name(hoopd.pol->targets[i].protocol));
		jb_key(j, "ports");
		jb_arr_open(j);
		for (int p = 0; p < hoopd.pol->targets[i].nports; p++)
			jb_int_val(j, hoopd.pol->targets[i].ports[p]);
		jb_arr_close(j);
		jb_obj_close(j);
	}
	jb_arr_close(j);
	jb_key(j, "attachments");
	jb_arr_open(j);
	for (struct attachment *a = hoopd.attachments; a; a = a->next) {
		jb_obj_open(j);
		jb_kv_str(j, "cgroup", a->path);
		jb_kv_uint(j, "cgroup_id", a->cgroup_id);
		jb_kv_str(j, "owner", a->owner);
		jb_key(j, "labels");
		jb_raw(j, a->labels_json[0] ? a->labels_json : "{}");
		jb_kv_int(j, "attached_at", a->attached_at);
		jb_obj_close(j);
	}
	jb_arr_close(j);
	netns_status(j);
	stmtcache_stats(&sc);
	memset(&tc, 0, sizeof(tc));
	workers_add_stats(&st, &sc, &tc);
	jb_key(j, "connections");
	if (conns_json)
		jb_raw(j, conns_json); /* the workers' (broker.c checks and rebuilds them) */
	else
		relay_status_conns(j);
	relay_status_limits(j, &st);
	if (workers_count())
		workers_status(j);
	tls_status(j, &tc, workers_count() ? workers_count() : 1);
	central_status_json(j);
	jb_key(j, "stats");
	jb_obj_open(j);
	jb_kv_uint(j, "connections_accepted", st.conns_accepted);
	jb_kv_uint(j, "connections_active", st.conns_active);
	jb_kv_uint(j, "connections_refused_no_stash", st.conns_refused_nostash);
	jb_kv_uint(j, "connections_upstream_failed", st.conns_upstream_failed);
	jb_kv_uint(j, "bytes_agent_to_db", st.bytes_agent_to_db);
	jb_kv_uint(j, "bytes_db_to_agent", st.bytes_db_to_agent);
	jb_kv_uint(j, "statement_shapes_kept", sc.entries);
	jb_kv_uint(j, "statement_shape_hits", sc.hits);
	jb_kv_uint(j, "statement_shape_misses", sc.misses);
	jb_obj_close(j);
	bpfctl_counters(k);
	jb_key(j, "bpf");
	jb_obj_open(j);
	for (int i = 0; i < HOOP_ERR_MAX; i++)
		if (names[i])
			jb_kv_uint(j, names[i], k[i]);
	jb_obj_close(j);
	jb_obj_close(j);
}

static void reply_ok(struct jbuf *j)
{
	jb_obj_open(j);
	jb_kv_bool(j, "ok", 1);
	jb_obj_close(j);
}

static void do_ping(struct json_object *req, struct jbuf *j, struct ctl_client *cl)
{
	jb_obj_open(j);
	jb_kv_bool(j, "ok", 1);
	jb_kv_str(j, "version", HOOPD_VERSION);
	jb_obj_close(j);
}

static uint64_t g_handles, g_deferred;

/* The answer comes later, from the engine workers (ctl_answer); it may also come at once,
 * before handle() returns, and free the client: on_client learns the handle from g_deferred. */
static uint64_t defer(struct ctl_client *cl)
{
	cl->handle = ++g_handles;
	g_deferred = cl->handle;
	return cl->handle;
}

static void do_status_cmd(struct json_object *req, struct jbuf *j, struct ctl_client *cl)
{
	if (workers_count())
		workers_ask_status(defer(cl));
	else
		control_status_json(j, NULL);
}

static void do_approvals(struct json_object *req, struct jbuf *j, struct ctl_client *cl)
{
	if (workers_count()) {
		workers_ask_approvals(defer(cl));
		return;
	}
	jb_obj_open(j);
	jb_kv_bool(j, "ok", 1);
	approvals_list(j);
	jb_obj_close(j);
}

/*
 * The central shipper relays a decision taken in the fleet's central database
 * (docs/fleet.md): "central_by" names the database role that decided, which the database's own
 * authentication proved and hoop.decide checked (membership of hoop_approver, not self, the
 * sha256). Only root (the shipper runs as root, hoopd's child) may speak for someone else; the
 * sha256 and the owner rule are checked here again as for any decision.
 */
static int central_by_ok(const char *s)
{
	size_t n = strlen(s);

	if (!n || n > 63)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x21 || s[i] == 0x7f || s[i] == '"' || s[i] == '\\')
			return 0;
	return 1;
}

/* approve or deny: the decision is the command's name */
static void do_decide(struct json_object *req, struct jbuf *j, struct ctl_client *cl)
{
	char err[512];
	struct json_object *fo;
	long long for_s = 0;
	const char *central = jstr(req, "central_by");
	struct approver who;
	int r;

	if (json_object_object_get_ex(req, "for_s", &fo))
		for_s = json_object_get_int64(fo);
	if (!jstr(req, "id")) {
		reply_err(j, "missing approval id");
		return;
	}
	approvals_who(cl->uid, cl->pid, &who);
	if (json_object_object_get_ex(req, "central_by", NULL)) {
		if (!privileged(cl->uid)) {
			reply_err(j, "permission denied: only root relays central decisions");
			return;
		}
		if (!central || !central_by_ok(central)) {
			reply_err(j, "central_by is not a database role name (1 to 63 printable "
				     "characters)");
			return;
		}
		snprintf(who.name, sizeof(who.name), "%s", central);
		who.is_approver = 1; /* hoop.decide runs for members of hoop_approver only */
		who.central = 1;
	}
	if (workers_count()) {
		workers_decide(defer(cl), jstr(req, "id"), jstr(req, "cmd"), jstr(req, "reason"),
			       jstr(req, "scope"), jstr(req, "sha256"), for_s, &who);
		return;
	}
	r = approvals_decide_as(jstr(req, "id"), jstr(req, "cmd"), jstr(req, "reason"),
				jstr(req, "scope"), jstr(req, "sha256"), for_s, &who, err,
				sizeof(err));
	if (r) {
		jb_obj_open(j);
		jb_kv_bool(j, "ok", 0);
		jb_kv_bool(j, "found", r != -ENOENT);
		jb_kv_str(j, "error", err);
		jb_obj_close(j);
	} else {
		reply_ok(j);
	}
}

static void do_reload(struct json_object *req, struct jbuf *j, struct ctl_client *cl)
{
	char err[1024];

	if (hoopd_reload_policy(err, sizeof(err)))
		reply_err(j, err);
	else
		reply_ok(j);
}

/* Who may run a command: root (or hoopd's own uid) may run every one; an approver named in the
 * policy only those marked CTL_APPROVERS. */
enum ctl_who { CTL_ROOT, CTL_APPROVERS };

static const struct ctl_cmd {
	const char *name;
	enum ctl_who who;
	void (*run)(struct json_object *req, struct jbuf *j, struct ctl_client *cl);
} ctl_cmds[] = {
    /* clang-format off */
    {"ping", CTL_APPROVERS, do_ping},
    {"approvals", CTL_APPROVERS, do_approvals},
    {"approve", CTL_APPROVERS, do_decide},
    {"deny", CTL_APPROVERS, do_decide},
    {"status", CTL_ROOT, do_status_cmd},
    {"attach", CTL_ROOT, do_attach},
    {"detach", CTL_ROOT, do_detach},
    {"reload", CTL_ROOT, do_reload},
    /* clang-format on */
};

static const struct ctl_cmd *ctl_cmd_find(const char *name)
{
	for (size_t i = 0; name && i < sizeof(ctl_cmds) / sizeof(ctl_cmds[0]); i++)
		if (!strcmp(ctl_cmds[i].name, name))
			return &ctl_cmds[i];
	return NULL;
}

static void handle(struct ctl_client *cl, struct jbuf *j)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *req = json_tokener_parse_ex(tok, cl->buf, (int)cl->len);
	const struct ctl_cmd *c;
	const char *cmd;

	hoopd.st.control_requests++;
	if (!req || !json_object_is_type(req, json_type_object)) {
		reply_err(j, "request is not a JSON object");
		goto out;
	}
	cmd = jstr(req, "cmd");
	c = ctl_cmd_find(cmd);
	/* An unknown command is root's too: anyone else learns nothing of which exist. */
	if (!privileged(cl->uid) &&
	    !(c && c->who == CTL_APPROVERS && approvals_is_approver(cl->uid))) {
		char m[160];

		hoopd.st.control_denied++;
		snprintf(m, sizeof(m),
			 "permission denied: uid %u may not %s (root, or an approver for "
			 "approvals)",
			 cl->uid, cmd ? cmd : "control hoopd");
		log_warn("control request from uid %u pid %d refused", cl->uid, cl->pid);
		reply_err(j, m);
		goto out;
	}
	if (!cmd) {
		reply_err(j, "request has no \"cmd\"");
	} else if (!c) {
		char m[128];

		snprintf(m, sizeof(m), "unknown command '%.40s'", cmd);
		reply_err(j, m);
	} else {
		c->run(req, j, cl);
	}
out:
	if (req)
		json_object_put(req);
	json_tokener_free(tok);
}

static void on_client(struct loop_watch *w, uint32_t events)
{
	struct ctl_client *cl = container_of(w, struct ctl_client, w);

	if (cl->out) {
		while (cl->out_off < cl->out_len) {
			ssize_t n = send(w->fd, cl->out + cl->out_off, cl->out_len - cl->out_off,
					 MSG_NOSIGNAL);
			if (n < 0) {
				if (errno == EAGAIN)
					return;
				break;
			}
			cl->out_off += (size_t)n;
		}
		client_free(cl);
		return;
	}
	for (;;) {
		ssize_t n;

		if (cl->len == CTL_MAX_REQ) {
			client_free(cl);
			return;
		}
		n = recv(w->fd, cl->buf + cl->len, CTL_MAX_REQ - cl->len, 0);
		if (n < 0) {
			if (errno == EAGAIN)
				break;
			client_free(cl);
			return;
		}
		if (n == 0)
			break;
		cl->len += (size_t)n;
	}
	if (cl->len && memchr(cl->buf, '\n', cl->len)) {
		struct jbuf j;

		jb_init(&j);
		g_deferred = 0;
		handle(cl, &j);
		if (g_deferred) {
			/* ctl_answer sends it: later, or already (no worker was up, no worker held
			 * the request), and then cl may be freed: looked up, never touched */
			uint64_t h = g_deferred;

			jb_free(&j);
			for (struct ctl_client *c = g_clients; c; c = c->next)
				if (c->handle == h && !c->out)
					loop_mod(&c->w, 0);
			return;
		}
		cl->out_len = strlen(jb_str(&j)) + 1;
		cl->out = malloc(cl->out_len);
		if (!cl->out) {
			jb_free(&j);
			client_free(cl);
			return;
		}
		memcpy(cl->out, jb_str(&j), cl->out_len - 1);
		cl->out[cl->out_len - 1] = '\n';
		jb_free(&j);
		loop_mod(&cl->w, EPOLLOUT);
		on_client(w, EPOLLOUT);
	}
}

static void on_ctl_accept(struct loop_watch *w, uint32_t events)
{
	for (;;) {
		struct ucred cr;
		socklen_t l = sizeof(cr);
		struct ctl_client *cl;
		int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		int mine = 0, others = 0, other;

		if (fd < 0)
			return;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &l)) {
			close(fd);
			continue;
		}
		other = !privileged(cr.uid) && !approvals_is_approver(cr.uid);
		for (struct ctl_client *c = g_clients; c; c = c->next) {
			mine += c->uid == cr.uid;
			others += c->other;
		}
		if (g_nclients >= CTL_MAX_CLIENTS ||
		    (!privileged(cr.uid) &&
		     (g_nclients >= CTL_MAX_CLIENTS - CTL_ROOT_RESERVED ||
		      mine >= (other ? CTL_MAX_PER_OTHER_UID : CTL_MAX_PER_UID) ||
		      (other && others >= CTL_MAX_OTHERS)))) {
			hoopd.st.control_denied++;
			close(fd);
			continue;
		}
		cl = calloc(1, sizeof(*cl));
		if (!cl || !(cl->buf = malloc(CTL_MAX_REQ))) {
			if (cl)
				free(cl->buf);
			free(cl);
			close(fd);
			continue;
		}
		cl->uid = cr.uid;
		cl->pid = cr.pid;
		cl->other = other;
		if (loop_add(&cl->w, fd, EPOLLIN, on_client)) {
			free(cl->buf);
			free(cl);
			close(fd);
			continue;
		}
		g_nclients++;
		cl->since = now_ms();
		cl->next = g_clients;
		if (g_clients)
			g_clients->prev = cl;
		g_clients = cl;
	}
}

void ctl_answer(uint64_t handle, const char *json)
{
	struct ctl_client *cl;

	for (cl = g_clients; cl; cl = cl->next)
		if (cl->handle == handle && !cl->out)
			break;
	if (!cl)
		return; /* gone meanwhile */
	cl->out_len = strlen(json) + 1;
	cl->out = malloc(cl->out_len);
	if (!cl->out) {
		client_free(cl);
		return;
	}
	memcpy(cl->out, json, cl->out_len - 1);
	cl->out[cl->out_len - 1] = '\n';
	loop_mod(&cl->w, EPOLLOUT);
	on_client(&cl->w, EPOLLOUT);
}

/* A client gets a moment to send its request and a little more to take its answer. */
void control_tick(void)
{
	int64_t now = now_ms();

	for (struct ctl_client *c = g_clients, *n; c; c = n) {
		int64_t age = now - c->since;

		n = c->next;
		if ((!c->out && !c->handle && age > CTL_REQ_MS) ||
		    age > (privileged(c->uid) ? CTL_ROOT_LIFE_MS : CTL_LIFE_MS))
			client_free(c);
	}
}

int control_init(void)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	char dir[PATH_MAX];
	char *slash;
	int fd;

	if (strlen(hoopd.o.control_path) >= sizeof(a.sun_path)) {
		log_error("control socket path %s is too long", hoopd.o.control_path);
		return -ENAMETOOLONG;
	}
	snprintf(dir, sizeof(dir), "%s", hoopd.o.control_path);
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		mkdir(dir, 0755);
	}
	strcpy(a.sun_path, hoopd.o.control_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* A socket file left by a crashed hoopd: connect fails, so it is safe to replace. */
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0) {
		log_error("another hoopd answers on %s; refusing to start a second one",
			  hoopd.o.control_path);
		close(fd);
		return -EADDRINUSE;
	}
	unlink(hoopd.o.control_path);
	close(fd);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* Anyone may connect (approvers are ordinary users); each request is authorised by the
	 * caller's SO_PEERCRED uid, and slots are shared per uid (on_ctl_accept). */
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) || chmod(hoopd.o.control_path, 0666) ||
	    listen(fd, 64)) {
		int e = errno;

		log_error("control socket %s: %s", hoopd.o.control_path, strerror(e));
		close(fd);
		return -e;
	}
	g_ctl_fd = fd;
	return loop_add(&g_ctl, fd, EPOLLIN, on_ctl_accept);
}

void control_close(void)
{
	if (g_ctl_fd >= 0) {
		close(g_ctl_fd);
		unlink(hoopd.o.control_path);
		g_ctl_fd = -1;
	}
}
