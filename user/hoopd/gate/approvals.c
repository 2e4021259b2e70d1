/* Approval requests, decisions, fingerprint grants, notifications. */
#include "approvals.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <openssl/sha.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "audit_store.h"
#include "isotime.h"
#include "engine.h"
#include "record.h"
#include "grantkey.h"
#include "grants.h"
#include "hex.h"
#include "daemon.h"
#include "policy.h"
#include "log.h"
#include "session.h"
#include "verdict.h"

struct request {
	char id[16];
	struct session *s;
	char rule[64];
	char message[256];
	char *text;
	size_t len;
	char sha256[SHA256_DIGEST_LENGTH * 2 + 1]; /* of the held text: what an approver names */
	char *runs; /* JSON array: what EXECUTE/FETCH in the text run, as hoopd recorded them */
	char *split; /* JSON object: how hoopd reads the text (hold_ops open), or NULL */
	char fingerprint[GRANTKEY_LEN + 1]; /* grantkey_for: what a fingerprint grant covers */
	char no_grant[192];		    /* or why no fingerprint grant may cover it */
	int64_t created;
	/* who asked, as at the request (a retry request outlives its session) */
	struct agent who;
	/* approval_mode: retry: the session does not wait (s is the session that asked, not
	 * parked); once decided, the request stays (state approved or denied, decided at) until
	 * the same text comes again on that session, the session ends, or it expires */
	int retry;
	enum { RQ_PENDING = 0, RQ_APPROVED, RQ_DENIED } state;
	int64_t decided;
	char denial[512];
	int hooked; /* approvals_held_hook said it open and not yet closed */
	/* retry: the session's statement count after its last refusal; the retry must come
	 * next (nothing judged in between) */
	uint64_t pos;
	struct request *next;
};

static struct request *g_reqs;

/*
 * Held statements are capped per attached agent cgroup, its descendants included (cap_cgid:
 * the agent can make child cgroups), by approvals.max_waiting, and per owner (four times that,
 * over all the owner's attachments): an agent that opens sessions only to park
 * statements fills the approvers' list and hoopd's memory, and drowns the request that
 * matters. A session holds at most one statement (its input stops while held), so the cap per
 * session is 1 by construction.
 */
/* An approver's reason is kept to this many bytes in the record (and says it was cut). */
#define APPROVALS_MAX_REASON 512

/* One audit record about an approval; jb holds the kind-specific fields (or NULL). */
static void record(const char *sid, const char *kind, const struct request *q,
		   const char *extra_json)
{
	struct jbuf j;
	char t[TS_ISO_US_LEN];

	ts_iso_us(t);
	jb_init(&j);
	jb_obj_open(&j);
	jb_kv_str(&j, "ts", t);
	jb_kv_str(&j, "kind", kind);
	if (sid)
		jb_kv_str(&j, "session", sid);
	if (q) {
		jb_kv_str(&j, "approval", q->id);
		jb_kv_str(&j, "rule", q->rule);
	}
	if (extra_json) {
		/* extra_json is ,"k":v,... already escaped */
		jb_raw(&j, extra_json + 1);
	}
	jb_obj_close(&j);
	events_flush(); /* what the sessions' events have waiting goes first */
	if (!j.oom && audit_append(j.s, j.len))
		log_error("approvals: cannot record %s", kind);
	jb_free(&j);
}

/* The decision fields of a record, escaped by the JSON writer; reason cut to a bound, and
 * saying so, so that no approver's text can split or truncate a record. */
static void decision_fields(struct jbuf *j, const char *reason)
{
	size_t rl = reason ? strlen(reason) : 0;

	if (rl > APPROVALS_MAX_REASON) {
		char *cut = strndup(reason, APPROVALS_MAX_REASON);

		jb_kv_str(j, "reason", cut ? cut : "");
		jb_kv_int(j, "reason_bytes", (long long)rl);
		jb_kv_bool(j, "reason_truncated", 1);
		free(cut);
	} else {
		jb_kv_str(j, "reason", reason ? reason : "");
	}
}

