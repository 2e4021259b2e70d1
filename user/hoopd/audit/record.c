/*
 * Session records: each event (record.h) becomes one JSON object appended to the audit trail
 * (audit_store.h). Records read who the agent is through the session's const identity (sess_agent);
 * what this module remembers between records (a result's columns waiting for their
 * completion, the sessions whose "who" this segment has said) it keeps here, never in the
 * session.
 */
#include "record.h"

#include "audit_store.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "netns.h"
#include "isotime.h"
#include "json.h"
#include "log.h"
#include "identity.h"

/*
 * A result's columns (RowDescription) go into its statement's complete record when that is the
 * next thing recorded, as it is for small results (RowDescription, rows and CommandComplete
 * arrive in one read): one record where there were two. Anything else recorded first, and the
 * end of every loop round (events_flush), writes them as a result_columns record of their own,
 * with the time they arrived, in the place it always had.
 */
static struct {
	int on;
	char session[20]; /* the session's id */
	uint64_t seq;	  /* the statement's number */
	char ts[TS_ISO_US_LEN];	  /* when the columns arrived */
	struct jbuf cols; /* the "columns" array */
} pending_cols;

int events_open(const char *state_dir, const struct audit_cfg *cfg)
{
	return audit_open(state_dir, cfg);
}

void events_close(void)
{
	events_flush();
	audit_close();
}

static void begin_at(struct jbuf *j, const char *kind, const char *session, const char *ts)
{
	jb_init(j);
	jb_obj_open(j);
	jb_kv_str(j, "ts", ts);
	jb_kv_str(j, "kind", kind);
	jb_kv_str(j, "session", session);
}

static void begin(struct jbuf *j, const char *kind, const struct agent *a)
{
	char ts[TS_ISO_US_LEN];

	ts_iso_us(ts);
	begin_at(j, kind, a->id, ts);
}

/*
 * The sessions whose "who" the current audit segment has said (ev_statement), by id: an open
 * addressing set (linear probing, "" = free), emptied when the segment changes; a session
 * leaves it at its session_end.
 */
static struct {
	uint32_t segment;
	char (*ids)[20];
	size_t cap, n; /* cap: 0 or a power of two */
} said_who;

static size_t who_slot(const char *id)
{
	uint64_t h = 14695981039346656037ULL; /* FNV-1a */

	for (const char *c = id; *c; c++)
		h = (h ^ (uint8_t)*c) * 1099511628211ULL;
	return (size_t)h & (said_who.cap - 1);
}

/* The slot holding id, or the free slot where it would go. said_who.cap is not 0. */
static size_t who_find(const char *id)
{
	size_t i = who_slot(id);

	while (said_who.ids[i][0] && strcmp(said_who.ids[i], id))
		i = (i + 1) & (said_who.cap - 1);
	return i;
}

static int who_said(const char *id, uint32_t segment)
{
	if (said_who.segment != segment) {
		said_who.segment = segment;
		if (said_who.n)
			memset(said_who.ids, 0, said_who.cap * sizeof(*said_who.ids));
		said_who.n = 0;
	}
	return said_who.n && said_who.ids[who_find(id)][0];
}

/* Not remembering only costs a repeated "who" in a later record. */
static void who_remember(const char *id)
{
	if ((said_who.n + 1) * 4 > said_who.cap * 3) {
		size_t cap = said_who.cap ? 2 * said_who.cap : 64, old = said_who.cap;
		char(*ids)[20] = calloc(cap, sizeof(*ids)), (*was)[20] = said_who.ids;

		if (!ids)
			return;
		said_who.ids = ids;
		said_who.cap = cap;
		for (size_t i = 0; i < old; i++)
			if (was[i][0])
				memcpy(said_who.ids[who_find(was[i])], was[i], sizeof(*was));
		free(was);
	}
	snprintf(said_who.ids[who_find(id)], sizeof(*said_who.ids), "%s", id);
	said_who.n++;
}

/* The session ended: its id leaves the set (later entries of its run shift back). */
static void who_forget(const char *id)
{
	size_t i, j;

	if (!said_who.n || !said_who.ids[i = who_find(id)][0])
		return;
	said_who.ids[i][0] = '\0';
	said_who.n--;
	for (j = (i + 1) & (said_who.cap - 1); said_who.ids[j][0];
	     j = (j + 1) & (said_who.cap - 1)) {
		size_t home = who_slot(said_who.ids[j]);

		/* j's entry stays when its home lies cyclically in (i, j]: the hole does not
		 * cut its probe run */
		int stays = i <= j ? i < home && home <= j : i < home || home <= j;

		if (!stays) {
			memcpy(said_who.ids[i], said_who.ids[j], sizeof(said_who.ids[i]));
			said_who.ids[j][0] = '\0';
			i = j;
		}
	}
}

