/*
 * hoopctl verify: recompute the audit trail's hash chain and check every checkpoint's Ed25519
 * signature (with public keys only) or, for checkpoints written before hoopd signed them, its
 * HMAC (with audit.key), and say where it first fails (segment, line, seq, what is wrong) or
 * that it holds. The chain, the signature, the MAC and the keys are trail.h's, the same code
 * hoopd writes them with; docs/audit.md lists the problems verify names.
 */
#include <errno.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "disp.h"
#include "hoopctl.h"
#include "json.h"
#include "trailread.h"

#define VERIFY_MAX_PUBS 16

struct verify {
	uint8_t key[TRAIL_KEY_LEN]; /* audit.key, for HMAC checkpoints (have_key) */
	int have_key;
	char key_err[512]; /* why there is none */
	/* public keys for signed checkpoints: --public-key, or <state dir>/audit.pub */
	EVP_PKEY *pubs[VERIFY_MAX_PUBS];
	char pub_ids[VERIFY_MAX_PUBS][TRAIL_KEYID_HEX];
	int npubs;
	char pub_err[512]; /* why there is none */
	int signed_seen;   /* a signed checkpoint was met: an HMAC one after it is forged */
	uint64_t signed_cps, hmac_cps, last_hmac_seq;
	int cannot; /* a checkpoint this verify has no key for: exit 2, msg says which */
	int from;   /* --from: the first record is taken on trust */
	int json;
	/* the chain so far */
	int started;
	uint64_t expect;	   /* next seq */
	char prev[TRAIL_HASH_HEX]; /* hash of the last record */
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
	int cp_problem; /* the problem is a checkpoint's: what precedes it is suspect */
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

/* A seq that is not the one expected: records missing, or out of order. */
static void fail_seq(struct verify *v, const struct seg *s, unsigned lineno, uint64_t seq)
{
	char range[64], where[200];

	prev_place(v, s->name, where, sizeof(where));
	if (seq - v->expect == 1)
		snprintf(range, sizeof(range), "seq %llu", (unsigned long long)v->expect);
	else
		snprintf(range, sizeof(range), "seq %llu..%llu", (unsigned long long)v->expect,
			 (unsigned long long)(seq - 1));
	if (seq > v->expect)
		vfail(v, s->name, lineno, 1, seq, "seq_gap",
		      "seq %llu follows %s: %llu record(s) missing (%s deleted, or moved "
		      "elsewhere)",
		      (unsigned long long)seq, where, (unsigned long long)(seq - v->expect), range);
	else
		vfail(v, s->name, lineno, 1, seq, "seq_order",
		      "seq %llu follows %s: records reordered or duplicated (expected seq %llu)",
		      (unsigned long long)seq, where, (unsigned long long)v->expect);
}

/* Does the record's head join the chain (seq and prev)? 0, or 1 with v->bad. */
static int verify_link(struct verify *v, const struct seg *s, unsigned lineno, uint64_t seq,
		       const char *prev)
{
	char where[200];

	if (!v->started) {
		v->first_seq = seq;
		if (!v->from && (seq != 1 || strcmp(prev, TRAIL_ZERO_HASH))) {
			vfail(v, s->name, lineno, 1, seq, "start_missing",
			      "the trail's first record has seq %llu and prev %.16s...; the first "
			      "record hoopd writes has seq 1 and prev 64 zeros: records before "
			      "it were deleted",
			      (unsigned long long)seq, prev);
			return 1;
		}
	} else if (seq != v->expect) {
		fail_seq(v, s, lineno, seq);
		return 1;
	} else if (strcmp(prev, v->prev)) {
		prev_place(v, s->name, where, sizeof(where));
		vfail(
		    v, s->name, lineno, 1, seq, "hash_mismatch",
		    "hash chain broken: its prev is not the SHA-256 of the record before it (%s): "
		    "that record was modified, or records between them were deleted, reordered "
		    "or inserted",
		    where);
		return 1;
	}
	return 0;
}

/* A signed checkpoint: one of the public keys, by its id, and the signature. 0, or 1 with
 * v->bad (or v->cannot: no public key at all). */
static int verify_signature(struct verify *v, const struct seg *s, unsigned lineno, uint64_t seq,
			    const char *prev, struct json_object *o)
{
	const char *id = js(o, "key");
	char ids[VERIFY_MAX_PUBS * (TRAIL_KEYID_HEX + 2)] = "";
	int k;

	if (!v->npubs) {
		v->cannot = 1;
		vfail(v, s->name, lineno, 1, seq, "no_public_key",
		      "the checkpoint is signed (key %.40s) and verify has no public key to check "
		      "it with (%s): give the node's audit.pub with --public-key FILE",
		      id, v->pub_err);
		return 1;
	}
	for (k = 0; k < v->npubs && strcmp(v->pub_ids[k], id); k++)
		snprintf(ids + strlen(ids), sizeof(ids) - strlen(ids), "%s%s", k ? ", " : "",
			 v->pub_ids[k]);
	v->cp_problem = 1;
	if (k == v->npubs) {
		vfail(v, s->name, lineno, 1, seq, "unknown_key",
		      "checkpoint signed by key \"%.40s\", which is not the id of any public key "
		      "given (%s): the checkpoint was forged with another key, or signed by a key "
		      "that was since replaced (give that key's audit.pub with another "
		      "--public-key)",
		      id, ids);
		return 1;
	}
	if (!trail_checkpoint_verify(v->pubs[k], seq, prev, js(o, "sig"))) {
		vfail(v, s->name, lineno, 1, seq, "bad_signature",
		      "checkpoint signature does not verify with public key %s: the checkpoint was "
		      "forged, or the records before it were replaced and re-chained without the "
		      "signing key",
		      v->pub_ids[k]);
		return 1;
	}
	v->cp_problem = 0;
	v->signed_seen = 1;
	v->signed_cps++;
	return 0;
}

/* A checkpoint written before hoopd signed them: its HMAC under audit.key. 0, or 1 with
 * v->bad (or v->cannot: no audit.key). */
static int verify_hmac(struct verify *v, const struct seg *s, unsigned lineno, uint64_t seq,
		       const char *prev, struct json_object *o)
{
	char mac_hex[TRAIL_HASH_HEX];

	v->cp_problem = 1;
	if (v->signed_seen) {
		/* hoopd never goes back: an HMAC here was made by whoever holds audit.key, which
		 * every verifier of the old trail did */
		vfail(v, s->name, lineno, 1, seq, "hmac_after_signed",
		      "checkpoint carries an HMAC after signed checkpoints: hoopd signs every "
		      "checkpoint once it has begun to, so whoever holds audit.key forged it (or "
		      "an older hoopd was started on this trail again)");
		return 1;
	}
	if (!v->have_key) {
		v->cannot = 1;
		vfail(
		    v, s->name, lineno, 1, seq, "no_hmac_key",
		    "the checkpoint carries an HMAC (written before hoopd signed checkpoints) and "
		    "checking it needs audit.key (%s): run verify as root on a state directory "
		    "that has it, or start with --from at the first segment whose checkpoints "
		    "are signed (taking its first record on trust)",
		    v->key_err);
		return 1;
	}
	trail_checkpoint_mac(v->key, seq, prev, mac_hex);
	if (strcmp(mac_hex, js(o, "hmac"))) {
		vfail(v, s->name, lineno, 1, seq, "bad_hmac",
		      "checkpoint HMAC does not verify with audit.key: the checkpoint was forged, "
		      "or the records before it were replaced and re-chained without the key");
		return 1;
	}
	v->cp_problem = 0;
	v->hmac_cps++;
	v->last_hmac_seq = seq;
	return 0;
}

/* A checkpoint: its signature, or its HMAC. 0, or 1 with v->bad. */
static int verify_checkpoint(struct verify *v, const struct seg *s, unsigned lineno, uint64_t seq,
			     const char *prev, struct json_object *o)
{
	int r;

	if (has(o, "sig"))
		r = verify_signature(v, s, lineno, seq, prev, o);
	else if (has(o, "hmac"))
		r = verify_hmac(v, s, lineno, seq, prev, o);
	else {
		v->cp_problem = 1;
		vfail(v, s->name, lineno, 1, seq, "unsealed_checkpoint",
		      "checkpoint carries neither a signature (\"sig\") nor an HMAC: it was "
		      "forged, or its seal removed");
		r = 1;
	}
	if (r)
		return 1;
	if (has(o, "unvouched_from"))
		vnote(v,
		      "%s: records seq %lld..%llu were covered by no checkpoint when hoopd stopped "
		      "uncleanly; the checkpoint that closed the segment at its next start (seq "
		      "%llu) does not vouch for them: they may have been changed while hoopd was "
		      "down",
		      s->name, (long long)ji(o, "unvouched_from"), (unsigned long long)(seq - 1),
		      (unsigned long long)seq);
	v->checkpoints++;
	v->good_cp_seq = seq;
	v->since_cp = 0;
	v->last_is_cp = 1;
	snprintf(v->last_cp_reason, sizeof(v->last_cp_reason), "%s", js(o, "reason"));
	return 0;
}

/* A retention record: the segment it removed is accounted for. */
static void note_retention(struct verify *v, struct json_object *o)
{
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

/* One record. Returns 0 to go on, 1 once something is wrong (v->bad). */
static int verify_record(struct verify *v, const struct seg *s, const char *line, size_t len,
			 unsigned lineno)
{
	uint64_t seq;
	char prev[TRAIL_HASH_HEX];
	struct json_object *o;
	const char *why = "";
	int r = 0;

	if (trail_parse_head(line, len, &seq, prev)) {
		vfail(
		    v, s->name, lineno, 0, 0, "malformed",
		    "not an audit record: it does not start with {\"seq\":N,\"prev\":\"<64 hex>\"; "
		    "the record was modified (or the line is not hoopd's)");
		return 1;
	}
	if (verify_link(v, s, lineno, seq, prev))
		return 1;
	o = parse_json(line, len, &why);
	if (!o) {
		vfail(v, s->name, lineno, 1, seq, "malformed",
		      "not valid JSON (%s): the record was modified", why);
		return 1;
	}
	if (!strcmp(js(o, "kind"), "checkpoint")) {
		r = verify_checkpoint(v, s, lineno, seq, prev, o);
	} else {
		v->since_cp++;
		v->last_is_cp = 0;
		if (!strcmp(js(o, "kind"), "retention") && has(o, "removed_segment"))
			note_retention(v, o);
	}
	json_object_put(o);
	if (r)
		return r;
	trail_chain_hash(line, len, v->prev);
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
static void reorder_check(struct verify *v, struct trail_lines *l)
{
	uint64_t seq;
	char prev[TRAIL_HASH_HEX];
	unsigned at = l->lineno;

	if (trail_lines_next(l) != 1 || l->torn || trail_parse_head(l->line, l->len, &seq, prev))
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
	if (v->cp_problem)
		return v->good_cp_seq;
	return v->prev_seq;
}

/* Is segment i the one after segment i - 1? 0, or 1 with v->bad. */
static int verify_no_gap(struct verify *v, const struct trail_list *t, int i)
{
	const struct seg *s = &t->segs[i], *before = &t->segs[i - 1];
	char missing[64];

	if (s->n == before->n + 1)
		return 0;
	if (s->n == before->n + 2)
		snprintf(missing, sizeof(missing), "seg-%08u is", before->n + 1);
	else
		snprintf(missing, sizeof(missing), "seg-%08u..seg-%08u are", before->n + 1,
			 s->n - 1);
	vfail(v, s->name, 0, 0, 0, "segment_missing",
	      "%s missing between %s and %s: whole segments were deleted", missing, before->name,
	      s->name);
	return 1;
}

/* The records of one open segment; how many lines counted (*nlines). The reader's result:
 * 1 stopped (bad, or torn), 0 the end, -1 an error. */
static int verify_lines(struct verify *v, struct seg *s, struct trail_lines *l, int last,
			unsigned *nlines)
{
	int r;

	while ((r = trail_lines_next(l)) == 1) {
		(*nlines)++;
		if (l->torn && last && !s->gz) {
			/* hoopd is writing it now, or crashed mid-write */
			vnote(v,
			      "%s ends with an incomplete record (%zu bytes, line %u): being "
			      "written, or cut short by a crash (hoopd removes it at its next "
			      "start); not counted",
			      s->name, l->len, l->lineno);
			(*nlines)--;
			return 1;
		}
		if (l->torn) {
			vfail(v, s->name, l->lineno, 0, 0, "truncated",
			      "the segment ends inside a record (%zu bytes without a newline): it "
			      "was truncated",
			      l->len);
			return 1;
		}
		if (verify_record(v, s, l->line, l->len, l->lineno)) {
			if (!strcmp(v->problem, "seq_gap"))
				reorder_check(v, l);
			return 1;
		}
	}
	return r;
}

/* A closed segment ends with its closing checkpoint; only the open one may not. */
static void verify_seg_end(struct verify *v, const struct seg *s, int last, unsigned nlines,
			   unsigned lineno)
{
	if (last && !s->gz) {
		if (v->since_cp)
			vnote(v,
			      "%s is open (hoopd is running, or stopped uncleanly and has not "
			      "started again): its last %llu record(s) follow the last checkpoint "
			      "and are protected by the hash chain only",
			      s->name, (unsigned long long)v->since_cp);
		return;
	}
	if (!nlines)
		vfail(v, s->name, 0, 0, 0, "truncated",
		      "the segment is empty: its records and closing checkpoint were removed");
	else if (!v->last_is_cp)
		vfail(v, s->name, lineno, 1, v->prev_seq, "truncated",
		      "the segment ends at line %u (seq %llu) without its closing checkpoint: it "
		      "was truncated (the records after it were removed)",
		      lineno, (unsigned long long)v->prev_seq);
	else if (!strcmp(v->last_cp_reason, "interval"))
		vfail(v, s->name, lineno, 1, v->prev_seq, "truncated",
		      "the segment ends at line %u (seq %llu) with a periodic checkpoint, not the "
		      "one that closes a segment: it was truncated after it",
		      lineno, (unsigned long long)v->prev_seq);
}

/* Segment i of the trail. 0 (v->bad says how it went), or -1 on an I/O error (printed). */
static int verify_segment(struct verify *v, const struct trail_list *t, int i, int first)
{
	struct seg *s = &t->segs[i];
	int last = i == t->nsegs - 1, r;
	unsigned nlines = 0;
	struct trail_lines l;

	if (i > first && verify_no_gap(v, t, i))
		return 0;
	if (seg_lines_open(&l, t, s)) {
		fprintf(stderr, "hoopctl verify: %s\n", l.err);
		trail_lines_close(&l);
		return -1;
	}
	if (s->both)
		vnote(v,
		      "seg-%08u exists both plain and compressed (hoopd was compressing it, or "
		      "stopped while doing so); the plain one was read",
		      s->n);
	v->segments++;
	v->last_is_cp = 0;
	r = verify_lines(v, s, &l, last, &nlines);
	if (r < 0 && !l.damaged) {
		fprintf(stderr, "hoopctl verify: reading %s/%s: %s\n", t->dir, s->name, l.err);
		trail_lines_close(&l);
		return -1;
	}
	if (r < 0)
		vfail(v, s->name, l.lineno + 1, 0, 0, "damaged",
		      "cannot be read past line %u (%s): the file was modified or damaged",
		      l.lineno, l.err);
	trail_lines_close(&l);
	if (!v->bad)
		verify_seg_end(v, s, last, nlines, l.lineno);
	return 0;
}

/* The chain did not start at record 1: say whose word it starts on. */
static void verify_trusted_start(struct verify *v, const struct trail_list *t, const char *from,
				 int first)
{
	/*
	 * Retention removes the oldest segments and records each removal in the segment open at
	 * the time, so the record naming the segment just before the first one left is always
	 * in a segment still here (older records of removals may have expired with their own
	 * segments).
	 */
	uint32_t n = t->segs[0].n - 1;

	if (from) {
		vnote(v,
		      "started at %s: its first record (seq %llu) and that record's prev are taken "
		      "on trust",
		      t->segs[first].name, (unsigned long long)v->first_seq);
		return;
	}
	if (!removed_by_retention(v, n)) {
		v->start_unaccounted = 1;
		vfail(v, t->segs[0].name, 0, 0, 0, "segment_missing",
		      "seg-%08u (and every segment before %s) is missing and no retention record "
		      "accounts for it: segments were deleted",
		      n, t->segs[0].name);
		return;
	}
	vnote(v,
	      "segments before %s were removed by retention (on record); the chain starts "
	      "there, its first prev taken on trust",
	      t->segs[0].name);
}

static void verify_print_json(const struct verify *v)
{
	struct jbuf j;

	jb_init(&j);
	jb_obj_open(&j);
	jb_kv_bool(&j, "ok", !v->bad);
	jb_kv_uint(&j, "records", v->records);
	jb_kv_uint(&j, "segments", v->segments);
	jb_kv_uint(&j, "checkpoints", v->checkpoints);
	jb_kv_uint(&j, "signed_checkpoints", v->signed_cps);
	jb_kv_uint(&j, "hmac_checkpoints", v->hmac_cps);
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
}

static void verify_print_text(const struct verify *v)
{
	char seq[48] = "";

	if (!v->bad) {
		printf("ok: %llu records in %u segments, %llu checkpoints, last seq %llu\n",
		       (unsigned long long)v->records, v->segments,
		       (unsigned long long)v->checkpoints, (unsigned long long)v->prev_seq);
		for (int i = 0; i < v->nnotes; i++)
			printf("note: %s\n", disp(v->notes[i]));
		return;
	}
	if (v->where_has_seq)
		snprintf(seq, sizeof(seq), " (seq %llu)", (unsigned long long)v->where_seq);
	if (v->where_line)
		printf("TAMPERED: %s line %u%s: %s\n", disp(v->where_seg), v->where_line, seq,
		       disp(v->msg));
	else
		printf("TAMPERED: %s: %s\n", disp(v->where_seg), disp(v->msg));
	if (!v->start_unaccounted)
		printf("intact before it: the chain up to seq %llu; the last checkpoint that "
		       "verifies is at seq %llu\n",
		       (unsigned long long)intact_seq(v), (unsigned long long)v->good_cp_seq);
}

/* --from: the index of the segment it names. 0, or 2 with a message. */
static int verify_from(const struct trail_list *t, const char *from, int *first)
{
	uint32_t n;
	enum trail_seg_kind kind;
	char *end;

	if (!trail_seg_parse(from, &n, &kind) || kind == TRAIL_SEG_GZ_TMP) {
		n = (uint32_t)strtoul(from, &end, 10);
		if (end == from || *end) {
			fprintf(stderr,
				"hoopctl verify: --from wants a segment number or name (17, "
				"seg-00000017.jsonl.gz), got '%s'\n",
				from);
			return 2;
		}
	}
	for (*first = 0; *first < t->nsegs && t->segs[*first].n != n; (*first)++)
		;
	if (*first == t->nsegs) {
		fprintf(stderr, "hoopctl verify: no segment %u in %s\n", n, t->dir);
		return 2;
	}
	return 0;
}

static const char verify_usage[] =
    "usage: hoopctl verify [--state-dir DIR] [--public-key FILE ...] [--from SEGMENT] [--json]\n";

/* One public key into v (path: --public-key FILE, or NULL for <state>/audit.pub, which may be
 * missing or unreadable: v->pub_err says so). 0, or 2 with a message. */
static int verify_add_pub(struct verify *v, const char *state, const char *path)
{
	char err[4400], p[4200];
	int r;

	if (v->npubs == VERIFY_MAX_PUBS) {
		fprintf(stderr, "hoopctl verify: at most %d --public-key\n", VERIFY_MAX_PUBS);
		return 2;
	}
	snprintf(p, sizeof(p), "%s/audit.pub", state);
	r = trail_pub_load(path ? path : p, !path, &v->pubs[v->npubs], err, sizeof(err));
	if (!path && (r == -ENOENT || r == -EACCES)) {
		snprintf(v->pub_err, sizeof(v->pub_err), "%s", err);
		return 0;
	}
	if (r < 0) {
		fprintf(stderr, "hoopctl verify: %s\n", err);
		return 2;
	}
	trail_key_id(v->pubs[v->npubs], v->pub_ids[v->npubs]);
	v->npubs++;
	return 0;
}

/* The keys and the segments. 0, or 2 with a message. */
static int verify_open(struct verify *v, const char *state, struct trail_list *t)
{
	char err[4400];
	int r;

	/* Public keys given replace audit.pub: the auditor's copy, not whatever sits beside the
	 * trail (whoever can write the trail can write that too). */
	if (!v->npubs && (r = verify_add_pub(v, state, NULL)))
		return r;
	r = trail_key_load(state, 0, v->key, err, sizeof(err));
	if (r < 0 && r != -ENOENT && r != -EACCES) {
		fprintf(stderr, "hoopctl verify: %s\n", err);
		return 2;
	}
	v->have_key = r == 0;
	if (r < 0)
		snprintf(v->key_err, sizeof(v->key_err), "%s%s", err,
			 r == -EACCES ? " (audit.key is root's, mode 0400)" : "");
	if (!v->npubs && !v->have_key) {
		fprintf(stderr,
			"hoopctl verify: no key to check checkpoints with: no public key (%s; "
			"give one with --public-key FILE) and no audit.key (%s)\n",
			v->pub_err, v->key_err);
		return 2;
	}
	if (trail_list_open(state, t))
		return 2;
	if (!t->nsegs) {
		fprintf(stderr, "hoopctl verify: no segments in %s\n", t->dir);
		return 2;
	}
	return 0;
}

/* Verify the trail of `state` from `from` (NULL: from its start) into v. 0, or 2. */
static int verify_trail(struct verify *v, const char *state, const char *from)
{
	struct trail_list t = {.dfd = -1};
	int first = 0, rc;

	if ((rc = verify_open(v, state, &t)))
		goto out;
	if (from && (rc = verify_from(&t, from, &first)))
		goto out;
	/* --from, or older segments gone: retention records further on must account for them */
	v->from = from || t.segs[0].n != 1;
	for (int i = first; i < t.nsegs && !v->bad; i++)
		if (verify_segment(v, &t, i, first)) {
			rc = 2;
			goto out;
		}
	if (!v->bad && v->from)
		verify_trusted_start(v, &t, from, first);
	/* A trail sealed only by HMACs while a signing key exists is what whoever holds
	 * audit.key can write after rewriting everything since the upgrade: hoopd signs every
	 * checkpoint once it has the key, so a trail it kept writing ends with a signed one. */
	if (!v->bad && !v->cannot && v->npubs && v->hmac_cps && !v->signed_cps)
		vfail(v, v->where_seg[0] ? v->where_seg : t.segs[t.nsegs - 1].name, 0, 1,
		      v->last_hmac_seq, "unsigned_trail",
		      "no checkpoint of this trail is signed, though a public key is given: a "
		      "hoopd that has its signing key signs every checkpoint, so these HMAC "
		      "checkpoints (the last at seq %llu) may have been made by whoever holds "
		      "audit.key; verify without --public-key (and without audit.pub in the "
		      "directory) only a trail that ends before the upgrade",
		      (unsigned long long)v->last_hmac_seq);
	/* Whoever holds audit.key can make HMAC checkpoints: the auditor sees where they end */
	if (!v->bad && v->hmac_cps)
		vnote(v,
		      "%llu checkpoint(s), up to seq %llu, carry an HMAC under audit.key (written "
		      "before hoopd signed checkpoints: whoever holds audit.key could have made "
		      "them); %llu carry an Ed25519 signature",
		      (unsigned long long)v->hmac_cps, (unsigned long long)v->last_hmac_seq,
		      (unsigned long long)v->signed_cps);
	if (v->cannot) {
		fprintf(stderr, "hoopctl verify: cannot check %s line %u (seq %llu): %s\n",
			v->where_seg, v->where_line, (unsigned long long)v->where_seq, v->msg);
		rc = 2;
	}
out:
	trail_list_free(&t);
	return rc;
}

static void verify_free(struct verify *v)
{
	for (int i = 0; i < v->npubs; i++)
		EVP_PKEY_free(v->pubs[i]);
	free(v->removed);
	free(v);
}

/* Verify the trail under state (from a segment, or NULL), print, free v: 0 intact, 1 not,
 * 2 when it could not be read. */
static int verify_report(struct verify *v, const char *state, const char *from)
{
	int rc = verify_trail(v, state, from);

	if (!rc) {
		if (v->json)
			verify_print_json(v);
		else
			verify_print_text(v);
		rc = v->bad ? 1 : 0;
	}
	verify_free(v);
	return rc;
}

int verify_run(const char *state, const char *const *pubs, int npubs, int json)
{
	struct verify *v = calloc(1, sizeof(*v));

	if (!v)
		return 2;
	v->json = json;
	for (int i = 0; i < npubs; i++)
		if (verify_add_pub(v, state, pubs[i])) {
			verify_free(v);
			return 2;
		}
	return verify_report(v, state, NULL);
}

int cmd_verify(int argc, char **argv)
{
	static const struct option opts[] = {{"state-dir", required_argument, 0, 'd'},
					     {"from", required_argument, 0, 'f'},
					     {"public-key", required_argument, 0, 'k'},
					     {"json", no_argument, 0, 'j'},
					     {"help", no_argument, 0, 'h'},
					     {0}};
	static const struct trail_cmd cmd = {"verify", verify_usage, opts};
	const char *state = DEFAULT_STATE_DIR, *from = NULL;
	struct verify *v = calloc(1, sizeof(*v));
	int c, rc = -1;

	if (!v)
		return 2;
	while ((c = trail_cmd_opt(&cmd, argc, argv, &rc)) != -1) {
		if (c == 'd')
			state = optarg;
		else if (c == 'f')
			from = optarg;
		else if (c == 'j')
			v->json = 1;
		else if (c == 'k' && verify_add_pub(v, state, optarg))
			rc = 2;
	}
	if (rc < 0 && !(rc = trail_cmd_args(&cmd, argc, argv, 0)))
		return verify_report(v, state, from);
	verify_free(v);
	return rc;
}
