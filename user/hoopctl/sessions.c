/*
 * hoopctl sessions: one line per session of the audit trail, from what its records say
 * (who, when, how many statements, how many denied, how it ended); and that gathering itself
 * (sessions_gather), which export shares.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "disp.h"
#include "hoopctl.h"
#include "json.h"
#include "trailread.h"

static const char *const verdicts[] = {"allow", "deny", "hold", "not_run", NULL};

static int verdict_bit(const char *s)
{
	for (int i = 0; verdicts[i]; i++)
		if (!strcmp(s, verdicts[i]))
			return 1 << i;
	return 0;
}

int sessions_init(struct sessions *ss)
{
	memset(ss, 0, sizeof(*ss));
	ss->by_id = lh_kchar_table_new(1024, NULL);
	return ss->by_id ? 0 : -1;
}

struct sess *sess_get(struct sessions *ss, const char *id, int create)
{
	void *p;
	struct sess *s;

	if (lh_table_lookup_ex(ss->by_id, id, &p))
		return p;
	if (!create)
		return NULL;
	if (ss->n == ss->cap) {
		size_t nc = ss->cap ? 2 * ss->cap : 64;
		struct sess **x = realloc(ss->v, nc * sizeof(*x));

		if (!x)
			return NULL;
		ss->v = x;
		ss->cap = nc;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	snprintf(s->id, sizeof(s->id), "%s", id);
	ss->v[ss->n++] = s;
	lh_table_insert(ss->by_id, s->id, s);
	return s;
}

void sessions_free(struct sessions *ss)
{
	for (size_t i = 0; i < ss->n; i++) {
		if (ss->v[i]->start)
			json_object_put(ss->v[i]->start);
		if (ss->v[i]->who)
			json_object_put(ss->v[i]->who);
		free(ss->v[i]);
	}
	free(ss->v);
	if (ss->by_id)
		lh_table_free(ss->by_id);
	memset(ss, 0, sizeof(*ss));
}

static void gather_statement(struct sess *s, struct json_object *o)
{
	uint64_t seq = (uint64_t)ji(o, "stmt");
	const char *vd = js(o, "verdict");

	if (seq > s->statements)
		s->statements = seq;
	/* hoopd says who in a session's first statement record of each segment */
	if (!s->who && jo(o, "who"))
		s->who = json_object_get(jo(o, "who"));
	if (!strcmp(vd, "deny"))
		s->denied++;
	s->verdicts |= (unsigned)verdict_bit(vd);
}

int sessions_gather(const struct rec *r, void *arg)
{
	struct sessions *ss = arg;
	const char *kind = js(r->o, "kind"), *id = js(r->o, "session");
	struct sess *s;

	if (!strcmp(kind, "audit_open")) {
		/* hoopd (re)started: sessions still open were cut off by an unclean stop. */
		for (size_t i = 0; i < ss->n; i++)
			if (!ss->v[i]->ended)
				ss->v[i]->orphaned = 1, ss->v[i]->ended = 1;
		return 0;
	}
	if (!*id || !(s = sess_get(ss, id, 1)))
		return 0;
	snprintf(s->last_ts, sizeof(s->last_ts), "%s", js(r->o, "ts"));
	s->last_us = rec_us(r->o);
	if (!strcmp(kind, "session_start")) {
		if (!s->start)
			s->start = json_object_get(r->o);
		snprintf(s->start_ts, sizeof(s->start_ts), "%s", js(r->o, "ts"));
	} else if (!strcmp(kind, "statement")) {
		gather_statement(s, r->o);
	} else if (!strcmp(kind, "session_end")) {
		s->ended = 1;
		s->orphaned = 0;
		snprintf(s->end_reason, sizeof(s->end_reason), "%s", js(r->o, "reason"));
		s->bytes_up = ji(r->o, "bytes_agent_to_db");
		s->bytes_down = ji(r->o, "bytes_db_to_agent");
		s->duration_ms = ji(r->o, "duration_ms");
	}
	if (!s->start_ts[0])
		snprintf(s->start_ts, sizeof(s->start_ts), "%s", js(r->o, "ts"));
	return 0;
}

static const char *end_of(const struct sess *s)
{
	if (s->ended && !s->orphaned)
		return s->end_reason;
	if (s->orphaned)
		return "(no end record: hoopd stopped uncleanly)";
	return "(open)";
}