/* Into the audit trail, after pending columns. 0, or a negative errno: what the event
 * describes must not proceed. */
static int finish(struct jbuf *j)
{
	int r;

	events_flush();
	jb_obj_close(j);
	r = j->oom ? -ENOMEM : audit_append(j->s, j->len);
	jb_free(j);
	return r;
}

void events_flush(void)
{
	struct jbuf j;

	if (!pending_cols.on)
		return;
	pending_cols.on = 0;
	begin_at(&j, "result_columns", pending_cols.session, pending_cols.ts);
	jb_kv_uint(&j, "stmt", pending_cols.seq);
	jb_key(&j, "columns");
	jb_raw(&j, jb_str(&pending_cols.cols));
	jb_free(&pending_cols.cols);
	jb_obj_close(&j);
	if (!j.oom)
		audit_append(j.s, j.len);
	jb_free(&j);
}

static void put_text(struct jbuf *j, const char *k, const char *p, size_t n)
{
	char small[1024];
	char *tmp = n < sizeof(small) ? small : malloc(n + 1);

	if (!tmp) {
		jb_kv_str(j, k, "(out of memory)");
		return;
	}
	memcpy(tmp, p, n);
	tmp[n] = '\0';
	jb_kv_str(j, k, tmp);
	if (tmp != small)
		free(tmp);
}

/*
 * Kubernetes identity from the kubelet's cgroup layout, both drivers:
 *   systemd:  .../kubepods-burstable-pod<uid with _>.slice/cri-containerd-<id>.scope
 *   cgroupfs: .../kubepods/burstable/pod<uid>/<id>
 */
static void k8s_ids(const char *cg, char *pod, size_t pn, char *ctr, size_t cn)
{
	const char *p = NULL, *last = strrchr(cg, '/');
	size_t i = 0;

	pod[0] = ctr[0] = '\0';
	if (!strstr(cg, "kubepods"))
		return;
	/* "pod" right after '/' or '-' and followed by a hex digit ("kubepods" itself is not) */
	for (const char *q = strstr(cg, "pod"); q; q = strstr(q + 3, "pod"))
		if (q > cg && (q[-1] == '/' || q[-1] == '-') && isxdigit((unsigned char)q[3]))
			p = q;
	if (!p)
		return;
	p += 3;
	while (*p && *p != '/' && *p != '.' && i + 1 < pn) {
		pod[i++] = *p == '_' ? '-' : *p; /* systemd spells the UID's dashes as _ */
		p++;
	}
	pod[i] = '\0';
	if (last && last[1]) {
		const char *id = last + 1, *dash = strrchr(id, '-');
		size_t l;

		if (dash && strstr(id, ".scope"))
			id = dash + 1;
		l = strcspn(id, ".");
		if (l == 64)
			snprintf(ctr, cn, "%.*s", (int)l, id);
	}
}

void ev_session_start(const struct agent *a, const struct ev_session_start *e)
{
	struct jbuf j;
	char comm[17];

	memcpy(comm, a->o.comm, 16);
	comm[16] = '\0';
	begin(&j, "session_start", a);
	jb_key(&j, "agent");
	jb_obj_open(&j);
	jb_kv_int(&j, "pid", a->o.tgid);
	jb_kv_int(&j, "tid", a->o.pid);
	jb_kv_int(&j, "uid", a->o.uid);
	jb_kv_int(&j, "gid", a->o.gid);
	jb_kv_str(&j, "comm", comm);
	jb_kv_str(&j, "exe", a->exe);
	jb_kv_str(&j, "exe_observed", "accept"); /* read from /proc at accept, not at connect */
	jb_kv_str(&j, "cgroup", a->cgroup); /* the connect-time cgroup (BPF), named as it is now */
	jb_kv_uint(&j, "cgroup_id", a->o.cgroup_id);
	{
		char pod[64], ctr[65];

		k8s_ids(a->cgroup, pod, sizeof(pod), ctr, sizeof(ctr));
		if (pod[0])
			jb_kv_str(&j, "pod_uid", pod);
		if (ctr[0])
			jb_kv_str(&j, "container_id", ctr);
	}
	jb_kv_str(&j, "owner", a->owner);
	jb_key(&j, "labels");
	jb_raw(&j, a->labels_json[0] ? a->labels_json : "{}");
	jb_kv_str(&j, "address", a->peer);
	jb_obj_close(&j);
	jb_kv_str(&j, "destination", a->dst);
	jb_kv_str(&j, "upstream_netns", a->up_netns == NETNS_DIAL_AGENT ? "agent" : "hoopd");
	jb_kv_str(&j, "target", a->target);
	if (a->protocol_name[0])
		jb_kv_str(&j, "protocol", a->protocol_name);
	if (e) {
		jb_kv_str(&j, "user", a->user);
		jb_kv_str(&j, "database", a->database);
		jb_kv_str(&j, "application_name", e->application_name);
		jb_key(&j, "params");
		jb_raw(&j, e->params_json ? e->params_json : "{}");
	}
	jb_kv_bool(&j, "agent_tls", e && e->agent_tls);
	jb_kv_bool(&j, "server_tls", e && e->server_tls);
	finish(&j);
}

