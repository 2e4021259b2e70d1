/*
 * hoopctl's reading of the audit trail (trailread.h): the segments in order, every record,
 * a record's fields, times, and the option handling the trail commands share. The trail is
 * read offline, straight from <state dir>/audit (no running hoopd needed).
 */
#include "trailread.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "disp.h"

/* ---- segments ------------------------------------------------------------------------------ */

static int seg_cmp(const void *a, const void *b)
{
	const struct seg *x = a, *y = b;

	return x->n < y->n ? -1 : x->n > y->n;
}

void trail_list_free(struct trail_list *t)
{
	free(t->segs);
	t->segs = NULL;
	t->nsegs = 0;
	if (t->dfd >= 0)
		close(t->dfd);
	t->dfd = -1;
}

/* Segment n seen again: both files exist for a moment while hoopd's compressor replaces a
 * closed segment, and when hoopd stopped in that moment; the plain one is whole. 1 if so. */
static int seg_seen(struct trail_list *t, uint32_t n, int gz, const char *name)
{
	for (int i = 0; i < t->nsegs; i++) {
		if (t->segs[i].n != n)
			continue;
		t->segs[i].both = 1;
		if (!gz) {
			t->segs[i].gz = 0;
			snprintf(t->segs[i].name, sizeof(t->segs[i].name), "%s", name);
		}
		return 1;
	}
	return 0;
}

static int seg_add(struct trail_list *t, int *cap, uint32_t n, int gz, const char *name)
{
	if (t->nsegs == *cap) {
		int nc = *cap ? 2 * *cap : 64;
		struct seg *ns = realloc(t->segs, sizeof(*ns) * (size_t)nc);

		if (!ns)
			return -ENOMEM;
		t->segs = ns;
		*cap = nc;
	}
	t->segs[t->nsegs].n = n;
	t->segs[t->nsegs].gz = gz;
	t->segs[t->nsegs].both = 0;
	snprintf(t->segs[t->nsegs].name, sizeof(t->segs[t->nsegs].name), "%s", name);
	t->nsegs++;
	return 0;
}

int trail_list_open(const char *state_dir, struct trail_list *t)
{
	DIR *d = NULL;
	struct dirent *de;
	int cap = 0, e, lfd = -1;

	memset(t, 0, sizeof(*t));
	snprintf(t->dir, sizeof(t->dir), "%s/audit", state_dir);
	/* dfd stays for opening the segments; the listing reads its own duplicate */
	t->dfd = open(t->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (t->dfd >= 0 && (lfd = fcntl(t->dfd, F_DUPFD_CLOEXEC, 0)) >= 0)
		d = fdopendir(lfd);
	if (!d) {
		e = errno;
		if (lfd >= 0)
			close(lfd);
		fprintf(stderr, "hoopctl: cannot read the audit trail in %s: %s%s\n", t->dir,
			strerror(e), e == EACCES ? " (the trail is root's: run as root)" : "");
		trail_list_free(t);
		return -e;
	}
	while ((de = readdir(d))) {
		uint32_t n;
		enum trail_seg_kind kind;

		/* Only seg-NNNNNNNN.jsonl and .jsonl.gz are segments (not *.tmp, not others). */
		if (!trail_seg_parse(de->d_name, &n, &kind) || kind == TRAIL_SEG_GZ_TMP ||
		    seg_seen(t, n, kind == TRAIL_SEG_GZ, de->d_name))
			continue;
		if (seg_add(t, &cap, n, kind == TRAIL_SEG_GZ, de->d_name)) {
			closedir(d);
			trail_list_free(t);
			fprintf(stderr, "hoopctl: out of memory\n");
			return -ENOMEM;
		}
	}
	closedir(d);
	if (t->nsegs)
		qsort(t->segs, (size_t)t->nsegs, sizeof(*t->segs), seg_cmp);
	return 0;
}

int seg_lines_open(struct trail_lines *l, const struct trail_list *t, struct seg *s)
{
	int r = trail_lines_open(l, t->dfd, s->name, MAX_RECORD);

	if (r && errno == ENOENT && !s->gz) {
		/* Closed and compressed by a running hoopd since the listing. */
		trail_lines_close(l);
		s->gz = 1;
		trail_seg_name(s->name, sizeof(s->name), s->n, TRAIL_SEG_GZ);
		r = trail_lines_open(l, t->dfd, s->name, MAX_RECORD);
	}
	if (r)
		snprintf(l->err, sizeof(l->err), "cannot open %s/%s: %s", t->dir, s->name,
			 strerror(errno));
	return r;
}

/* ---- records ------------------------------------------------------------------------------- */

/* The records of one segment to fn. 0 (*stop set when fn said so), or -1 with a message. */
static int seg_each(struct trail_list *t, struct seg *s, const char *want, rec_fn fn, void *arg,
		    int *stop)
{
	struct trail_lines l;
	int r = 0;

	if (seg_lines_open(&l, t, s)) {
		fprintf(stderr, "hoopctl: %s\n", l.err);
		trail_lines_close(&l);
		return -1;
	}
	while (!*stop && (r = trail_lines_next(&l)) == 1) {
		struct rec rr = {.seg = s, .lineno = l.lineno, .line = l.line, .len = l.len};
		char prev[TRAIL_HASH_HEX];
		const char *why;

		if (l.torn || (want && !strstr(l.line, want)))
			continue;
		if (trail_parse_head(l.line, l.len, &rr.seq, prev))
			continue;
		rr.o = parse_json(l.line, l.len, &why);
		if (!rr.o)
			continue;
		*stop = fn(&rr, arg);
		json_object_put(rr.o);
	}
	if (!*stop && r < 0) {
		fprintf(stderr, "hoopctl: reading %s/%s: %s (run hoopctl verify)\n", t->dir,
			s->name, l.err);
		trail_lines_close(&l);
		return -1;
	}
	trail_lines_close(&l);
	return 0;
}

int trail_each(const char *state_dir, const char *want, rec_fn fn, void *arg)
{
	struct trail_list t;
	int rc = 0, stop = 0;

	if (trail_list_open(state_dir, &t))
		return -1;
	for (int i = 0; i < t.nsegs && !stop && !rc; i++)
		rc = seg_each(&t, &t.segs[i], want, fn, arg, &stop);
	trail_list_free(&t);
	return rc;
}

struct json_object *parse_json(const char *s, size_t len, const char **why)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *o;

	if (!tok) {
		*why = "out of memory";
		return NULL;
	}
	o = json_tokener_parse_ex(tok, s, (int)len);
	if (!o || json_tokener_get_error(tok) != json_tokener_success ||
	    json_tokener_get_parse_end(tok) != len || !json_object_is_type(o, json_type_object)) {
		*why = o ? "not one JSON object"
			 : json_tokener_error_desc(json_tokener_get_error(tok));
		if (o)
			json_object_put(o);
		o = NULL;
	}
	json_tokener_free(tok);
	return o;
}

