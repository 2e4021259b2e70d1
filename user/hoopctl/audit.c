/*
 * hoopctl verify / sessions / replay / export: the audit trail read offline, straight from
 * <state dir>/audit/ (no running hoopd needed). verify recomputes the hash chain and every
 * checkpoint HMAC; the others read the records as JSON. The format is in user/hoopd/audit.h
 * and docs/audit.md; the writer is user/hoopd/audit.c.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <json-c/json.h>
#include <json-c/linkhash.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "disp.h"
#include "hex.h"
#include "json.h"

int cmd_verify(int argc, char **argv);
int cmd_sessions(int argc, char **argv);
int cmd_replay(int argc, char **argv);
int cmd_export(int argc, char **argv);

#define DEFAULT_STATE_DIR "/var/lib/hoop"
/* hoopd records statements of up to 64 MiB (--max-message); escaped as JSON they grow. */
#define MAX_RECORD (512u << 20)
#define ZERO_HASH  "0000000000000000000000000000000000000000000000000000000000000000"

/* ---- segments and lines ---------------------------------------------------------------- */

struct seg {
	uint32_t n;
	int gz;	  /* the file read is seg-N.jsonl.gz */
	int both; /* seg-N.jsonl and seg-N.jsonl.gz both exist (being compressed, or hoopd stopped
		   * while compressing it) */
	char name[40];
};

struct trail {
	char dir[4096];
	struct seg *segs;
	int nsegs;
};

static int seg_cmp(const void *a, const void *b)
{
	const struct seg *x = a, *y = b;

	return x->n < y->n ? -1 : x->n > y->n;
}

/* Only seg-NNNNNNNN.jsonl and seg-NNNNNNNN.jsonl.gz are segments (not *.tmp, not others). */
static int seg_name(const char *name, uint32_t *n, int *gz)
{
	char *end;
	unsigned long v;

	if (strncmp(name, "seg-", 4) || strlen(name) < 18)
		return 0;
	for (int i = 4; i < 12; i++)
		if (!isdigit((unsigned char)name[i]))
			return 0;
	v = strtoul(name + 4, &end, 10);
	if (end != name + 12)
		return 0;
	if (!strcmp(end, ".jsonl"))
		*gz = 0;
	else if (!strcmp(end, ".jsonl.gz"))
		*gz = 1;
	else
		return 0;
	*n = (uint32_t)v;
	return 1;
}

static void trail_free(struct trail *t)
{
	free(t->segs);
	t->segs = NULL;
	t->nsegs = 0;
}

/* List the segments in number order. 0, or a negative errno with a message printed. */
static int trail_open(const char *state_dir, struct trail *t)
{
	DIR *d;
	struct dirent *de;
	int cap = 0;

	memset(t, 0, sizeof(*t));
	snprintf(t->dir, sizeof(t->dir), "%s/audit", state_dir);
	d = opendir(t->dir);
	if (!d) {
		int e = errno;

		fprintf(stderr, "hoopctl: cannot read the audit trail in %s: %s%s\n", t->dir,
			strerror(e), e == EACCES ? " (the trail is root's: run as root)" : "");
		return -e;
	}
	while ((de = readdir(d))) {
		uint32_t n;
		int gz, dup = 0;

		if (!seg_name(de->d_name, &n, &gz))
			continue;
		for (int i = 0; i < t->nsegs; i++) {
			if (t->segs[i].n != n)
				continue;
			/* Both exist for a moment while hoopd's compressor replaces a closed
			 * segment, and when hoopd stopped in that moment: the plain one is whole. */
			t->segs[i].both = 1;
			if (!gz) {
				t->segs[i].gz = 0;
				snprintf(t->segs[i].name, sizeof(t->segs[i].name), "%s",
					 de->d_name);
			}
			dup = 1;
		}
		if (dup)
			continue;
		if (t->nsegs == cap) {
			struct seg *ns =
			    realloc(t->segs, sizeof(*ns) * (size_t)(cap = cap ? 2 * cap : 64));

			if (!ns) {
				closedir(d);
				trail_free(t);
				fprintf(stderr, "hoopctl: out of memory\n");
				return -ENOMEM;
			}
			t->segs = ns;
		}
		t->segs[t->nsegs].n = n;
		t->segs[t->nsegs].gz = gz;
		t->segs[t->nsegs].both = 0;
		snprintf(t->segs[t->nsegs].name, sizeof(t->segs[t->nsegs].name), "%s", de->d_name);
		t->nsegs++;
	}
	closedir(d);
	if (t->nsegs)
		qsort(t->segs, (size_t)t->nsegs, sizeof(*t->segs), seg_cmp);
	return 0;
}

/* One segment, line by line, whatever the line's length (up to MAX_RECORD). */
struct lines {
	gzFile f;
	char chunk[65536];
	int clen, cpos;
	char *line;
	size_t len, cap;
	unsigned lineno;
	int torn;      /* the last line returned had no newline: the file ends inside it */
	char err[256]; /* why the last call returned -1 */
	int damaged;   /* that error is in the data (bad gzip stream, oversized line) */
};

static int lines_open(struct lines *l, const struct trail *t, struct seg *s)
{
	char p[4200];

	memset(l, 0, sizeof(*l));
	snprintf(p, sizeof(p), "%s/%s", t->dir, s->name);
	l->f = gzopen(p, "rb");
	if (!l->f && errno == ENOENT && !s->gz) {
		/* Closed and compressed by a running hoopd since the listing. */
		s->gz = 1;
		snprintf(s->name, sizeof(s->name), "seg-%08u.jsonl.gz", s->n);
		snprintf(p, sizeof(p), "%s/%s", t->dir, s->name);
		l->f = gzopen(p, "rb");
	}
	if (!l->f) {
		snprintf(l->err, sizeof(l->err), "cannot open %s: %s", p, strerror(errno));
		return -1;
	}
	gzbuffer(l->f, 1 << 17);
	return 0;
}

static void lines_close(struct lines *l)
{
	if (l->f)
		gzclose(l->f);
	l->f = NULL;
	free(l->line);
	l->line = NULL;
}

