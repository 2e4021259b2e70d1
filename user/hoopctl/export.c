/*
 * hoopctl export: every statement of the audit trail since a time, with the identity of its
 * session (sessions_gather) and its outcome (complete or error), as JSON Lines or CSV.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "disp.h"
#include "hoopctl.h"
#include "json.h"
#include "trailread.h"

/* A statement's outcome, keyed "session/seq" (the last one recorded wins). */
struct outcome {
	char key[48];
	char tag[64];
	int64_t rows;
	char sqlstate[8];
	char *message;
	int has_complete, has_error;
};

struct exporter {
	int64_t since;
	struct sessions ss;
	struct json_object **stmts; /* statements since T, in order */
	uint64_t *rseq;
	size_t n, cap;
	struct lh_table *outcomes;
};

static void outcome_free(struct lh_entry *e)
{
	struct outcome *oc = (struct outcome *)lh_entry_v(e);

	free(oc->message);
	free(oc);
}

static struct outcome *outcome_get(struct exporter *x, const char *sess, int64_t seq, int create)
{
	char key[48];
	void *p;
	struct outcome *oc;

	snprintf(key, sizeof(key), "%s/%lld", sess, (long long)seq);
	if (lh_table_lookup_ex(x->outcomes, key, &p))
		return p;
	if (!create || !(oc = calloc(1, sizeof(*oc))))
		return NULL;
	snprintf(oc->key, sizeof(oc->key), "%s", key);
	lh_table_insert(x->outcomes, oc->key, oc);
	return oc;
}

static int export_gather(const struct rec *r, void *arg)
{
	struct exporter *x = arg;
	const char *kind = js(r->o, "kind");

	sessions_gather(r, &x->ss);
	if (!has(r->o, "session") || rec_us(r->o) < x->since)
		return 0;
	if (!strcmp(kind, "statement")) {
		if (x->n == x->cap) {
			size_t nc = x->cap ? 2 * x->cap : 1024;
			struct json_object **a = realloc(x->stmts, nc * sizeof(*a));
			uint64_t *b = a ? realloc(x->rseq, nc * sizeof(*b)) : NULL;

			if (a)
				x->stmts = a;
			if (!a || !b) {
				fprintf(stderr, "hoopctl export: out of memory\n");
				return 1;
			}
			x->rseq = b;
			x->cap = nc;
		}
		x->rseq[x->n] = r->seq;
		x->stmts[x->n++] = json_object_get(r->o);
	} else if (!strcmp(kind, "complete") || (!strcmp(kind, "error") && has(r->o, "stmt"))) {
		struct outcome *oc = outcome_get(x, js(r->o, "session"), ji(r->o, "stmt"), 1);

		if (!oc)
			return 0;
		if (*kind == 'c') {
			snprintf(oc->tag, sizeof(oc->tag), "%s", js(r->o, "tag"));
			oc->rows = ji(r->o, "rows");
			oc->has_complete = 1;
		} else {
			snprintf(oc->sqlstate, sizeof(oc->sqlstate), "%s", js(r->o, "sqlstate"));
			free(oc->message);
			oc->message = strdup(js(r->o, "message"));
			oc->has_error = 1;
		}
	}
	return 0;
}

static void csv_field(const char *s, int last)
{
	s = disp(s); /* a spreadsheet or a terminal shows it: no control byte gets through */
	if (strpbrk(s, ",\"\r\n")) {
		putchar('"');
		for (; *s; s++) {
			if (*s == '"')
				putchar('"');
			putchar(*s);
		}
		putchar('"');
	} else {
		fputs(s, stdout);
	}
	putchar(last ? '\n' : ',');
}

static const char *const export_cols[] = {
    "ts",	"record_seq", "session", "stmt",    "owner",  "pid",	  "uid",
    "comm",	"exe",	      "cgroup",	 "address", "user",   "database", "application_name",
    "protocol", "verdict",    "reason",	 "text",    "params", "prepared", "outcome",
    "rows",	"sqlstate",   "error",	 NULL};

/* One statement as a JSON line: the columns under their names, numbers as numbers. */
static void json_line(const char *const *vals, int k)
{
	struct jbuf j;

	jb_init(&j);
	jb_obj_open(&j);
	for (int c = 0; c < k; c++) {
		const char *name = export_cols[c];

		if (!strcmp(name, "record_seq") || !strcmp(name, "stmt") || !strcmp(name, "pid") ||
		    !strcmp(name, "uid") || !strcmp(name, "rows")) {
			jb_kv_int(&j, name, strtoll(vals[c], NULL, 10));
		} else if (!strcmp(name, "params")) {
			jb_key(&j, name);
			jb_raw(&j, *vals[c] ? vals[c] : "null");
		} else {
			jb_kv_str(&j, name, vals[c]);
		}
	}
	jb_obj_close(&j);
	printf("%s\n", jb_str(&j));
	jb_free(&j);
}

