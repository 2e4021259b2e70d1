/* Approval requests, decisions, fingerprint grants, notifications. */
#include "approvals.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pg_query.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "events.h"
#include "hoopd.h"
#include "log.h"
#include "pg.h"
#include "session.h"
#include "verdict.h"

struct request {
	char id[16];
	struct session *s;
	char rule[64];
	char message[256];
	char *text;
	char fingerprint[32];
	int64_t created;
	struct request *next;
};

struct grant {
	char fingerprint[32];
	char owner[256];
	int64_t expires;
	struct grant *next;
};

static struct request *g_reqs;
static struct grant *g_grants;

static void fingerprint(const char *text, size_t len, char *out, size_t n)
{
	char *t = strndup(text, len);
	PgQueryFingerprintResult r;

	out[0] = '\0';
	if (!t)
		return;
	r = pg_query_fingerprint(t);
	if (!r.error && r.fingerprint_str)
		snprintf(out, n, "%s", r.fingerprint_str);
	pg_query_free_fingerprint_result(r);
	free(t);
}

/* One audit record about an approval; jb holds the kind-specific fields (or NULL). */
static void record(const struct session *s, const char *kind, const struct request *q,
		   const char *extra_json)
{
	struct jbuf j;
	struct timespec ts;
	char t[48];
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(t, sizeof(t), "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000);
	jb_init(&j);
	jb_obj_open(&j);
	jb_kv_str(&j, "ts", t);
	jb_kv_str(&j, "kind", kind);
	if (s)
		jb_kv_str(&j, "session", s->id);
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

static void notify(const struct request *q)
{
	const char *cmd = G.pol->approvals.notify_command;
	struct jbuf j;
	int fds[2];
	pid_t pid;
	char comm[17];

	if (!cmd[0])
		return;
	memcpy(comm, q->s->o.comm, 16);
	comm[16] = '\0';
	jb_init(&j);
	jb_obj_open(&j);
	jb_kv_str(&j, "approval", q->id);
	jb_kv_str(&j, "rule", q->rule);
	jb_kv_str(&j, "message", q->message);
	jb_kv_str(&j, "statement", q->text);
	jb_kv_str(&j, "session", q->s->id);
	jb_kv_str(&j, "owner", q->s->owner);
	jb_kv_int(&j, "pid", q->s->o.tgid);
	jb_kv_int(&j, "uid", q->s->o.uid);
	jb_kv_str(&j, "comm", comm);
	jb_kv_str(&j, "exe", q->s->exe);
	jb_kv_str(&j, "approve", "hoopctl approve ID");
	jb_obj_close(&j);
	/* The command runs on its own; a failure or a hang never holds up a decision. */
	if (pipe2(fds, O_CLOEXEC)) {
		jb_free(&j);
		return;
	}
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
		fcntl(fds[1], F_SETFL, O_NONBLOCK);
		if (write(fds[1], j.s, j.len) < 0 || write(fds[1], "\n", 1) < 0)
			log_warn("approvals: notify_command did not take the request: %s",
				 strerror(errno));
		{
			char extra[128];

			snprintf(extra, sizeof(extra), ",\"command_pid\":%d", (int)pid);
			record(q->s, "approval_notified", q, extra);
		}
	} else {
		log_warn("approvals: cannot run notify_command: %s", strerror(errno));
	}
	close(fds[1]);
	jb_free(&j);
}

static int open_request(struct session *s, const char *rule, const char *message,
			const char *text, size_t len, char *id, size_t idn)
{
	struct request *q = calloc(1, sizeof(*q));
	uint32_t rnd;
	struct jbuf ex;

	if (!q || !(q->text = strndup(text, len))) {
		free(q);
		return -ENOMEM;
	}
	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		rnd = (uint32_t)now_ms();
	snprintf(q->id, sizeof(q->id), "a%08x", rnd);
	q->s = s;
	snprintf(q->rule, sizeof(q->rule), "%s", rule);
	snprintf(q->message, sizeof(q->message), "%s", message);
	fingerprint(text, len, q->fingerprint, sizeof(q->fingerprint));
	q->created = now_ms();
	q->next = g_reqs;
	g_reqs = q;
	snprintf(id, idn, "%s", q->id);
	jb_init(&ex);
	jb_raw(&ex, "");
	{
		struct jbuf e2;

		jb_init(&e2);
		jb_obj_open(&e2);
		jb_kv_str(&e2, "statement", q->text);
		jb_kv_str(&e2, "fingerprint", q->fingerprint);
		jb_kv_str(&e2, "owner", s->owner);
		jb_kv_int(&e2, "pid", s->o.tgid);
		jb_kv_int(&e2, "uid", s->o.uid);
		jb_kv_int(&e2, "timeout_s", G.pol->approvals.timeout_s);
		jb_obj_close(&e2);
		/* {"a":...} -> ,"a":... */
		if (!e2.oom) {
			e2.s[e2.len - 1] = '\0';
			e2.s[0] = ',';
			record(s, "approval_request", q, e2.s);
		}
		jb_free(&e2);
	}
	jb_free(&ex);
	hlog_conn(HLOG_INFO, s->id, s->peer, "statement held for approval %s (%s)", q->id, rule);
	notify(q);
	return 0;
}

static void unlink_req(struct request *q)
{
	for (struct request **pp = &g_reqs; *pp; pp = &(*pp)->next)
		if (*pp == q) {
			*pp = q->next;
			break;
		}
	free(q->text);
	free(q);
}

static void forget(struct session *s, const char *why)
{
	for (struct request *q = g_reqs, *n; q; q = n) {
		n = q->next;
		if (q->s == s) {
			char extra[300];

			snprintf(extra, sizeof(extra), ",\"decision\":\"closed\",\"why\":\"%s\"", why);
			record(s, "approval_decision", q, extra);
			unlink_req(q);
		}
	}
}

static const struct hold_ops ops = {.open = open_request, .forget = forget};

void approvals_init(void)
{
	hold_ops = &ops;
}

int approvals_granted(const struct session *s, const char *text, size_t len)
{
	char fp[32];
	int64_t now = now_ms();

	if (!g_grants)
		return 0;
	fingerprint(text, len, fp, sizeof(fp));
	for (struct grant *g = g_grants; g; g = g->next)
		if (g->expires > now && !strcmp(g->fingerprint, fp) && !strcmp(g->owner, s->owner))
			return 1;
	return 0;
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

int approvals_is_approver(uid_t uid)
{
	const struct policy_list *l = &G.pol->approvals.approvers;
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
	int64_t now = now_ms();

	jb_key(j, "approvals");
	jb_arr_open(j);
	for (struct request *q = g_reqs; q; q = q->next) {
		char comm[17];

		memcpy(comm, q->s->o.comm, 16);
		comm[16] = '\0';
		jb_obj_open(j);
		jb_kv_str(j, "id", q->id);
		jb_kv_str(j, "rule", q->rule);
		jb_kv_str(j, "message", q->message);
		jb_kv_str(j, "statement", q->text);
		jb_kv_str(j, "session", q->s->id);
		jb_kv_str(j, "owner", q->s->owner);
		jb_kv_int(j, "pid", q->s->o.tgid);
		jb_kv_int(j, "uid", q->s->o.uid);
		jb_kv_str(j, "comm", comm);
		jb_kv_str(j, "exe", q->s->exe);
		jb_kv_int(j, "age_s", (now - q->created) / 1000);
		jb_kv_int(j, "expires_in_s",
			  G.pol->approvals.timeout_s - (now - q->created) / 1000);
		jb_obj_close(j);
	}
	jb_arr_close(j);
}

int approvals_decide(const char *id, const char *decision, const char *reason, const char *scope,
		     long long for_s, uid_t uid, pid_t pid, char *err, size_t errn)
{
	struct request *q;
	char name[256], extra[1200];
	gid_t gid;
	size_t nl;
	struct jbuf rj;

	user_of(uid, name, sizeof(name), &gid);
	for (q = g_reqs; q; q = q->next)
		if (!strcmp(q->id, id))
			break;
	jb_init(&rj);
	jb_str_val(&rj, reason ? reason : "");
	if (!q) {
		snprintf(err, errn, "no pending approval %s (decided, timed out, or cancelled?)", id);
		jb_free(&rj);
		return -1;
	}
	nl = strlen(name);
	if (!approvals_is_approver(uid) || q->s->o.uid == uid ||
	    !strcmp(q->s->owner, name) ||
	    (!strncmp(q->s->owner, name, nl) && q->s->owner[nl] == '@')) {
		const char *why = !approvals_is_approver(uid)
					  ? "not an approver named in the policy"
					  : "an agent's own uid or owner may not approve its request";

		snprintf(err, errn, "%s (%s) may not decide %s: %s", name, decision, id, why);
		snprintf(extra, sizeof(extra),
			 ",\"attempt\":\"%s\",\"by\":\"%s\",\"by_uid\":%u,\"by_pid\":%d,\"refused\":\"%s\"",
			 decision, name, uid, (int)pid, why);
		record(q->s, "approval_refused", q, extra);
		log_warn("approval %s: %s", id, err);
		jb_free(&rj);
		return -1;
	}
	snprintf(extra, sizeof(extra),
		 ",\"decision\":\"%s\",\"by\":\"%s\",\"by_uid\":%u,\"by_pid\":%d,\"reason\":%s,"
		 "\"scope\":\"%s\",\"for_s\":%lld",
		 !strcmp(decision, "approve") ? "approved" : "denied", name, uid, (int)pid,
		 jb_str(&rj), scope ? scope : "once", for_s);
	jb_free(&rj);
	record(q->s, "approval_decision", q, extra);
	hlog_conn(HLOG_INFO, q->s->id, q->s->peer, "approval %s %s by %s", id,
		  !strcmp(decision, "approve") ? "approved" : "denied", name);
	{
		struct session *s = q->s;
		char msg[512];

		if (!strcmp(decision, "approve")) {
			if (scope && !strcmp(scope, "fingerprint") && q->fingerprint[0]) {
				struct grant *g = calloc(1, sizeof(*g));

				if (g) {
					snprintf(g->fingerprint, sizeof(g->fingerprint), "%s",
						 q->fingerprint);
					snprintf(g->owner, sizeof(g->owner), "%s", s->owner);
					g->expires = now_ms() + (for_s > 0 ? for_s : 600) * 1000;
					g->next = g_grants;
					g_grants = g;
				}
			}
			unlink_req(q);
			pg_resume_held(s, VERDICT_ALLOW, NULL);
		} else {
			snprintf(msg, sizeof(msg), "hoop: denied by %s%s%s", name,
				 reason && *reason ? ": " : "", reason ? reason : "");
			unlink_req(q);
			pg_resume_held(s, VERDICT_DENY, msg);
		}
	}
	return 0;
}

void approvals_tick(void)
{
	int64_t now = now_ms(), limit = G.pol->approvals.timeout_s * 1000;

	for (struct request *q = g_reqs, *n; q; q = n) {
		n = q->next;
		if (now - q->created >= limit) {
			struct session *s = q->s;

			record(s, "approval_decision", q, ",\"decision\":\"timed_out\"");
			unlink_req(q);
			pg_fail_held(s, "57014", "hoop: canceling statement: no approver decided in time");
		}
	}
	for (struct grant **pp = &g_grants; *pp;) {
		if ((*pp)->expires <= now) {
			struct grant *g = *pp;

			*pp = g->next;
			free(g);
		} else {
			pp = &(*pp)->next;
		}
	}
}

void approvals_reap(void)
{
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

void approvals_fail_all(const char *why)
{
	while (g_reqs) {
		struct request *q = g_reqs;
		struct session *s = q->s;
		char extra[300];

		snprintf(extra, sizeof(extra), ",\"decision\":\"failed\",\"why\":\"%s\"", why);
		record(s, "approval_decision", q, extra);
		unlink_req(q);
		pg_fail_held(s, "57P01", "hoop: hoopd is stopping; the statement waiting for approval "
					 "was not run");
	}
}