/* 1: a line in l->line (l->len bytes, no newline, NUL-terminated), 0: end, -1: error. */
static int lines_next(struct lines *l)
{
	l->len = 0;
	l->torn = 0;
	for (;;) {
		char *nl;
		size_t take;

		if (l->cpos == l->clen) {
			l->clen = gzread(l->f, l->chunk, sizeof(l->chunk));
			l->cpos = 0;
			if (l->clen < 0) {
				int ze;
				const char *m = gzerror(l->f, &ze);

				l->clen = 0;
				l->damaged = ze != Z_ERRNO;
				snprintf(l->err, sizeof(l->err), "%s",
					 ze == Z_ERRNO ? strerror(errno) : m);
				return -1;
			}
			if (l->clen == 0) {
				int ze;
				const char *m = gzerror(l->f, &ze);

				if (ze != Z_OK && ze != Z_STREAM_END) {
					/* e.g. a .gz cut short: "unexpected end of file" */
					l->damaged = ze != Z_ERRNO;
					snprintf(l->err, sizeof(l->err), "%s",
						 ze == Z_ERRNO ? strerror(errno) : m);
					return -1;
				}
				if (!l->len)
					return 0;
				l->torn = 1;
				l->lineno++;
				l->line[l->len] = '\0';
				return 1;
			}
		}
		nl = memchr(l->chunk + l->cpos, '\n', (size_t)(l->clen - l->cpos));
		take = nl ? (size_t)(nl - (l->chunk + l->cpos)) : (size_t)(l->clen - l->cpos);
		if (l->len + take + 1 > MAX_RECORD) {
			l->damaged = 1;
			snprintf(l->err, sizeof(l->err), "line %u is longer than %u MiB",
				 l->lineno + 1, MAX_RECORD >> 20);
			return -1;
		}
		if (l->len + take + 1 > l->cap) {
			size_t nc = l->cap ? l->cap : 4096;
			char *x;

			while (nc < l->len + take + 1)
				nc *= 2;
			x = realloc(l->line, nc);
			if (!x) {
				snprintf(l->err, sizeof(l->err), "out of memory");
				return -1;
			}
			l->line = x;
			l->cap = nc;
		}
		memcpy(l->line + l->len, l->chunk + l->cpos, take);
		l->len += take;
		l->cpos += (int)take;
		if (nl) {
			l->cpos++;
			l->lineno++;
			l->line[l->len] = '\0';
			return 1;
		}
	}
}

/* Every record starts {"seq":N,"prev":"<64 lowercase hex>", (or } after prev). */
static int parse_head(const char *line, size_t len, uint64_t *seq, char prev[65])
{
	const char *p = line + 7, *end = line + len;
	uint64_t v = 0;
	int digits = 0;

	if (len < 7 || memcmp(line, "{\"seq\":", 7))
		return -1;
	while (p < end && isdigit((unsigned char)*p) && digits < 19) {
		v = v * 10 + (uint64_t)(*p - '0');
		p++;
		digits++;
	}
	if (!digits || (digits > 1 && line[7] == '0'))
		return -1;
	if (end - p < 9 + 64 + 2 || memcmp(p, ",\"prev\":\"", 9))
		return -1;
	p += 9;
	for (int i = 0; i < 64; i++)
		if (!isdigit((unsigned char)p[i]) && (p[i] < 'a' || p[i] > 'f'))
			return -1;
	memcpy(prev, p, 64);
	prev[64] = '\0';
	p += 64;
	if (p[0] != '"' || (p[1] != ',' && p[1] != '}'))
		return -1;
	*seq = v;
	return 0;
}

static struct json_object *parse_json(const char *s, size_t len, const char **why)
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

static const char *js(struct json_object *o, const char *k)
{
	struct json_object *v;

	if (!o || !json_object_object_get_ex(o, k, &v) || !v)
		return "";
	return json_object_get_string(v);
}

static int has(struct json_object *o, const char *k)
{
	struct json_object *v;

	return o && json_object_object_get_ex(o, k, &v) && v;
}

static int64_t ji(struct json_object *o, const char *k)
{
	struct json_object *v;

	if (!o || !json_object_object_get_ex(o, k, &v) || !v)
		return 0;
	return json_object_get_int64(v);
}

/* A string field as hoopctl shows it to a person: escaped visibly (disp.h). */
static const char *jd(struct json_object *o, const char *k)
{
	return disp(js(o, k));
}

/* A JSON value as text for a person: json-c leaves DEL, C1 and bidi controls raw. */
static const char *jtext(struct json_object *o)
{
	return disp(o ? json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN) : "{}");
}

static struct json_object *jo(struct json_object *o, const char *k)
{
	struct json_object *v;

	if (!o || !json_object_object_get_ex(o, k, &v))
		return NULL;
	return v;
}

/* ---- time --------------------------------------------------------------------------------- */

/* RFC 3339 ("2026-11-26T14:38:51.916898Z", "...+01:00"; a space for T; a bare date is
 * midnight UTC) into microseconds since the epoch. */