/* A record about request q whose extra fields are in the open object e (its '{' is dropped). */
static void record_fields(const char *sid, const char *kind, const struct request *q,
			  struct jbuf *e)
{
	jb_obj_close(e);
	if (!e->oom) {
		e->s[e->len - 1] = '\0';
		e->s[0] = ',';
		record(sid, kind, q, e->len > 2 ? e->s : NULL);
	} else {
		log_error("approvals: out of memory recording %s", kind);
	}
}

/* notify_command's children, reaped by pid: hoopd has other children (the catalog loaders,
 * which their threads wait for), and reaping one of those here would free its pid for
 * reuse while its thread may still signal it. */
static pid_t *g_notify;
static size_t g_nnotify;

static void notify_track(pid_t pid)
{
	pid_t *n = realloc(g_notify, (g_nnotify + 1) * sizeof(*n));

	if (!n) {
		/* untracked: reaped when hoopd exits; a zombie until then, never a reused pid */
		log_warn("approvals: out of memory tracking notify_command pid %d", (int)pid);
		return;
	}
	g_notify = n;
	g_notify[g_nnotify++] = pid;
}

pid_t approvals_run_notify(const char *line, size_t len)
{
	const char *cmd = hoopd.pol->approvals.notify_command;
	int fds[2];
	pid_t pid;

	if (!cmd[0])
		return 0;
	/* The command runs on its own; a failure or a hang never holds up a decision. */
	if (pipe2(fds, O_CLOEXEC))
		return -1;
	pid = fork();
	if (pid == 0) {
		sigset_t none;

		/* hoopd's signals are blocked for its signalfd; the command gets them back */
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		dup2(fds[0], 0);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	close(fds[0]);
	if (pid > 0) {
		notify_track(pid);
		fcntl(fds[1], F_SETFL, O_NONBLOCK);
		if (write(fds[1], line, len) < 0 || write(fds[1], "\n", 1) < 0)
			log_warn("approvals: notify_command did not take the request: %s",
				 strerror(errno));
	} else {
		log_warn("approvals: cannot run notify_command: %s", strerror(errno));
	}
	close(fds[1]);
	return pid;
}

int approvals_notify_running(void)
{
	return (int)g_nnotify;
}

void (*approvals_notify_hook)(const char *line, size_t len);
void (*approvals_grant_hook)(const char *key, const char *owner, int64_t for_ms);
void (*approvals_held_hook)(const char *id, const char *session, const char *rule, int open);

static void notify(const struct request *q)
{
	struct jbuf j;
	char comm[17];

	if (!hoopd.pol->approvals.notify_command[0])
		return;
	memcpy(comm, q->who.o.comm, 16);
	comm[16] = '\0';
	jb_init(&j);
	jb_obj_open(&j);
	jb_kv_str(&j, "approval", q->id);
	jb_kv_str(&j, "rule", q->rule);
	jb_kv_str(&j, "message", q->message);
	jb_kv_str(&j, "statement", q->text);
	jb_kv_int(&j, "bytes", (long long)q->len);
	jb_kv_str(&j, "sha256", q->sha256);
	jb_kv_str(&j, "session", q->who.id);
	jb_kv_str(&j, "owner", q->who.owner);
	jb_kv_int(&j, "pid", q->who.o.tgid);
	jb_kv_int(&j, "uid", q->who.o.uid);
	jb_kv_str(&j, "comm", comm);
	jb_kv_str(&j, "exe", q->who.exe);
	jb_kv_str(&j, "approve", "hoopctl approve ID");
	jb_obj_close(&j);
	if (j.oom) {
		jb_free(&j);
		return;
	}
	if (approvals_notify_hook) {
		/* an engine worker starts no process: the broker runs the command */
		approvals_notify_hook(j.s, j.len);
		record(q->who.id, "approval_notified", q, ",\"command_pid\":null,\"run_by\":\"broker\"");
	} else {
		pid_t pid = approvals_run_notify(j.s, j.len);

		if (pid > 0) {
			char extra[128];

			snprintf(extra, sizeof(extra), ",\"command_pid\":%d", (int)pid);
			record(q->who.id, "approval_notified", q, extra);
		}
	}
	jb_free(&j);
}

/* The held statement's engine: run it or refuse it (engine.h). */
static int resume(struct session *s, enum verdict v, const char *message)
{
	return s->eng && s->eng->resume_held ? s->eng->resume_held(s->est, v, message) : -1;
}

static int fail(struct session *s, const char *sqlstate, const char *message)
{
	return s->eng && s->eng->fail_held ? s->eng->fail_held(s->est, sqlstate, message) : -1;
}

static int open_request_as(struct session *s, const char *rule, const char *message,
			   const char *text, size_t len, const char *split, char *id, size_t idn,
			   int retry, uint64_t pos)
{
	struct request *q;
	uint32_t rnd;
	struct jbuf ex;
	unsigned char md[SHA256_DIGEST_LENGTH];
	int same_cg = 0, same_owner = 0;

	for (struct request *o = g_reqs; o; o = o->next) {
		if (o->state != RQ_PENDING)
			continue;
		same_cg += o->who.cap_cgid == s->cap_cgid; /* the attachment, children included */
		same_owner += s->owner[0] && !strcmp(o->who.owner, s->owner);
	}
	int max_cg = hoopd.pol->approvals.max_waiting, max_owner = 4 * max_cg;

	if (same_cg >= max_cg || same_owner >= max_owner) {
		char extra[256];

		snprintf(extra, sizeof(extra),
			 ",\"refused\":\"too many statements waiting\",\"waiting_cgroup\":%d,"
			 "\"waiting_owner\":%d,\"max_cgroup\":%d,\"max_owner\":%d",
			 same_cg, same_owner, max_cg, max_owner);
		record(s->id, "approval_not_opened", NULL, extra);
		hlog_conn(HLOG_WARN, s->id, s->peer,
			  "not holding a statement for approval (%s): %d already wait from this "
			  "cgroup, %d from this owner",
			  rule, same_cg, same_owner);
		return -EDQUOT;
	}
	q = calloc(1, sizeof(*q));
	if (!q || !(q->text = strndup(text, len))) {
		free(q);
		return -ENOMEM;
	}
	q->len = len;
	SHA256((const unsigned char *)text, len, md);
	hex_encode(md, sizeof(md), q->sha256);
	q->runs = s->eng && s->eng->held_runs ? s->eng->held_runs(s->est, text, len) : NULL;
	q->split = split ? strdup(split) : NULL;
	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		rnd = (uint32_t)now_ms();
	snprintf(q->id, sizeof(q->id), "a%08x", rnd);
	q->s = s;
	q->retry = retry;
	q->pos = pos;
	q->who = s->agent;
	snprintf(q->rule, sizeof(q->rule), "%s", rule);
	snprintf(q->message, sizeof(q->message), "%s", message);
	if (s->protocol != HOOP_PROTO_POSTGRES) {
		/* the key is PostgreSQL's parse tree: other SQL does not read the same (MySQL's
		 * executable comments are code to it, comments to PostgreSQL) */
		q->fingerprint[0] = '\0';
		snprintf(q->no_grant, sizeof(q->no_grant),
			 "fingerprint grants read PostgreSQL's grammar, and this is %s text: "
			 "approve it with --scope once",
			 s->protocol_name[0] ? s->protocol_name : "other");
	} else if (grantkey_for(text, len, q->fingerprint, q->no_grant, sizeof(q->no_grant)))
		q->fingerprint[0] = '\0';
	else if (!s->owner[0])
		snprintf(q->no_grant, sizeof(q->no_grant),
			 "the agent has no owner, and a grant would cover every agent without one");
	q->created = now_ms();
	q->next = g_reqs;
	g_reqs = q;
	snprintf(id, idn, "%s", q->id);
	if (approvals_held_hook)
		approvals_held_hook(q->id, s->id, q->rule, 1);
	q->hooked = 1;
	jb_init(&ex);
	jb_raw(&ex, "");
	{
		struct jbuf e2;

		jb_init(&e2);
		jb_obj_open(&e2);
		jb_kv_str(&e2, "statement", q->text);
		jb_kv_int(&e2, "bytes", (long long)q->len);
		jb_kv_str(&e2, "sha256", q->sha256);
		if (q->runs) {
			jb_key(&e2, "runs");
			jb_raw(&e2, q->runs);
		}
		if (q->split) {
			jb_key(&e2, "read_as");
			jb_raw(&e2, q->split);
		}
		jb_kv_str(&e2, "fingerprint", q->fingerprint);
		if (q->no_grant[0])
			jb_kv_str(&e2, "fingerprint_refused", q->no_grant);
		jb_kv_str(&e2, "owner", s->owner);
		jb_kv_int(&e2, "pid", s->o.tgid);
		jb_kv_int(&e2, "uid", s->o.uid);
		jb_kv_int(&e2, "timeout_s", hoopd.pol->approvals.timeout_s);
		jb_obj_close(&e2);
		/* {"a":...} -> ,"a":... */
		if (!e2.oom) {
			e2.s[e2.len - 1] = '\0';
			e2.s[0] = ',';
			record(s->id, "approval_request", q, e2.s);
		}
		jb_free(&e2);
	}
	jb_free(&ex);
	hlog_conn(HLOG_INFO, s->id, s->peer, "statement held for approval %s (%s)", q->id, rule);
	notify(q);
	return 0;
}

/* The broker's list of open requests (which worker decides which) loses q. */
static void unhook(struct request *q)
{
	if (q->hooked && approvals_held_hook)
		approvals_held_hook(q->id, q->who.id, q->rule, 0);
	q->hooked = 0;
}

static void unlink_req(struct request *q)
{
	unhook(q);
	for (struct request **pp = &g_reqs; *pp; pp = &(*pp)->next)
		if (*pp == q) {
			*pp = q->next;
			break;
		}
	free(q->text);
	free(q->runs);
	free(q->split);
	free(q);
}

static void forget(struct session *s, const char *why)
{
	for (struct request *q = g_reqs, *n; q; q = n) {
		n = q->next;
		if (q->s == s) {
			struct jbuf e;

			jb_init(&e);
			jb_obj_open(&e);
			jb_kv_str(&e, "decision", "closed");
			jb_kv_str(&e, "why", why);
			record_fields(s->id, "approval_decision", q, &e);
			jb_free(&e);
			unlink_req(q);
		}
	}
}

static int open_request(struct session *s, const char *rule, const char *message,
			const char *text, size_t len, const char *split, char *id, size_t idn)
{
	return open_request_as(s, rule, message, text, len, split, id, idn, 0, 0);
}

/*
 * approval_mode: retry (verdict.h hold_ops.retry). An approval covers the text as the approver
 * was shown it, on the session that asked, sent again as the session's next statement: nothing
 * can have changed what it means in between (a temporary table shadowing a name, search_path,
 * sql_mode, a variable), just as nothing can while a held statement waits. Anything judged in
 * between voids the request.
 */
static int retry(struct session *s, const char *rule, const char *message, const char *text,
		 size_t len, const char *split, uint64_t pos, int n, char *id, size_t idn, char *msg,
		 size_t msgn)
{
	struct request *q, *next;
	int r;

	for (q = g_reqs; q; q = next) {
		next = q->next;
		if (!q->retry || q->s != s)
			continue;
		if (q->pos == pos && q->len == len && !memcmp(q->text, text, len) &&
		    /* read the same way (the split, the settings it was read under) */
		    !strcmp(q->split ? q->split : "", split ? split : ""))
			break;
		/* another statement came first: this session's earlier request is void */
		record(s->id, "approval_decision", q,
		       q->state == RQ_PENDING
			   ? ",\"decision\":\"void\",\"why\":\"another statement ran on the session first\""
			   : ",\"decision\":\"void\",\"why\":\"another statement ran on the session "
			     "before the retry\"");
		unlink_req(q);
	}
	if (!q) {
		int e = open_request_as(s, rule, message, text, len, split, id, idn, 1,
					pos + (uint64_t)n);

		return e ? e : HOLD_RETRY_WAIT;
	}
	snprintf(id, idn, "%s", q->id);
	if (q->state == RQ_PENDING) {
		q->pos = pos + (uint64_t)n; /* sent again before a decision: still next */
		return HOLD_RETRY_WAIT;
	}
	record(s->id, "approval_used", q,
	       q->state == RQ_APPROVED ? ",\"decision\":\"approved\"" : ",\"decision\":\"denied\"");
	r = q->state == RQ_APPROVED ? HOLD_RETRY_RUN : HOLD_RETRY_DENIED;
	snprintf(msg, msgn, "%s", q->denial);
	hlog_conn(HLOG_INFO, s->id, s->peer, "approval %s used: the statement %s", q->id,
		  r == HOLD_RETRY_RUN ? "runs" : "stays denied");
	unlink_req(q);
	return r;
}

static const struct hold_ops ops = {.open = open_request, .forget = forget, .retry = retry};

void approvals_init(void)
{
	hold_ops = &ops;
}

static int user_of(uid_t uid, char *name, size_t n, gid_t *gid)
{
	struct passwd pw, *res = NULL;
	char buf[4096];

	if (getpwuid_r(uid, &pw, buf, sizeof(buf), &res) || !res) {
		snprintf(name, n, "uid:%u", uid);
		*gid = (gid_t)-1;
		return -1;
	}
	snprintf(name, n, "%s", pw.pw_name);
	*gid = pw.pw_gid;
	return 0;
}

void approvals_who(uid_t uid, pid_t pid, struct approver *a)
{
	gid_t gid;

	memset(a, 0, sizeof(*a));
	a->uid = uid;
	a->pid = pid;
	user_of(uid, a->name, sizeof(a->name), &gid);
	a->is_approver = approvals_is_approver(uid);
}

int approvals_is_approver(uid_t uid)
{
	const struct policy_list *l = &hoopd.pol->approvals.approvers;
	char name[256];
	gid_t gid, groups[256];
	int ng = 256;

	if (user_of(uid, name, sizeof(name), &gid))
		return 0;
	for (int i = 0; i < l->n; i++)
		if (!strcmp(l->v[i], name))
			return 1;
	if (getgrouplist(name, gid, groups, &ng) < 0)
		ng = 0;
	for (int i = 0; i < l->n; i++) {
		if (strncmp(l->v[i], "group:", 6))
			continue;
		for (int k = 0; k < ng; k++) {
			struct group gr, *res = NULL;
			char buf[4096];

			if (!getgrgid_r(groups[k], &gr, buf, sizeof(buf), &res) && res &&
			    !strcmp(gr.gr_name, l->v[i] + 6))
				return 1;
		}
	}
	return 0;
}

void approvals_list(struct jbuf *j)
{
	jb_key(j, "approvals");
	approvals_list_array(j);
}

void approvals_list_array(struct jbuf *j)
{
	int64_t now = now_ms();

	jb_arr_open(j);
	for (struct request *q = g_reqs; q; q = q->next) {
		char comm[17];

		if (q->state != RQ_PENDING)
			continue; /* decided, waiting for its retry */
		memcpy(comm, q->who.o.comm, 16);
		comm[16] = '\0';
		jb_obj_open(j);
		jb_kv_str(j, "id", q->id);
		if (q->retry)
			jb_kv_str(j, "mode", "retry");
		jb_kv_str(j, "rule", q->rule);
		jb_kv_str(j, "message", q->message);
		jb_kv_str(j, "statement", q->text);
		jb_kv_int(j, "bytes", (long long)q->len);
		jb_kv_str(j, "sha256", q->sha256);
		if (q->runs) {
			jb_key(j, "runs");
			jb_raw(j, q->runs);
		}
		if (q->split) {
			jb_key(j, "read_as");
			jb_raw(j, q->split);
		}
		if (q->no_grant[0]) /* --scope fingerprint will be refused, and why */
			jb_kv_str(j, "fingerprint_refused", q->no_grant);
		jb_kv_str(j, "session", q->who.id);
		/* where it would run, and as whom */
		jb_kv_str(j, "target", q->who.target);
		jb_kv_str(j, "destination", q->who.dst);
		jb_kv_str(j, "db_user", q->who.user);
		jb_kv_str(j, "login_database", q->who.database);
		jb_kv_str(j, "owner", q->who.owner);
		jb_kv_int(j, "pid", q->who.o.tgid);
		jb_kv_int(j, "uid", q->who.o.uid);
		jb_kv_str(j, "comm", comm);
		jb_kv_str(j, "exe", q->who.exe);
		jb_kv_int(j, "age_s", (now - q->created) / 1000);
		jb_kv_int(j, "expires_in_s",
			  hoopd.pol->approvals.timeout_s - (now - q->created) / 1000);
		jb_obj_close(j);
	}
	jb_arr_close(j);
}

/*
 * Does the hash the approver saw name the held text? A prefix of 16 hex digits or more: with 8,
 * an agent could search 2^32 variants of a statement for one whose hash starts like the text the
 * approver was shown.
 */
static int sha_matches(const struct request *q, const char *want)
{
	size_t n = want ? strlen(want) : 0;

	if (n < 16 || n > sizeof(q->sha256) - 1)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = want[i];

		if (c >= 'A' && c <= 'F')
			c = (char)(c - 'A' + 'a');
		if (c != q->sha256[i])
			return 0;
	}
	return 1;
}