const char *js(struct json_object *o, const char *k)
{
	struct json_object *v;

	if (!o || !json_object_object_get_ex(o, k, &v) || !v)
		return "";
	return json_object_get_string(v);
}

int has(struct json_object *o, const char *k)
{
	struct json_object *v;

	return o && json_object_object_get_ex(o, k, &v) && v;
}

int64_t ji(struct json_object *o, const char *k)
{
	struct json_object *v;

	if (!o || !json_object_object_get_ex(o, k, &v) || !v)
		return 0;
	return json_object_get_int64(v);
}

const char *jd(struct json_object *o, const char *k)
{
	return disp(js(o, k));
}

const char *jtext(struct json_object *o)
{
	return disp(o ? json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN) : "{}");
}

struct json_object *jo(struct json_object *o, const char *k)
{
	struct json_object *v;

	if (!o || !json_object_object_get_ex(o, k, &v))
		return NULL;
	return v;
}

/* ---- time ---------------------------------------------------------------------------------- */

/* ".916898": the fraction of a second in microseconds (digits past the sixth are dropped). */
static const char *parse_frac(const char *p, int64_t *frac)
{
	int64_t scale = 1000000;

	*frac = 0;
	if (!isdigit((unsigned char)*p))
		return NULL;
	for (; isdigit((unsigned char)*p); p++) {
		if (scale > 1) {
			scale /= 10;
			*frac += (*p - '0') * scale;
		}
	}
	return p;
}

int parse_rfc3339(const char *s, int64_t *us)
{
	struct tm tm = {0};
	int y, mo, d, h = 0, mi = 0, se = 0, n = 0;
	int64_t frac = 0;
	const char *p;

	if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || n != 10)
		return -1;
	p = s + n;
	if (*p == 'T' || *p == 't' || *p == ' ') {
		if (sscanf(p + 1, "%2d:%2d:%2d%n", &h, &mi, &se, &n) != 3 || n != 8)
			return -1;
		p += 1 + n;
		if (*p == '.' && !(p = parse_frac(p + 1, &frac)))
			return -1;
	}
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = se;
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60)
		return -1;
	*us = (int64_t)timegm(&tm) * 1000000 + frac;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int oh, om;

		if (sscanf(p + 1, "%2d:%2d%n", &oh, &om, &n) != 2 || n != 5)
			return -1;
		*us -= (*p == '+' ? 1 : -1) * ((int64_t)oh * 3600 + om * 60) * 1000000;
		p += 1 + n;
	} else if (*p && p != s + 10) {
		return -1;
	}
	return *p ? -1 : 0;
}

/* "90m" and the like in seconds, or -1. */
static int64_t duration_s(const char *s)
{
	static const struct {
		char c;
		int64_t s;
	} units[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}, {'w', 7 * 86400}};
	char *end;
	long long v = strtoll(s, &end, 10);

	if (end == s || v < 0 || strlen(end) != 1)
		return -1;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (*end == units[i].c)
			return (int64_t)v * units[i].s;
	return -1;
}

int parse_since(const char *cmd, const char *s, int64_t *us)
{
	int64_t back;

	if (parse_rfc3339(s, us) == 0)
		return 0;
	back = duration_s(s);
	if (back < 0) {
		fprintf(stderr,
			"hoopctl %s: --since wants RFC 3339 (2026-11-26T14:00:00Z) or a duration "
			"(90m, 12h, 2d), got '%s'\n",
			cmd, s);
		return -1;
	}
	*us = ((int64_t)time(NULL) - back) * 1000000;
	return 0;
}

int64_t rec_us(struct json_object *o)
{
	int64_t us;

	return parse_rfc3339(js(o, "ts"), &us) ? INT64_MIN : us;
}

/* ---- options -------------------------------------------------------------------------------- */

int trail_cmd_opt(const struct trail_cmd *c, int argc, char **argv, int *exit_rc)
{
	int o = getopt_long(argc, argv, "h", c->opts, NULL);

	if (o == 'h') {
		fputs(c->usage, stdout);
		*exit_rc = 0;
		return -1;
	}
	if (o == '?' || o == ':') {
		fputs(c->usage, stderr);
		*exit_rc = 2;
		return -1;
	}
	return o;
}

int trail_cmd_args(const struct trail_cmd *c, int argc, char **argv, int want)
{
	if (argc - optind == want)
		return 0;
	if (argc - optind > want)
		fprintf(stderr, "hoopctl %s: unexpected argument '%s'\n%s", c->name,
			argv[optind + want], c->usage);
	else
		fputs(c->usage, stderr);
	return 2;
}