static int parse_rfc3339(const char *s, int64_t *us)
{
	struct tm tm = {0};
	int y, mo, d, h = 0, mi = 0, se = 0, n = 0;
	int64_t frac = 0, scale = 1000000;
	const char *p;

	if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || n != 10)
		return -1;
	p = s + n;
	if (*p == 'T' || *p == 't' || *p == ' ') {
		if (sscanf(p + 1, "%2d:%2d:%2d%n", &h, &mi, &se, &n) != 3 || n != 8)
			return -1;
		p += 1 + n;
		if (*p == '.') {
			p++;
			if (!isdigit((unsigned char)*p))
				return -1;
			while (isdigit((unsigned char)*p)) {
				if (scale > 1) {
					scale /= 10;
					frac += (*p - '0') * scale;
				}
				p++;
			}
		}
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

/* --since: RFC 3339, or a duration back from now: 90s, 30m, 1h, 2d, 1w. */
static int parse_since(const char *s, int64_t *us)
{
	char *end;
	long long v;
	int64_t unit;

	if (parse_rfc3339(s, us) == 0)
		return 0;
	v = strtoll(s, &end, 10);
	if (end == s || v < 0 || strlen(end) != 1)
		return -1;
	switch (*end) {
	case 's':
		unit = 1;
		break;
	case 'm':
		unit = 60;
		break;
	case 'h':
		unit = 3600;
		break;
	case 'd':
		unit = 86400;
		break;
	case 'w':
		unit = 7 * 86400;
		break;
	default:
		return -1;
	}
	*us = ((int64_t)time(NULL) - (int64_t)v * unit) * 1000000;
	return 0;
}

static int64_t rec_us(struct json_object *o)
{
	int64_t us;

	return parse_rfc3339(js(o, "ts"), &us) ? INT64_MIN : us;
}

/* ---- verify ------------------------------------------------------------------------------- */

struct verify {
	uint8_t key[32];
	int from; /* --from: the first record is taken on trust */
	int json;
	/* the chain so far */
	int started;
	uint64_t expect; /* next seq */
	char prev[65];	 /* hash of the last record */
	const char *prev_seg;
	unsigned prev_line;
	uint64_t prev_seq;
	/* counts */
	uint64_t records, checkpoints, since_cp;
	unsigned segments;
	uint64_t first_seq;
	/* the last record of the segment being read */
	int last_is_cp;
	char last_cp_reason[64];
	int start_unaccounted; /* the failure: segments missing before the first one */
	uint64_t good_cp_seq;  /* the last checkpoint whose HMAC verified */
	/* retention records: segments removed on purpose */
	uint32_t *removed;
	size_t nremoved, capremoved;
	/* the verdict */
	int bad;
	const char *problem;
	char where_seg[40];
	unsigned where_line;
	uint64_t where_seq;
	int where_has_seq;
	char msg[1024];
	char notes[4][512];
	int nnotes;
};

static void vfail(struct verify *v, const char *seg, unsigned line, int has_seq, uint64_t seq,
		  const char *problem, const char *fmt, ...) __attribute__((format(printf, 7, 8)));

static void vfail(struct verify *v, const char *seg, unsigned line, int has_seq, uint64_t seq,
		  const char *problem, const char *fmt, ...)
{
	va_list ap;

	if (v->bad)
		return; /* the first bad place is the one reported */
	v->bad = 1;
	v->problem = problem;
	snprintf(v->where_seg, sizeof(v->where_seg), "%s", seg);
	v->where_line = line;
	v->where_has_seq = has_seq;
	v->where_seq = seq;
	va_start(ap, fmt);
	vsnprintf(v->msg, sizeof(v->msg), fmt, ap);
	va_end(ap);
}

static void vnote(struct verify *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void vnote(struct verify *v, const char *fmt, ...)
{
	va_list ap;

	if (v->nnotes == (int)(sizeof(v->notes) / sizeof(v->notes[0])))
		return;
	va_start(ap, fmt);
	vsnprintf(v->notes[v->nnotes++], sizeof(v->notes[0]), fmt, ap);
	va_end(ap);
}

/* The record before this one, for messages: "line 16, seq 559" or "seg-..., line 9, seq 3". */
static void prev_place(const struct verify *v, const char *seg, char *out, size_t n)
{
	if (v->prev_seg && strcmp(v->prev_seg, seg))
		snprintf(out, n, "the last record of %s, line %u, seq %llu", v->prev_seg,
			 v->prev_line, (unsigned long long)v->prev_seq);
	else
		snprintf(out, n, "line %u, seq %llu", v->prev_line,
			 (unsigned long long)v->prev_seq);
}

/* One record. Returns 0 to go on, 1 once something is wrong (v->bad). */
static int verify_record(struct verify *v, const struct seg *s, const char *line, size_t len,
			 unsigned lineno)
{
	uint64_t seq;
	char prev[65], where[200], hx[65];
	uint8_t d[SHA256_DIGEST_LENGTH];
	struct json_object *o;
	const char *why = "";

	if (parse_head(line, len, &seq, prev)) {
		vfail(
		    v, s->name, lineno, 0, 0, "malformed",
		    "not an audit record: it does not start with {\"seq\":N,\"prev\":\"<64 hex>\"; "
		    "the record was modified (or the line is not hoopd's)");
		return 1;
	}
	prev_place(v, s->name, where, sizeof(where));
	if (!v->started) {
		v->first_seq = seq;
		if (!v->from && (seq != 1 || strcmp(prev, ZERO_HASH))) {
			vfail(v, s->name, lineno, 1, seq, "start_missing",
			      "the trail's first record has seq %llu and prev %.16s...; the first "
			      "record hoopd writes has seq 1 and prev 64 zeros: records before "
			      "it were deleted",
			      (unsigned long long)seq, prev);
			return 1;
		}
	} else if (seq != v->expect) {
		char range[64];

		if (seq - v->expect == 1)
			snprintf(range, sizeof(range), "seq %llu", (unsigned long long)v->expect);
		else
			snprintf(range, sizeof(range), "seq %llu..%llu",
				 (unsigned long long)v->expect, (unsigned long long)(seq - 1));
		if (seq > v->expect)
			vfail(v, s->name, lineno, 1, seq, "seq_gap",
			      "seq %llu follows %s: %llu record(s) missing (%s deleted, or moved "
			      "elsewhere)",
			      (unsigned long long)seq, where, (unsigned long long)(seq - v->expect),
			      range);
		else
			vfail(v, s->name, lineno, 1, seq, "seq_order",
			      "seq %llu follows %s: records reordered or duplicated (expected seq "
			      "%llu)",
			      (unsigned long long)seq, where, (unsigned long long)v->expect);
		return 1;
	} else if (strcmp(prev, v->prev)) {
		vfail(
		    v, s->name, lineno, 1, seq, "hash_mismatch",
		    "hash chain broken: its prev is not the SHA-256 of the record before it (%s): "
		    "that record was modified, or records between them were deleted, reordered "
		    "or inserted",
		    where);
		return 1;
	}
	o = parse_json(line, len, &why);
	if (!o) {
		vfail(v, s->name, lineno, 1, seq, "malformed",
		      "not valid JSON (%s): the record was modified", why);
		return 1;
	}
	if (!strcmp(js(o, "kind"), "checkpoint")) {
		char msg[128], mac_hex[65];
		uint8_t mac[32];
		unsigned int ml = sizeof(mac);

		snprintf(msg, sizeof(msg), "%llu:%s", (unsigned long long)seq, prev);
		HMAC(EVP_sha256(), v->key, sizeof(v->key), (const uint8_t *)msg, strlen(msg), mac,
		     &ml);
		hex_encode(mac, ml, mac_hex);
		if (strcmp(mac_hex, js(o, "hmac"))) {
			vfail(
			    v, s->name, lineno, 1, seq, "bad_hmac",
			    "checkpoint HMAC does not verify with audit.key: the checkpoint was "
			    "forged, or the records before it were replaced and re-chained without "
			    "the key");
			json_object_put(o);
			return 1;
		}
		if (has(o, "unvouched_from"))
			vnote(v,
			      "%s: records seq %lld..%llu were covered by no checkpoint when "
			      "hoopd stopped uncleanly; the checkpoint that closed the segment at "
			      "its next start (seq %llu) does not vouch for them: they may have "
			      "been changed while hoopd was down",
			      s->name, (long long)ji(o, "unvouched_from"),
			      (unsigned long long)(seq - 1), (unsigned long long)seq);
		v->checkpoints++;
		v->good_cp_seq = seq;
		v->since_cp = 0;
		v->last_is_cp = 1;
		snprintf(v->last_cp_reason, sizeof(v->last_cp_reason), "%s", js(o, "reason"));
	} else {
		v->since_cp++;
		v->last_is_cp = 0;
		if (!strcmp(js(o, "kind"), "retention") && has(o, "removed_segment")) {
			if (v->nremoved == v->capremoved) {
				size_t nc = v->capremoved ? 2 * v->capremoved : 16;
				uint32_t *x = realloc(v->removed, nc * sizeof(*x));

				if (x) {
					v->removed = x;
					v->capremoved = nc;
				}
			}
			if (v->nremoved < v->capremoved)
				v->removed[v->nremoved++] = (uint32_t)ji(o, "removed_segment");
		}
	}
	json_object_put(o);
	SHA256((const uint8_t *)line, len, d);
	hex_encode(d, sizeof(d), hx);
	memcpy(v->prev, hx, sizeof(hx));
	v->prev_seg = s->name;
	v->prev_line = lineno;
	v->prev_seq = seq;
	v->expect = seq + 1;
	v->started = 1;
	v->records++;
	return 0;
}

/*
 * A seq gap may be a swap: when the very next record carries a missing seq, say "reordered".
 * (Reads one line ahead; the verdict stays at the first out-of-place record.)
 */
static void reorder_check(struct verify *v, struct lines *l)
{
	uint64_t seq;
	char prev[65];
	unsigned at = l->lineno;

	if (lines_next(l) != 1 || l->torn || parse_head(l->line, l->len, &seq, prev))
		return;
	if (seq >= v->expect && seq < v->where_seq) {
		v->problem = "seq_order";
		snprintf(v->msg, sizeof(v->msg),
			 "records out of order: seq %llu is at line %u, before seq %llu at line %u "
			 "(records were reordered)",
			 (unsigned long long)v->where_seq, at, (unsigned long long)seq, l->lineno);
	}
}

static int removed_by_retention(const struct verify *v, uint32_t n)
{
	for (size_t i = 0; i < v->nremoved; i++)
		if (v->removed[i] == n)
			return 1;
	return 0;
}

/*
 * The last record known good once something is wrong: a hash mismatch incriminates the record
 * before it; a bad HMAC everything since the last checkpoint that verified.
 */
static uint64_t intact_seq(const struct verify *v)
{
	if (!strcmp(v->problem, "hash_mismatch"))
		return v->prev_seq ? v->prev_seq - 1 : 0;
	if (!strcmp(v->problem, "bad_hmac"))
		return v->good_cp_seq;
	return v->prev_seq;
}

static int load_key(const char *state_dir, uint8_t key[32])
{
	char p[4200];
	ssize_t r;
	int fd;

	snprintf(p, sizeof(p), "%s/audit.key", state_dir);
	fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "hoopctl verify: cannot read the checkpoint key %s: %s%s\n", p,
			strerror(errno),
			errno == EACCES ? " (it is root's, mode 0400: run verify as root)" : "");
		return -1;
	}
	r = read(fd, key, 32);
	close(fd);
	if (r != 32) {
		fprintf(stderr, "hoopctl verify: %s is not a 32-byte key\n", p);
		return -1;
	}
	return 0;
}