int approvals_decide(const char *id, const char *decision, const char *reason, const char *scope,
		     const char *sha256, long long for_s, uid_t uid, pid_t pid, char *err,
		     size_t errn)
{
	struct approver a;

	approvals_who(uid, pid, &a);
	return approvals_decide_as(id, decision, reason, scope, sha256, for_s, &a, err, errn) ? -1
												: 0;
}

int approvals_decide_as(const char *id, const char *decision, const char *reason,
			const char *scope, const char *sha256, long long for_s,
			const struct approver *who, char *err, size_t errn)
{
	struct request *q;
	const char *self = who->name; /* compared with the agent's owner */
	char name[sizeof(who->name) + 8];
	uid_t uid = who->uid;
	pid_t pid = who->pid;
	const char *why = NULL;
	char nogrant[256];
	int approve = !strcmp(decision, "approve");
	size_t nl;
	struct jbuf e;

	for (q = g_reqs; q; q = q->next)
		if (!strcmp(q->id, id) && q->state == RQ_PENDING)
			break;
	if (!q) {
		snprintf(err, errn, "no pending approval %.40s (decided, timed out, or cancelled?)",
			 id);
		return -ENOENT;
	}
	if (!scope)
		scope = "once";
	snprintf(name, sizeof(name), "%s%s", who->central ? "central:" : "", who->name);
	nl = strlen(self);
	if (!who->is_approver)
		why = "not an approver named in the policy";
	else if ((!who->central && q->who.o.uid == uid) || !strcmp(q->who.owner, self) ||
		 (!strncmp(q->who.owner, self, nl) && q->who.owner[nl] == '@'))
		why = "an agent's own uid or owner may not approve its request";
	else if (strcmp(scope, "once") && strcmp(scope, "fingerprint"))
		why = "scope is once or fingerprint";
	else if (approve && !sha_matches(q, sha256))
		why = sha256 && *sha256
			      ? "the sha256 given does not match the held statement (it is not "
				"the text the approver was shown)"
			      : "approve needs the sha256 of the held statement (16 or more hex "
				"digits, as hoopctl approvals shows)";
	else if (approve && !strcmp(scope, "fingerprint") &&
		 (q->no_grant[0] || !q->fingerprint[0])) {
		snprintf(nogrant, sizeof(nogrant),
			 "no fingerprint grant may cover this statement (%s): approve it with "
			 "--scope once",
			 q->no_grant[0] ? q->no_grant : "it has no key");
		why = nogrant;
	}
	jb_init(&e);
	jb_obj_open(&e);
	if (why) {
		snprintf(err, errn, "%s (%s) may not decide %s: %s", name, decision, id, why);
		jb_kv_str(&e, "attempt", decision);
		jb_kv_str(&e, "by", name);
		jb_kv_int(&e, "by_uid", uid);
		jb_kv_int(&e, "by_pid", pid);
		if (who->central)
			jb_kv_str(&e, "via", "central");
		jb_kv_str(&e, "refused", why);
		if (sha256 && *sha256)
			jb_kv_str(&e, "sha256_given", sha256);
		record_fields(q->who.id, "approval_refused", q, &e);
		log_warn("approval %s: %s", id, err);
		jb_free(&e);
		return -1;
	}
	jb_kv_str(&e, "decision", approve ? "approved" : "denied");
	jb_kv_str(&e, "by", name);
	jb_kv_int(&e, "by_uid", uid);
	jb_kv_int(&e, "by_pid", pid);
	if (who->central) /* by_uid and by_pid are the shipper's that relayed it */
		jb_kv_str(&e, "via", "central");
	decision_fields(&e, reason);
	jb_kv_str(&e, "scope", scope);
	jb_kv_int(&e, "for_s", for_s);
	jb_kv_str(&e, "sha256", q->sha256);
	record_fields(q->who.id, "approval_decision", q, &e);
	jb_free(&e);
	hlog_conn(HLOG_INFO, q->who.id, q->who.peer, "approval %s %s by %s", id,
		  approve ? "approved" : "denied", name);
	{
		struct session *s = q->s;
		char msg[512];

		if (approve) {
			if (!strcmp(scope, "fingerprint") && q->fingerprint[0]) {
				int64_t ms = (for_s > 0 ? for_s : 600) * 1000;

				if (grants_add(q->fingerprint, q->who.owner, ms))
					log_error("approval %s: out of memory keeping its grant", id);
				else if (approvals_grant_hook) /* the other workers' agents too */
					approvals_grant_hook(q->fingerprint, q->who.owner, ms);
			}
		} else {
			snprintf(msg, sizeof(msg), "hoop: denied by %s%s%.400s", name,
				 reason && *reason ? ": " : "", reason ? reason : "");
		}
		if (q->retry) {
			/* nobody waits: the decision waits for the statement to come again */
			q->state = approve ? RQ_APPROVED : RQ_DENIED;
			q->decided = now_ms();
			if (!approve)
				snprintf(q->denial, sizeof(q->denial), "%s", msg);
			unhook(q);
		} else {
			unlink_req(q);
			resume(s, approve ? VERDICT_ALLOW : VERDICT_DENY, approve ? NULL : msg);
		}
	}
	return 0;
}