/* ---- the listing ------------------------------------------------------------------------- */

enum { NCOL = 8 };

static const char *const heads[NCOL] = {"SESSION",	 "START", "OWNER",  "AGENT (PID COMM EXE)",
					"USER@DATABASE", "STMTS", "DENIED", "END"};

struct listing {
	int64_t since;
	const char *owner, *db;
	unsigned vbit;
	int json;
	/* the table, for text */
	char ***rows;
	int shown;
	int width[NCOL];
};

/* Without its session_start (retention), what a statement record said of the session. */
static struct json_object *agent_of(const struct sess *s)
{
	return s->start ? jo(s->start, "agent") : s->who;
}

static struct json_object *login_of(const struct sess *s)
{
	return s->start ? s->start : s->who;
}

static int sess_matches(const struct listing *ls, const struct sess *s)
{
	/* --since: sessions active since T (started then, or still going then) */
	if (s->last_us < ls->since)
		return 0;
	if (ls->owner && strcmp(js(agent_of(s), "owner"), ls->owner))
		return 0;
	if (ls->db && strcmp(js(login_of(s), "database"), ls->db))
		return 0;
	return !ls->vbit || (s->verdicts & ls->vbit);
}

static void sess_print_json(const struct sess *s)
{
	struct json_object *ag = agent_of(s), *login = login_of(s);
	struct jbuf j;

	jb_init(&j);
	jb_obj_open(&j);
	jb_kv_str(&j, "session", s->id);
	jb_kv_str(&j, "start", s->start_ts);
	jb_kv_str(&j, "last", s->last_ts);
	jb_kv_str(&j, "owner", js(ag, "owner"));
	jb_kv_int(&j, "pid", ji(ag, "pid"));
	jb_kv_int(&j, "uid", ji(ag, "uid"));
	jb_kv_str(&j, "comm", js(ag, "comm"));
	jb_kv_str(&j, "exe", js(ag, "exe"));
	jb_kv_str(&j, "cgroup", js(ag, "cgroup"));
	jb_kv_str(&j, "user", js(login, "user"));
	jb_kv_str(&j, "database", js(login, "database"));
	jb_kv_str(&j, "application_name", js(s->start, "application_name"));
	/* every protocol's sessions: opaque tcp ones are known by these */
	jb_kv_str(&j, "target", js(s->start, "target"));
	jb_kv_str(&j, "protocol", js(s->start, "protocol"));
	jb_kv_int(&j, "bytes_agent_to_db", s->bytes_up);
	jb_kv_int(&j, "bytes_db_to_agent", s->bytes_down);
	jb_kv_int(&j, "duration_ms", s->duration_ms);
	jb_kv_uint(&j, "statements", s->statements);
	jb_kv_uint(&j, "denied", s->denied);
	jb_kv_str(&j, "end", end_of(s));
	jb_obj_close(&j);
	printf("%s\n", jb_str(&j));
	jb_free(&j);
}

/* The session's row of the table, its cells escaped for a terminal. 0, or -1. */
static int sess_row(const struct sess *s, char **row)
{
	struct json_object *ag = agent_of(s), *login = login_of(s);

	if (asprintf(&row[0], "%s", disp(s->id)) < 0 ||
	    asprintf(&row[1], "%s", disp(s->start_ts)) < 0 ||
	    asprintf(&row[2], "%s", *js(ag, "owner") ? jd(ag, "owner") : "-") < 0 ||
	    (s->start ? asprintf(&row[3], "%lld %s %s", (long long)ji(ag, "pid"), jd(ag, "comm"),
				 jd(ag, "exe"))
		      : asprintf(&row[3], "(no session_start record)")) < 0 ||
	    (has(login, "user") || !s->start
		 ? asprintf(&row[4], "%s@%s", jd(login, "user"), jd(login, "database"))
		 : asprintf(&row[4], "(%s %s: %lld B up, %lld B down)", jd(s->start, "protocol"),
			    jd(s->start, "target"), (long long)s->bytes_up,
			    (long long)s->bytes_down)) < 0 ||
	    asprintf(&row[5], "%llu", (unsigned long long)s->statements) < 0 ||
	    asprintf(&row[6], "%llu", (unsigned long long)s->denied) < 0 ||
	    asprintf(&row[7], "%s", disp(end_of(s))) < 0)
		return -1;
	return 0;
}