static const char verify_usage[] =
    "usage: hoopctl verify [--state-dir DIR] [--from SEGMENT] [--json]\n";

int cmd_verify(int argc, char **argv)
{
	static const struct option opts[] = {{"state-dir", required_argument, 0, 'd'},
					     {"from", required_argument, 0, 'f'},
					     {"json", no_argument, 0, 'j'},
					     {"help", no_argument, 0, 'h'},
					     {0}};
	const char *state = DEFAULT_STATE_DIR, *from = NULL;
	struct verify *v = calloc(1, sizeof(*v));
	struct trail t = {0};
	int c, rc = 2, first = 0;

	if (!v)
		return 2;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			state = optarg;
			break;
		case 'f':
			from = optarg;
			break;
		case 'j':
			v->json = 1;
			break;
		case 'h':
			fputs(verify_usage, stdout);
			rc = 0;
			goto cleanup;
		default:
			fputs(verify_usage, stderr);
			goto cleanup;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "hoopctl verify: unexpected argument '%s'\n%s", argv[optind],
			verify_usage);
		goto cleanup;
	}
	if (load_key(state, v->key) || trail_open(state, &t))
		goto cleanup;
	if (!t.nsegs) {
		fprintf(stderr, "hoopctl verify: no segments in %s\n", t.dir);
		goto cleanup;
	}
	if (from) {
		uint32_t n;
		int gz;
		char *end;

		if (!seg_name(from, &n, &gz)) {
			n = (uint32_t)strtoul(from, &end, 10);
			if (end == from || *end) {
				fprintf(stderr,
					"hoopctl verify: --from wants a segment number or name "
					"(17, seg-00000017.jsonl.gz), got '%s'\n",
					from);
				goto cleanup;
			}
		}
		for (first = 0; first < t.nsegs && t.segs[first].n != n; first++)
			;
		if (first == t.nsegs) {
			fprintf(stderr, "hoopctl verify: no segment %u in %s\n", n, t.dir);
			goto cleanup;
		}
		v->from = 1;
	} else if (t.segs[0].n != 1) {
		/* Older segments gone: retention records further on must account for them. */
		v->from = 1;
	}
	for (int i = first; i < t.nsegs && !v->bad; i++) {
		struct seg *s = &t.segs[i];
		int last = i == t.nsegs - 1, r;
		unsigned nlines = 0;
		struct lines l;

		if (i > first && s->n != t.segs[i - 1].n + 1) {
			char missing[64];

			if (s->n == t.segs[i - 1].n + 2)
				snprintf(missing, sizeof(missing), "seg-%08u is",
					 t.segs[i - 1].n + 1);
			else
				snprintf(missing, sizeof(missing), "seg-%08u..seg-%08u are",
					 t.segs[i - 1].n + 1, s->n - 1);
			vfail(v, s->name, 0, 0, 0, "segment_missing",
			      "%s missing between %s and %s: whole segments were deleted", missing,
			      t.segs[i - 1].name, s->name);
			break;
		}
		if (lines_open(&l, &t, s)) {
			fprintf(stderr, "hoopctl verify: %s\n", l.err);
			lines_close(&l);
			goto cleanup;
		}
		if (s->both)
			vnote(v,
			      "seg-%08u exists both plain and compressed (hoopd was compressing "
			      "it, or stopped while doing so); the plain one was read",
			      s->n);
		v->segments++;
		v->last_is_cp = 0;
		while ((r = lines_next(&l)) == 1) {
			nlines++;
			if (l.torn) {
				if (last && !s->gz) {
					/* hoopd is writing it now, or crashed mid-write */
					vnote(v,
					      "%s ends with an incomplete record (%zu bytes, line "
					      "%u): "
					      "being written, or cut short by a crash (hoopd "
					      "removes it "
					      "at its next start); not counted",
					      s->name, l.len, l.lineno);
					nlines--;
					break;
				}
				vfail(v, s->name, l.lineno, 0, 0, "truncated",
				      "the segment ends inside a record (%zu bytes without a "
				      "newline): "
				      "it was truncated",
				      l.len);
				break;
			}
			if (verify_record(v, s, l.line, l.len, l.lineno)) {
				if (!strcmp(v->problem, "seq_gap"))
					reorder_check(v, &l);
				break;
			}
		}
		if (r < 0) {
			if (!l.damaged) {
				fprintf(stderr, "hoopctl verify: reading %s/%s: %s\n", t.dir,
					s->name, l.err);
				lines_close(&l);
				goto cleanup;
			}
			vfail(v, s->name, l.lineno + 1, 0, 0, "damaged",
			      "cannot be read past line %u (%s): the file was modified or damaged",
			      l.lineno, l.err);
		}
		lines_close(&l);
		if (v->bad)
			break;
		/* A closed segment ends with its closing checkpoint; only the open one may not. */
		if (!last || s->gz) {
			if (!nlines)
				vfail(
				    v, s->name, 0, 0, 0, "truncated",
				    "the segment is empty: its records and closing checkpoint were "
				    "removed");
			else if (!v->last_is_cp)
				vfail(v, s->name, l.lineno, 1, v->prev_seq, "truncated",
				      "the segment ends at line %u (seq %llu) without its closing "
				      "checkpoint: it was truncated (the records after it were "
				      "removed)",
				      l.lineno, (unsigned long long)v->prev_seq);
			else if (!strcmp(v->last_cp_reason, "interval"))
				vfail(
				    v, s->name, l.lineno, 1, v->prev_seq, "truncated",
				    "the segment ends at line %u (seq %llu) with a periodic "
				    "checkpoint, "
				    "not the one that closes a segment: it was truncated after it",
				    l.lineno, (unsigned long long)v->prev_seq);
		} else if (v->since_cp) {
			vnote(v,
			      "%s is open (hoopd is running, or stopped uncleanly and has not "
			      "started again): its last %llu record(s) follow the last checkpoint "
			      "and "
			      "are protected by the hash chain only",
			      s->name, (unsigned long long)v->since_cp);
		}
	}
	if (!v->bad && v->from) {
		if (from) {
			vnote(v,
			      "started at %s: its first record (seq %llu) and that record's prev "
			      "are taken on trust",
			      t.segs[first].name, (unsigned long long)v->first_seq);
		} else {
			/*
			 * Retention removes the oldest segments and records each removal in the
			 * segment open at the time, so the record naming the segment just before
			 * the first one left is always in a segment still here (older records of
			 * removals may have expired with their own segments).
			 */
			uint32_t n = t.segs[0].n - 1;

			if (!removed_by_retention(v, n)) {
				v->start_unaccounted = 1;
				vfail(v, t.segs[0].name, 0, 0, 0, "segment_missing",
				      "seg-%08u (and every segment before %s) is missing and no "
				      "retention record accounts for it: segments were deleted",
				      n, t.segs[0].name);
			}
			if (!v->bad)
				vnote(v,
				      "segments before %s were removed by retention (on record); "
				      "the chain starts there, its first prev taken on trust",
				      t.segs[0].name);
		}
	}
	if (v->json) {
		struct jbuf j;

		jb_init(&j);
		jb_obj_open(&j);
		jb_kv_bool(&j, "ok", !v->bad);
		jb_kv_uint(&j, "records", v->records);
		jb_kv_uint(&j, "segments", v->segments);
		jb_kv_uint(&j, "checkpoints", v->checkpoints);
		jb_kv_uint(&j, "last_seq", v->prev_seq);
		if (v->bad) {
			jb_kv_uint(&j, "intact_seq", v->start_unaccounted ? 0 : intact_seq(v));
			jb_kv_uint(&j, "last_good_checkpoint", v->good_cp_seq);
		}
		jb_kv_bool(&j, "trusted_start", v->from);
		if (v->bad) {
			jb_kv_str(&j, "problem", v->problem);
			jb_kv_str(&j, "segment", v->where_seg);
			jb_kv_uint(&j, "line", v->where_line);
			if (v->where_has_seq)
				jb_kv_uint(&j, "seq", v->where_seq);
			jb_kv_str(&j, "message", v->msg);
		}
		jb_key(&j, "notes");
		jb_arr_open(&j);
		for (int i = 0; i < v->nnotes; i++)
			jb_str_val(&j, v->notes[i]);
		jb_arr_close(&j);
		jb_obj_close(&j);
		printf("%s\n", jb_str(&j));
		jb_free(&j);
	} else if (v->bad) {
		char seq[48] = "";

		if (v->where_has_seq)
			snprintf(seq, sizeof(seq), " (seq %llu)", (unsigned long long)v->where_seq);
		if (v->where_line)
			printf("TAMPERED: %s line %u%s: %s\n", disp(v->where_seg), v->where_line,
			       seq, disp(v->msg));
		else
			printf("TAMPERED: %s: %s\n", disp(v->where_seg), disp(v->msg));
		if (!v->start_unaccounted)
			printf(
			    "intact before it: the chain up to seq %llu; the last checkpoint that "
			    "verifies is at seq %llu\n",
			    (unsigned long long)intact_seq(v), (unsigned long long)v->good_cp_seq);
	} else {
		printf("ok: %llu records in %u segments, %llu checkpoints, last seq %llu\n",
		       (unsigned long long)v->records, v->segments,
		       (unsigned long long)v->checkpoints, (unsigned long long)v->prev_seq);
		for (int i = 0; i < v->nnotes; i++)
			printf("note: %s\n", disp(v->notes[i]));
	}
	rc = v->bad ? 1 : 0;