void approvals_tick(void)
{
	int64_t now = now_ms(), limit = hoopd.pol->approvals.timeout_s * 1000;

	for (struct request *q = g_reqs, *n; q; q = n) {
		n = q->next;
		if (q->state != RQ_PENDING) {
			/* a retry's decision nobody came back for */
			if (now - q->decided >= limit) {
				record(q->who.id, "approval_decision", q,
				       q->state == RQ_APPROVED
					   ? ",\"decision\":\"expired\",\"was\":\"approved\""
					   : ",\"decision\":\"expired\",\"was\":\"denied\"");
				unlink_req(q);
			}
		} else if (now - q->created >= limit) {
			struct session *s = q->s;
			int parked = !q->retry;

			record(q->who.id, "approval_decision", q, ",\"decision\":\"timed_out\"");
			unlink_req(q);
			if (parked)
				fail(s, "57014", "hoop: canceling statement: no approver decided in time");
		}
	}
	grants_expire();
}

void approvals_reap(void)
{
	for (size_t i = 0; i < g_nnotify;) {
		if (waitpid(g_notify[i], NULL, WNOHANG) == 0) {
			i++;
			continue;
		}
		g_notify[i] = g_notify[--g_nnotify]; /* reaped (or not ours any more) */
	}
}

void approvals_fail_all(const char *why)
{
	while (g_reqs) {
		struct request *q = g_reqs;
		struct session *s = q->s;
		int parked = !q->retry;
		struct jbuf e;

		jb_init(&e);
		jb_obj_open(&e);
		jb_kv_str(&e, "decision", "failed");
		jb_kv_str(&e, "why", why);
		record_fields(q->who.id, "approval_decision", q, &e);
		jb_free(&e);
		unlink_req(q);
		if (parked)
			fail(s, "57P01", "hoop: hoopd is stopping; the statement waiting for approval "
					 "was not run");
	}
}