void ev_session_end(const struct agent *a, const struct ev_session_end *e)
{
	struct jbuf j;

	who_forget(a->id);
	begin(&j, "session_end", a);
	jb_kv_str(&j, "reason", e->reason);
	jb_kv_uint(&j, "statements", e->statements);
	jb_kv_uint(&j, "bytes_agent_to_db", e->bytes_agent_to_db);
	jb_kv_uint(&j, "bytes_db_to_agent", e->bytes_db_to_agent);
	jb_kv_int(&j, "duration_ms", e->duration_ms);
	finish(&j);
}

int ev_statement(const struct agent *a, const struct ev_statement *e)
{
	int r, who = !who_said(a->id, audit_segment());
	const char *user = e->db_user ? e->db_user : a->user[0] ? a->user : NULL;
	const char *database = e->database ? e->database : a->database[0] ? a->database : NULL;
	struct jbuf j;

	begin(&j, "statement", a);
	/*
	 * Who, in the session's first statement record of every segment: its statements stay
	 * attributable when retention has removed the segment with its session_start, without
	 * repeating it in every record.
	 */
	if (who) {
		jb_key(&j, "who");
		jb_obj_open(&j);
		jb_kv_int(&j, "pid", a->o.tgid);
		jb_kv_int(&j, "uid", a->o.uid);
		jb_kv_str(&j, "exe", a->exe);
		jb_kv_str(&j, "exe_observed", "accept");
		jb_kv_str(&j, "cgroup", a->cgroup);
		jb_kv_str(&j, "owner", a->owner);
		if (user)
			jb_kv_str(&j, "user", user);
		if (database)
			jb_kv_str(&j, "database", database);
		jb_kv_str(&j, "address", a->peer);
		jb_obj_close(&j);
	}
	jb_kv_uint(&j, "stmt", e->seq);
	if (a->login_changed) { /* not session_start's login (ev_change_user) */
		jb_kv_str(&j, "db_user", user ? user : "");
		jb_kv_str(&j, "database", database ? database : "");
	}
	jb_kv_str(&j, "protocol", e->protocol);
	put_text(&j, "text", e->text ? e->text : "", e->text ? e->text_len : 0);
	if (e->text_sha256) {
		jb_kv_bool(&j, "text_truncated", 1);
		jb_kv_uint(&j, "text_bytes", e->text_bytes);
		jb_kv_str(&j, "text_sha256", e->text_sha256);
	}
	if (e->prepared)
		jb_kv_str(&j, "prepared", e->prepared);
	if (e->prepared_text)
		jb_kv_str(&j, "prepared_text", e->prepared_text);
	if (e->portal)
		jb_kv_str(&j, "portal", e->portal);
	if (e->params_json) {
		jb_key(&j, "params");
		jb_raw(&j, e->params_json);
	}
	jb_kv_str(&j, "verdict", e->verdict);
	if (e->reason)
		jb_kv_str(&j, "reason", e->reason);
	if (e->parse_error)
		jb_kv_bool(&j, "parse_error", 1);
	if (e->refused)
		jb_kv_str(&j, "refused", e->refused);
	if (e->approval)
		jb_kv_str(&j, "approval", e->approval);
	r = finish(&j);
	if (r == 0)
		audit_mark_critical(); /* a statement goes only with it (engine workers) */
	if (r == 0 && who)
		who_remember(a->id);
	return r;
}

int ev_change_user(const struct agent *a, const char *user, const char *database,
		   const char *plugin)
{
	struct jbuf j;
	int r;

	begin(&j, "change_user", a);
	jb_kv_str(&j, "user", user);
	jb_kv_str(&j, "database", database);
	jb_kv_str(&j, "plugin", plugin);
	jb_kv_str(&j, "from_user", a->user);
	jb_kv_str(&j, "from_database", a->database);
	r = finish(&j);
	if (r == 0)
		audit_mark_critical(); /* the request goes only with it */
	return r;
}