cleanup:
	trail_free(&t);
	free(v->removed);
	free(v);
	return rc;
}

/* ---- reading records: sessions, replay, export ------------------------------------------ */

struct rec {
	const struct seg *seg;
	unsigned lineno;
	uint64_t seq; /* the record's own seq */
	const char *line;
	size_t len;
	struct json_object *o;
};

/* Return nonzero from fn to stop. A record that does not parse is skipped (verify names it). */
typedef int (*rec_fn)(const struct rec *r, void *arg);

/* Every whole record of the trail in order; `want` (if set) must occur in a line for it to be
 * parsed at all. 0, or -1 with a message printed. */
static int trail_each(const char *state_dir, const char *want, rec_fn fn, void *arg)
{
	struct trail t;
	int rc = 0, stop = 0;

	if (trail_open(state_dir, &t))
		return -1;
	for (int i = 0; i < t.nsegs && !stop; i++) {
		struct lines l;
		int r;

		if (lines_open(&l, &t, &t.segs[i])) {
			fprintf(stderr, "hoopctl: %s\n", l.err);
			lines_close(&l);
			rc = -1;
			break;
		}
		while (!stop && (r = lines_next(&l)) == 1) {
			struct rec rr = {
			    .seg = &t.segs[i], .lineno = l.lineno, .line = l.line, .len = l.len};
			char prev[65];
			const char *why;

			if (l.torn || (want && !strstr(l.line, want)))
				continue;
			if (parse_head(l.line, l.len, &rr.seq, prev))
				continue;
			rr.o = parse_json(l.line, l.len, &why);
			if (!rr.o)
				continue;
			stop = fn(&rr, arg);
			json_object_put(rr.o);
		}
		if (r < 0) {
			fprintf(stderr, "hoopctl: reading %s/%s: %s (run hoopctl verify)\n", t.dir,
				t.segs[i].name, l.err);
			rc = -1;
		}
		lines_close(&l);
		if (rc)
			break;
	}
	trail_free(&t);
	return rc;
}