static void export_one(struct exporter *x, size_t i, int csv)
{
	struct json_object *st = x->stmts[i];
	struct sess *s = sess_get(&x->ss, js(st, "session"), 0);
	struct json_object *start = s ? s->start : NULL;
	struct json_object *ag = jo(start, "agent"), *who = jo(st, "who");
	struct outcome *oc = outcome_get(x, js(st, "session"), ji(st, "stmt"), 0);
	const char *vd = js(st, "verdict");
	char rseq[24], seq[24], pid[24], uid[24], rows[24];
	const char *vals[sizeof(export_cols) / sizeof(export_cols[0])];
	const char *outcome;
	int k = 0;

	/* Identity from the session_start; a statement whose session_start is gone (retention)
	 * has the "who" of its session's first statement record in its segment. */
	if (!who && s)
		who = s->who;
	if (!ag)
		ag = who;
	snprintf(rseq, sizeof(rseq), "%llu", (unsigned long long)x->rseq[i]);
	snprintf(seq, sizeof(seq), "%lld", (long long)ji(st, "stmt"));
	snprintf(pid, sizeof(pid), "%lld", (long long)ji(ag, "pid"));
	snprintf(uid, sizeof(uid), "%lld", (long long)ji(ag, "uid"));
	snprintf(rows, sizeof(rows), "%lld", oc && oc->has_complete ? (long long)oc->rows : 0LL);
	if (oc && oc->has_error)
		outcome = "error";
	else if (oc && oc->has_complete)
		outcome = oc->tag;
	else if (!strcmp(vd, "allow"))
		outcome = "(no outcome recorded)";
	else
		outcome = "(not run)";
	vals[k++] = js(st, "ts");
	vals[k++] = rseq;
	vals[k++] = js(st, "session");
	vals[k++] = seq;
	vals[k++] = js(ag, "owner");
	vals[k++] = pid;
	vals[k++] = uid;
	vals[k++] = js(ag, "comm");
	vals[k++] = js(ag, "exe");
	vals[k++] = js(ag, "cgroup");
	vals[k++] = js(ag, "address");
	/* after a change of login (MySQL's COM_CHANGE_USER) the statement says its own */
	vals[k++] = has(st, "db_user") ? js(st, "db_user") : start ? js(start, "user") : js(who, "user");
	vals[k++] = has(st, "db_user")	 ? js(st, "database")
		    : start		 ? js(start, "database")
					 : js(who, "database");
	vals[k++] = js(start, "application_name");
	vals[k++] = js(st, "protocol");
	vals[k++] = vd;
	vals[k++] = js(st, "reason");
	vals[k++] = js(st, "text");
	vals[k++] = has(st, "params")
			? json_object_to_json_string_ext(jo(st, "params"), JSON_C_TO_STRING_PLAIN)
			: "";
	vals[k++] = js(st, "prepared");
	vals[k++] = outcome;
	vals[k++] = rows;
	vals[k++] = oc && oc->has_error ? oc->sqlstate : "";
	vals[k++] = oc && oc->has_error && oc->message ? oc->message : "";
	if (csv)
		for (int c = 0; c < k; c++)
			csv_field(vals[c], c == k - 1);
	else
		json_line(vals, k);
}

static const char export_usage[] =
    "usage: hoopctl export --since T [--state-dir DIR] --format jsonl|csv\n";

/* The options into x, *state and *format. -1 to go on, or the exit code. */
static int export_opts(struct exporter *x, const char **state, const char **format, int argc,
		       char **argv)
{
	static const struct option opts[] = {{"state-dir", required_argument, 0, 'd'},
					     {"since", required_argument, 0, 's'},
					     {"format", required_argument, 0, 'f'},
					     {"help", no_argument, 0, 'h'},
					     {0}};
	static const struct trail_cmd cmd = {"export", export_usage, opts};
	int c, rc = -1, have_since = 0;

	while ((c = trail_cmd_opt(&cmd, argc, argv, &rc)) != -1) {
		if (c == 'd') {
			*state = optarg;
		} else if (c == 's') {
			if (parse_since("export", optarg, &x->since))
				return 2;
			have_since = 1;
		} else if (c == 'f') {
			*format = optarg;
		}
	}
	if (rc >= 0)
		return rc;
	if (trail_cmd_args(&cmd, argc, argv, 0))
		return 2;
	if (!have_since || !*format || (strcmp(*format, "jsonl") && strcmp(*format, "csv"))) {
		fputs(export_usage, stderr);
		return 2;
	}
	return -1;
}

int cmd_export(int argc, char **argv)
{
	const char *state = DEFAULT_STATE_DIR, *format = NULL;
	struct exporter x = {.since = INT64_MIN};
	int rc = export_opts(&x, &state, &format, argc, argv), csv;

	if (rc >= 0)
		return rc;
	rc = 2;
	csv = !strcmp(format, "csv");
	x.outcomes = lh_kchar_table_new(4096, outcome_free);
	if (sessions_init(&x.ss) || !x.outcomes)
		goto cleanup;
	if (trail_each(state, NULL, export_gather, &x))
		goto cleanup;
	if (csv)
		for (int k = 0; export_cols[k]; k++)
			csv_field(export_cols[k], !export_cols[k + 1]);
	for (size_t i = 0; i < x.n; i++)
		export_one(&x, i, csv);
	rc = fflush(stdout) ? 2 : 0;
cleanup:
	for (size_t i = 0; i < x.n; i++)
		json_object_put(x.stmts[i]);
	free(x.stmts);
	free(x.rseq);
	if (x.outcomes)
		lh_table_free(x.outcomes);
	sessions_free(&x.ss);
	return rc;
}