/* Columns padded to width; the counts (5 and 6) right-aligned, the last one unpadded. */
static void print_row(const char *const *cell, const int *width, int n)
{
	for (int c = 0; c < n; c++) {
		const char *v = cell[c] ? cell[c] : "";

		if (c == n - 1)
			printf("%s\n", v);
		else if (c == 5 || c == 6)
			printf("%*s  ", width[c], v);
		else
			printf("%-*s  ", width[c], v);
	}
}

/* Every session that matches: printed (--json) or into the table. */
static void list_sessions(struct listing *ls, const struct sessions *ss)
{
	for (int c = 0; c < NCOL; c++)
		ls->width[c] = (int)strlen(heads[c]);
	for (size_t i = 0; i < ss->n; i++) {
		const struct sess *s = ss->v[i];
		char **row;

		if (!sess_matches(ls, s))
			continue;
		if (ls->json) {
			sess_print_json(s);
			ls->shown++;
			continue;
		}
		row = ls->rows[ls->shown++] = calloc(NCOL, sizeof(char *));
		if (!row || sess_row(s, row))
			break;
		for (int c = 0; c < NCOL; c++)
			if ((int)strlen(row[c]) > ls->width[c])
				ls->width[c] = (int)strlen(row[c]);
	}
}

static void print_table(struct listing *ls)
{
	if (!ls->json && ls->shown) {
		print_row(heads, ls->width, NCOL);
		for (int i = 0; i < ls->shown && ls->rows[i]; i++)
			print_row((const char *const *)ls->rows[i], ls->width, NCOL);
	}
	for (int i = 0; i < ls->shown && ls->rows[i]; i++) {
		for (int c = 0; c < NCOL; c++)
			free(ls->rows[i][c]);
		free(ls->rows[i]);
	}
}

static const char sessions_usage[] =
    "usage: hoopctl sessions [--state-dir DIR] [--since T] [--owner O] [--db D] "
    "[--verdict V] [--json]\n";

/* The options into ls and *state. -1 to go on, or the exit code. */
static int sessions_opts(struct listing *ls, const char **state, int argc, char **argv)
{
	static const struct option opts[] = {{"state-dir", required_argument, 0, 'd'},
					     {"since", required_argument, 0, 's'},
					     {"owner", required_argument, 0, 'o'},
					     {"db", required_argument, 0, 'b'},
					     {"verdict", required_argument, 0, 'v'},
					     {"json", no_argument, 0, 'j'},
					     {"help", no_argument, 0, 'h'},
					     {0}};
	static const struct trail_cmd cmd = {"sessions", sessions_usage, opts};
	int c, rc = -1;

	while ((c = trail_cmd_opt(&cmd, argc, argv, &rc)) != -1) {
		if (c == 'd') {
			*state = optarg;
		} else if (c == 's') {
			if (parse_since("sessions", optarg, &ls->since))
				return 2;
		} else if (c == 'o') {
			ls->owner = optarg;
		} else if (c == 'b') {
			ls->db = optarg;
		} else if (c == 'v') {
			ls->vbit = (unsigned)verdict_bit(optarg);
			if (!ls->vbit) {
				fprintf(stderr,
					"hoopctl sessions: --verdict is one of allow, deny, "
					"hold, not_run\n");
				return 2;
			}
		} else if (c == 'j') {
			ls->json = 1;
		}
	}
	return rc >= 0 ? rc : trail_cmd_args(&cmd, argc, argv, 0) ? 2 : -1;
}

int cmd_sessions(int argc, char **argv)
{
	struct listing ls = {.since = INT64_MIN};
	const char *state = DEFAULT_STATE_DIR;
	struct sessions ss;
	int rc = sessions_opts(&ls, &state, argc, argv);

	if (rc >= 0)
		return rc;
	if (sessions_init(&ss) || trail_each(state, NULL, sessions_gather, &ss)) {
		sessions_free(&ss);
		return 2;
	}
	ls.rows = calloc(ss.n + 1, sizeof(*ls.rows));
	if (!ls.rows) {
		sessions_free(&ss);
		return 2;
	}
	list_sessions(&ls, &ss);
	print_table(&ls);
	free(ls.rows);
	if (!ls.shown && !ls.json)
		printf("no sessions%s\n", ss.n ? " match" : " in the trail");
	sessions_free(&ss);
	return 0;
}