/* What one session did, gathered from its records. */
struct sess {
	char id[32];
	struct json_object *start; /* its session_start record */
	struct json_object *who;   /* a statement record's "who", for when start is gone */
	char start_ts[40], last_ts[40];
	int64_t last_us;
	uint64_t statements, denied;
	unsigned verdicts; /* bit per verdict seen: allow, deny, hold, not_run */
	char end_reason[160];
	int ended, orphaned; /* orphaned: hoopd started again with no session_end for it */
	int64_t bytes_up, bytes_down, duration_ms; /* from its session_end */
};

struct sessions {
	struct sess **v;
	size_t n, cap;
	struct lh_table *by_id;
};

static const char *const verdicts[] = {"allow", "deny", "hold", "not_run", NULL};

static int verdict_bit(const char *s)
{
	for (int i = 0; verdicts[i]; i++)
		if (!strcmp(s, verdicts[i]))
			return 1 << i;
	return 0;
}

static struct sess *sess_get(struct sessions *ss, const char *id, int create)
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

static void sessions_free(struct sessions *ss)
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
}

static int gather(const struct rec *r, void *arg)
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
		uint64_t seq = (uint64_t)ji(r->o, "stmt");
		const char *vd = js(r->o, "verdict");

		if (seq > s->statements)
			s->statements = seq;
		/* hoopd says who in a session's first statement record of each segment */
		if (!s->who && jo(r->o, "who"))
			s->who = json_object_get(jo(r->o, "who"));
		if (!strcmp(vd, "deny"))
			s->denied++;
		s->verdicts |= (unsigned)verdict_bit(vd);
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

static int gather_all(const char *state, struct sessions *ss)
{
	memset(ss, 0, sizeof(*ss));
	ss->by_id = lh_kchar_table_new(1024, NULL);
	if (!ss->by_id)
		return -1;
	return trail_each(state, NULL, gather, ss);
}

static const char *end_of(const struct sess *s)
{
	if (s->ended && !s->orphaned)
		return s->end_reason;
	if (s->orphaned)
		return "(no end record: hoopd stopped uncleanly)";
	return "(open)";
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

static const char sessions_usage[] =
    "usage: hoopctl sessions [--state-dir DIR] [--since T] [--owner O] [--db D] "
    "[--verdict V] [--json]\n";

int cmd_sessions(int argc, char **argv)
{
	static const struct option opts[] = {{"state-dir", required_argument, 0, 'd'},
					     {"since", required_argument, 0, 's'},
					     {"owner", required_argument, 0, 'o'},
					     {"db", required_argument, 0, 'b'},
					     {"verdict", required_argument, 0, 'v'},
					     {"json", no_argument, 0, 'j'},
					     {"help", no_argument, 0, 'h'},
					     {0}};
	enum { NCOL = 8 };
	static const char *const heads[NCOL] = {
	    "SESSION",	     "START", "OWNER",	"AGENT (PID COMM EXE)",
	    "USER@DATABASE", "STMTS", "DENIED", "END"};
	const char *state = DEFAULT_STATE_DIR, *owner = NULL, *db = NULL;
	int64_t since = INT64_MIN;
	unsigned vbit = 0;
	int c, json = 0, shown = 0, width[NCOL];
	char ***rows;
	struct sessions ss;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			state = optarg;
			break;
		case 's':
			if (parse_since(optarg, &since)) {
				fprintf(stderr,
					"hoopctl sessions: --since wants RFC 3339 "
					"(2026-11-26T14:00:00Z) or a duration (90m, 12h, 2d), "
					"got '%s'\n",
					optarg);
				return 2;
			}
			break;
		case 'o':
			owner = optarg;
			break;
		case 'b':
			db = optarg;
			break;
		case 'v':
			vbit = (unsigned)verdict_bit(optarg);
			if (!vbit) {
				fprintf(stderr,
					"hoopctl sessions: --verdict is one of allow, deny, "
					"hold, not_run\n");
				return 2;
			}
			break;
		case 'j':
			json = 1;
			break;
		case 'h':
			fputs(sessions_usage, stdout);
			return 0;
		default:
			fputs(sessions_usage, stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "hoopctl sessions: unexpected argument '%s'\n%s", argv[optind],
			sessions_usage);
		return 2;
	}
	if (gather_all(state, &ss)) {
		sessions_free(&ss);
		return 2;
	}
	rows = calloc(ss.n + 1, sizeof(*rows));
	if (!rows) {
		sessions_free(&ss);
		return 2;
	}
	for (int c = 0; c < NCOL; c++)
		width[c] = (int)strlen(heads[c]);
	for (size_t i = 0; i < ss.n; i++) {
		struct sess *s = ss.v[i];
		/* Without its session_start (retention), what a statement record said of it. */
		struct json_object *ag = s->start ? jo(s->start, "agent") : s->who;
		struct json_object *login = s->start ? s->start : s->who;
		char **row;

		/* --since: sessions active since T (started then, or still going then) */
		if (s->last_us < since)
			continue;
		if (owner && strcmp(js(ag, "owner"), owner))
			continue;
		if (db && strcmp(js(login, "database"), db))
			continue;
		if (vbit && !(s->verdicts & vbit))
			continue;
		if (json) {
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
			shown++;
			continue;
		}
		row = rows[shown++] = calloc(NCOL, sizeof(char *));
		if (!row)
			break;
		if (asprintf(&row[0], "%s", disp(s->id)) < 0 ||
		    asprintf(&row[1], "%s", disp(s->start_ts)) < 0 ||
		    asprintf(&row[2], "%s", *js(ag, "owner") ? jd(ag, "owner") : "-") < 0 ||
		    (s->start ? asprintf(&row[3], "%lld %s %s", (long long)ji(ag, "pid"),
					 jd(ag, "comm"), jd(ag, "exe"))
			      : asprintf(&row[3], "(no session_start record)")) < 0 ||
		    (has(login, "user") || !s->start
			 ? asprintf(&row[4], "%s@%s", jd(login, "user"), jd(login, "database"))
			 : asprintf(&row[4], "(%s %s: %lld B up, %lld B down)",
				    jd(s->start, "protocol"), jd(s->start, "target"),
				    (long long)s->bytes_up, (long long)s->bytes_down)) < 0 ||
		    asprintf(&row[5], "%llu", (unsigned long long)s->statements) < 0 ||
		    asprintf(&row[6], "%llu", (unsigned long long)s->denied) < 0 ||
		    asprintf(&row[7], "%s", disp(end_of(s))) < 0)
			break;
		for (int c = 0; c < NCOL; c++)
			if ((int)strlen(row[c]) > width[c])
				width[c] = (int)strlen(row[c]);
	}
	if (!json && shown) {
		print_row((const char *const *)heads, width, NCOL);
		for (int i = 0; i < shown && rows[i]; i++)
			print_row((const char *const *)rows[i], width, NCOL);
	}
	for (int i = 0; i < shown && rows[i]; i++) {
		for (int c = 0; c < NCOL; c++)
			free(rows[i][c]);
		free(rows[i]);
	}
	free(rows);
	if (!shown && !json)
		printf("no sessions%s\n", ss.n ? " match" : " in the trail");
	sessions_free(&ss);
	return 0;
}