void ev_conn_refused(const struct agent *a, const char *sqlstate, const char *message)
{
	struct jbuf j;
	char ts[TS_ISO_US_LEN];

	/* No session began: "session" stays empty (session listings skip the record), and the
	 * id in the log lines about this connection is "connection". */
	ts_iso_us(ts);
	begin_at(&j, "connection_refused", "", ts);
	jb_kv_str(&j, "connection", a->id);
	jb_key(&j, "agent");
	jb_obj_open(&j);
	jb_kv_int(&j, "pid", a->o.tgid);
	jb_kv_int(&j, "uid", a->o.uid);
	jb_kv_str(&j, "exe", a->exe);
	jb_kv_str(&j, "cgroup", a->cgroup);
	jb_kv_uint(&j, "cgroup_id", a->o.cgroup_id);
	jb_kv_str(&j, "owner", a->owner);
	jb_kv_str(&j, "address", a->peer);
	jb_obj_close(&j);
	jb_kv_str(&j, "destination", a->dst);
	jb_kv_str(&j, "target", a->target);
	jb_kv_str(&j, "sqlstate", sqlstate);
	jb_kv_str(&j, "message", message);
	finish(&j);
}

void ev_columns(const struct agent *a, uint64_t seq, const struct col_desc *c, int n)
{
	events_flush();
	pending_cols.on = 1;
	snprintf(pending_cols.session, sizeof(pending_cols.session), "%s", a->id);
	pending_cols.seq = seq;
	ts_iso_us(pending_cols.ts);
	jb_init(&pending_cols.cols);
	jb_arr_open(&pending_cols.cols);
	for (int i = 0; i < n; i++) {
		jb_obj_open(&pending_cols.cols);
		jb_kv_str(&pending_cols.cols, "name", c[i].name);
		if (c[i].engine == COL_ENGINE_PG) {
			jb_kv_uint(&pending_cols.cols, "table_oid", c[i].table_id);
			jb_kv_int(&pending_cols.cols, "attnum", c[i].column_no);
			jb_kv_uint(&pending_cols.cols, "type_oid", c[i].type);
		} else {
			/* engines that name a column's source instead of numbering it */
			if (c[i].schema)
				jb_kv_str(&pending_cols.cols, "schema", c[i].schema);
			if (c[i].table)
				jb_kv_str(&pending_cols.cols, "table", c[i].table);
			if (c[i].column)
				jb_kv_str(&pending_cols.cols, "column", c[i].column);
			jb_kv_uint(&pending_cols.cols, "type", c[i].type);
		}
		jb_kv_int(&pending_cols.cols, "format", c[i].format);
		jb_obj_close(&pending_cols.cols);
	}
	jb_arr_close(&pending_cols.cols);
}

void ev_complete(const struct agent *a, const struct ev_complete *e)
{
	struct jbuf j;

	begin(&j, "complete", a);
	jb_kv_uint(&j, "stmt", e->seq);
	jb_kv_str(&j, "tag", e->tag);
	jb_kv_uint(&j, "rows", e->rows);
	jb_kv_uint(&j, "bytes", e->bytes);
	jb_kv_int(&j, "duration_us", e->duration_us);
	if (e->masked_json) {
		jb_key(&j, "masked");
		jb_raw(&j, e->masked_json);
	}
	if (pending_cols.on && pending_cols.seq == e->seq &&
	    !strcmp(pending_cols.session, a->id)) {
		/* Its result's columns, recorded with it (see pending_cols). */
		pending_cols.on = 0;
		jb_key(&j, "columns");
		jb_raw(&j, jb_str(&pending_cols.cols));
		jb_free(&pending_cols.cols);
	}
	finish(&j);
}

void ev_error(const struct agent *a, const struct ev_error *e)
{
	struct jbuf j;

	begin(&j, "error", a);
	if (e->seq)
		jb_kv_uint(&j, "stmt", e->seq);
	jb_kv_str(&j, "severity", e->severity ? e->severity : "");
	jb_kv_str(&j, "sqlstate", e->sqlstate ? e->sqlstate : "");
	jb_kv_str(&j, "message", e->message ? e->message : "");
	jb_kv_bool(&j, "from_hoopd", e->from_hoopd);
	finish(&j);
}

void ev_protocol_error(const struct agent *a, const char *direction, const char *message)
{
	struct jbuf j;

	begin(&j, "protocol_error", a);
	jb_kv_str(&j, "direction", direction);
	jb_kv_str(&j, "message", message);
	finish(&j);
}

void ev_cancel(const struct agent *a, const char *outcome, int backend_pid)
{
	struct jbuf j;

	begin(&j, "cancel", a);
	jb_kv_str(&j, "outcome", outcome);
	jb_kv_int(&j, "backend_pid", backend_pid);
	finish(&j);
}