/* ---- replay ------------------------------------------------------------------------------- */

struct replay {
	const char *id;
	int json;
	uint64_t found;
	char first_ts[40];
};

static const char *clock_of(const char *ts)
{
	const char *t = strchr(ts, 'T');

	return t ? t + 1 : ts;
}

static void print_columns(struct json_object *cols)
{
	size_t n =
	    cols && json_object_is_type(cols, json_type_array) ? json_object_array_length(cols) : 0;

	for (size_t i = 0; i < n; i++) {
		struct json_object *c = json_object_array_get_idx(cols, i);

		printf("%s%s (type %lld%s)", i ? ", " : "", jd(c, "name"),
		       (long long)ji(c, "type_oid"), ji(c, "format") ? ", binary" : "");
	}
	printf("\n");
}

static int replay_one(const struct rec *r, void *arg)
{
	struct replay *rp = arg;
	struct json_object *o = r->o;
	const char *kind = js(o, "kind");
	const char *ts = jd(o, "ts");

	if (strcmp(js(o, "session"), rp->id))
		return 0;
	rp->found++;
	if (rp->json) {
		/* The records as stored, byte for byte: hash them to check against the chain. */
		fwrite(r->line, 1, r->len, stdout);
		putchar('\n');
		return 0;
	}
	if (!rp->first_ts[0])
		snprintf(rp->first_ts, sizeof(rp->first_ts), "%s", ts);
	if (!strcmp(kind, "session_start")) {
		struct json_object *ag = jo(o, "agent");

		printf("session %s, started %s (record %llu, %s line %u)\n", disp(rp->id), ts,
		       (unsigned long long)r->seq, r->seg->name, r->lineno);
		printf("  agent     pid %lld, uid %lld, comm %s, exe %s\n",
		       (long long)ji(ag, "pid"), (long long)ji(ag, "uid"), jd(ag, "comm"),
		       jd(ag, "exe"));
		printf("  cgroup    %s, owner %s, labels %s\n", jd(ag, "cgroup"),
		       *jd(ag, "owner") ? jd(ag, "owner") : "-",
		       jtext(jo(ag, "labels")));
		printf("  network   %s -> %s (target %s), TLS agent %s, server %s\n",
		       jd(ag, "address"), jd(o, "destination"), jd(o, "target"),
		       json_object_get_boolean(jo(o, "agent_tls")) ? "yes" : "no",
		       json_object_get_boolean(jo(o, "server_tls")) ? "yes" : "no");
		if (has(o, "user"))
			printf("  login     %s@%s, application_name %s\n", jd(o, "user"),
			       jd(o, "database"),
			       *jd(o, "application_name") ? jd(o, "application_name") : "-");
		else /* an opaque relay (tcp): no login, bytes only */
			printf("  protocol  %s, relayed as opaque bytes\n", jd(o, "protocol"));
	} else if (!strcmp(kind, "statement")) {
		const char *vd = jd(o, "verdict");

		printf("%s  #%lld %s %s", clock_of(ts), (long long)ji(o, "stmt"), jd(o, "protocol"),
		       strcmp(vd, "allow") ? vd : "allow");
		if (*jd(o, "reason"))
			printf(" (rule %s)", jd(o, "reason"));
		printf(": %s\n", jd(o, "text"));
		if (*jd(o, "prepared_text"))
			printf("            prepared %s: %s\n", jd(o, "prepared"),
			       jd(o, "prepared_text"));
		else if (has(o, "prepared"))
			printf("            prepared statement \"%s\"\n", jd(o, "prepared"));
		if (has(o, "params"))
			printf("            params %s\n",
			       jtext(jo(o, "params")));
		if (json_object_get_boolean(jo(o, "parse_error")))
			printf("            (PostgreSQL's grammar could not parse it)\n");
	} else if (!strcmp(kind, "result_columns")) {
		printf("%s  #%lld columns: ", clock_of(ts), (long long)ji(o, "stmt"));
		print_columns(jo(o, "columns"));
	} else if (!strcmp(kind, "complete")) {
		if (jo(o, "columns")) { /* recorded with the completion since it followed at once */
			printf("%s  #%lld columns: ", clock_of(ts), (long long)ji(o, "stmt"));
			print_columns(jo(o, "columns"));
		}
		printf("%s  #%lld complete: %s, %lld row(s), %lld bytes, %.3f ms\n", clock_of(ts),
		       (long long)ji(o, "stmt"), jd(o, "tag"), (long long)ji(o, "rows"),
		       (long long)ji(o, "bytes"), (double)ji(o, "duration_us") / 1000.0);
		if (jo(o, "masked")) /* cells masked per column and detector (docs/masking.md) */
			printf("            masked: %s\n",
			       jtext(jo(o, "masked")));
	} else if (!strcmp(kind, "error")) {
		char tag[32] = "";

		if (has(o, "stmt"))
			snprintf(tag, sizeof(tag), "#%lld ", (long long)ji(o, "stmt"));
		printf("%s  %serror: SQLSTATE %s %s%s: %s\n", clock_of(ts), tag, jd(o, "sqlstate"),
		       jd(o, "severity"),
		       json_object_get_boolean(jo(o, "from_hoopd")) ? " (from hoopd)" : "",
		       jd(o, "message"));
	} else if (!strcmp(kind, "cancel")) {
		printf("%s  cancel request for backend %lld: %s\n", clock_of(ts),
		       (long long)ji(o, "backend_pid"), jd(o, "outcome"));
	} else if (!strcmp(kind, "protocol_error")) {
		printf("%s  protocol error from the %s: %s\n", clock_of(ts), jd(o, "direction"),
		       jd(o, "message"));
	} else if (!strcmp(kind, "session_end")) {
		printf("%s  session end: %s; %lld statement(s), %lld bytes up, %lld bytes down, "
		       "%lld ms\n",
		       clock_of(ts), jd(o, "reason"), (long long)ji(o, "statements"),
		       (long long)ji(o, "bytes_agent_to_db"), (long long)ji(o, "bytes_db_to_agent"),
		       (long long)ji(o, "duration_ms"));
	} else if (!strcmp(kind, "approval_request")) {
		printf("%s  approval %s requested (rule %s), times out in %llds\n", clock_of(ts),
		       jd(o, "approval"), jd(o, "rule"), (long long)ji(o, "timeout_s"));
	} else if (!strcmp(kind, "approval_notified")) {
		printf("%s  approval %s: approvers notified (command pid %lld)\n", clock_of(ts),
		       jd(o, "approval"), (long long)ji(o, "command_pid"));
	} else if (!strcmp(kind, "approval_decision")) {
		if (has(o, "by"))
			printf("%s  approval %s %s by %s (uid %lld)%s%s%s\n", clock_of(ts),
			       jd(o, "approval"), jd(o, "decision"), jd(o, "by"),
			       (long long)ji(o, "by_uid"), *jd(o, "reason") ? ": " : "",
			       jd(o, "reason"),
			       !strcmp(js(o, "scope"), "fingerprint") ? " [scope fingerprint]"
								      : "");
		else
			printf("%s  approval %s %s%s%s\n", clock_of(ts), jd(o, "approval"),
			       jd(o, "decision"), *jd(o, "why") ? ": " : "", jd(o, "why"));
	} else if (!strcmp(kind, "approval_refused")) {
		printf("%s  approval %s: %s tried to %s and was refused: %s\n", clock_of(ts),
		       jd(o, "approval"), jd(o, "by"), jd(o, "attempt"), jd(o, "refused"));
	} else {
		printf("%s  %s %s\n", clock_of(ts), disp(kind), jtext(o));
	}
	return 0;
}

static const char replay_usage[] = "usage: hoopctl replay SESSION [--state-dir DIR] [--json]\n";

int cmd_replay(int argc, char **argv)
{
	static const struct option opts[] = {{"state-dir", required_argument, 0, 'd'},
					     {"json", no_argument, 0, 'j'},
					     {"help", no_argument, 0, 'h'},
					     {0}};
	const char *state = DEFAULT_STATE_DIR;
	struct replay rp = {0};
	char want[64];
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			state = optarg;
			break;
		case 'j':
			rp.json = 1;
			break;
		case 'h':
			fputs(replay_usage, stdout);
			return 0;
		default:
			fputs(replay_usage, stderr);
			return 2;
		}
	}
	if (optind != argc - 1) {
		fputs(replay_usage, stderr);
		return 2;
	}
	rp.id = argv[optind];
	if (strlen(rp.id) > 24 || strchr(rp.id, '"') || strchr(rp.id, '\\')) {
		fprintf(stderr, "hoopctl replay: '%s' is not a session id (s + 12 hex digits)\n",
			rp.id);
		return 2;
	}
	/* Only lines naming the session are parsed; the parsed "session" field decides. */
	snprintf(want, sizeof(want), "\"session\":\"%s\"", rp.id);
	if (trail_each(state, want, replay_one, &rp))
		return 2;
	if (!rp.found) {
		fprintf(stderr, "hoopctl replay: no session %s in %s/audit\n", rp.id, state);
		return 1;
	}
	return 0;
}

/* ---- export ------------------------------------------------------------------------------- */

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

	gather(r, &x->ss);
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
    "ts",	"record_seq", "session", "stmt",	    "owner",  "pid",	  "uid",
    "comm",	"exe",	      "cgroup",	 "address", "user",   "database", "application_name",
    "protocol", "verdict",    "reason",	 "text",    "params", "prepared", "outcome",
    "rows",	"sqlstate",   "error",	 NULL};

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
	vals[k++] = start ? js(start, "user") : js(who, "user");
	vals[k++] = start ? js(start, "database") : js(who, "database");
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
	if (csv) {
		for (int c = 0; c < k; c++)
			csv_field(vals[c], c == k - 1);
		return;
	}
	{
		struct jbuf j;

		jb_init(&j);
		jb_obj_open(&j);
		for (int c = 0; c < k; c++) {
			const char *name = export_cols[c];

			if (!strcmp(name, "record_seq") || !strcmp(name, "stmt") ||
			    !strcmp(name, "pid") || !strcmp(name, "uid") || !strcmp(name, "rows")) {
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
}

static const char export_usage[] =
    "usage: hoopctl export --since T [--state-dir DIR] --format jsonl|csv\n";

int cmd_export(int argc, char **argv)
{
	static const struct option opts[] = {{"state-dir", required_argument, 0, 'd'},
					     {"since", required_argument, 0, 's'},
					     {"format", required_argument, 0, 'f'},
					     {"help", no_argument, 0, 'h'},
					     {0}};
	const char *state = DEFAULT_STATE_DIR, *format = NULL;
	struct exporter x = {.since = INT64_MIN};
	int c, have_since = 0, rc = 2, csv;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			state = optarg;
			break;
		case 's':
			if (parse_since(optarg, &x.since)) {
				fprintf(stderr,
					"hoopctl export: --since wants RFC 3339 "
					"(2026-11-26T14:00:00Z) or a duration (90m, 12h, 2d), "
					"got '%s'\n",
					optarg);
				return 2;
			}
			have_since = 1;
			break;
		case 'f':
			format = optarg;
			break;
		case 'h':
			fputs(export_usage, stdout);
			return 0;
		default:
			fputs(export_usage, stderr);
			return 2;
		}
	}
	if (!have_since || !format || optind < argc ||
	    (strcmp(format, "jsonl") && strcmp(format, "csv"))) {
		fputs(export_usage, stderr);
		return 2;
	}
	csv = !strcmp(format, "csv");
	x.ss.by_id = lh_kchar_table_new(1024, NULL);
	x.outcomes = lh_kchar_table_new(4096, outcome_free);
	if (!x.ss.by_id || !x.outcomes)
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
