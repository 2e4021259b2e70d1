/*
 * Masking, the module's frame: names of styles and detectors, column context from names, the
 * engine's life (a copy of the policy, the HMAC key's states, the compiled detectors), each
 * thread's workspace, and the counts as JSON. Whole values: mask_value.c; arrays:
 * mask_array.c; detectors: mask_detect.c; a row's cells: mask_cells.c (PostgreSQL's rows:
 * pgrow.c, a row codec).
 */
/* SHA256_Init and friends: deprecated in OpenSSL 3 but kept, and the only way to copy a
 * keyed state without EVP allocating a context per value. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <ctype.h>
#include <errno.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "mask_int.h"

static const char *const style_names[MASK_STYLE_COUNT] = {
    [MASK_REDACT] = "redact",
    [MASK_PARTIAL] = "partial",
    [MASK_HASH] = "hash",
    [MASK_NULL] = "null",
    [MASK_FORMAT_PRESERVING] = "format_preserving",
};

static const char *const detector_names[DET_COUNT] = {
    [DET_US_SSN] = "us_ssn", [DET_EMAIL] = "email",
    [DET_PHONE] = "phone",   [DET_CREDIT_CARD] = "credit_card",
    [DET_MRN] = "mrn",	     [DET_DOB] = "dob",
    [DET_IPV4] = "ipv4",
};

const char *mask_style_name(enum mask_style s)
{
	return (unsigned)s < MASK_STYLE_COUNT ? style_names[s] : "?";
}

int mask_style_from_name(const char *name)
{
	for (int i = 0; i < MASK_STYLE_COUNT; i++)
		if (name && !strcmp(name, style_names[i]))
			return i;
	return -1;
}

const char *mask_detector_name(enum mask_detector d)
{
	return (unsigned)d < DET_COUNT ? detector_names[d] : "?";
}

int mask_detector_from_name(const char *name)
{
	for (int i = 0; i < DET_COUNT; i++)
		if (name && !strcmp(name, detector_names[i]))
			return i;
	return -1;
}

/*
 * Words of a column name: split at anything not a letter or digit and at lower-to-upper case
 * changes (birthDate), folded to lower case. Context comes from whole words or word pairs so
 * that "lesson" or "classnum" do not read as "ssn".
 */
#define CTX_WORDS 16
#define CTX_WORD  32

unsigned mask_context_from_name(const char *column)
{
	char w[CTX_WORDS][CTX_WORD];
	int nw = 0;
	unsigned ctx = 0;
	size_t wl = 0;

	if (!column)
		return 0;
	for (const char *p = column;; p++) {
		int c = (unsigned char)*p;
		int alnum = c && isalnum(c);
		int camel =
		    alnum && wl && isupper(c) && p > column && islower((unsigned char)p[-1]);

		if ((!alnum || camel) && wl) {
			w[nw][wl] = '\0';
			if (++nw == CTX_WORDS)
				break;
			wl = 0;
		}
		if (!c)
			break;
		if (alnum && wl < CTX_WORD - 1)
			w[nw][wl++] = (char)tolower(c);
	}
	for (int i = 0; i < nw; i++) {
		const char *a = w[i], *b = i + 1 < nw ? w[i + 1] : "",
			   *c = i + 2 < nw ? w[i + 2] : "";

		if (!strcmp(a, "dob") || !strcmp(a, "birthdate") || !strcmp(a, "birthday") ||
		    !strcmp(a, "dateofbirth") || !strcmp(a, "birth") || !strcmp(a, "bday") ||
		    !strcmp(a, "birthdt") || !strcmp(a, "born"))
			ctx |= 1u << DET_DOB;
		if (!strcmp(a, "ssn") || !strcmp(a, "ssns") || !strcmp(a, "socialsecurity") ||
		    !strcmp(a, "socialsecuritynumber") || !strcmp(a, "socsec"))
			ctx |= 1u << DET_US_SSN;
		if (!strcmp(a, "social") && (!strcmp(b, "security") || !strcmp(b, "sec")))
			ctx |= 1u << DET_US_SSN;
		if (!strcmp(a, "ss") && (!strcmp(b, "num") || !strcmp(b, "no") ||
					 !strcmp(b, "number") || !strcmp(b, "nr")))
			ctx |= 1u << DET_US_SSN;
		if (!strcmp(a, "date") && !strcmp(b, "of") && !strcmp(c, "birth"))
			ctx |= 1u << DET_DOB;
	}
	return ctx;
}

/* ---- the engine ---- */

static uint64_t engine_gen;

struct mask_hmac_state {
	SHA256_CTX in, out;
};

static int hmac_states(struct mask_engine *me)
{
	uint8_t pad[64];
	int ok;

	me->hmac = calloc(1, sizeof(*me->hmac));
	if (!me->hmac)
		return -1;
	memset(pad, 0x36, sizeof(pad));
	for (int i = 0; i < 32; i++)
		pad[i] ^= me->key[i];
	ok = SHA256_Init(&me->hmac->in) && SHA256_Update(&me->hmac->in, pad, 64);
	memset(pad, 0x5c, sizeof(pad));
	for (int i = 0; i < 32; i++)
		pad[i] ^= me->key[i];
	ok = ok && SHA256_Init(&me->hmac->out) && SHA256_Update(&me->hmac->out, pad, 64);
	memset(pad, 0, sizeof(pad));
	return ok ? 0 : -1;
}

int mask_engine_new(const struct mask_policy *mp, const uint8_t key[32], struct mask_engine **out,
		    char *err, size_t errn)
{
	struct mask_engine *me;

	*out = NULL;
	if (errn)
		err[0] = '\0';
	if (mp->nrules < 0 || mp->nrules > MASK_MAX_RULES) {
		snprintf(err, errn, "masking: %d column rules (at most %d)", mp->nrules,
			 MASK_MAX_RULES);
		return -1;
	}
	for (int i = 0; i < mp->nrules; i++) {
		const struct mask_column_rule *r = &mp->rules[i];

		if ((unsigned)r->style >= MASK_STYLE_COUNT || r->keep_first < 0 ||
		    r->keep_last < 0) {
			snprintf(err, errn, "masking: column rule %d (line %d): bad style or keep",
				 i, r->line);
			return -1;
		}
	}
	if (mp->unknown_style != MASK_REDACT && mp->unknown_style != MASK_NULL) {
		snprintf(err, errn,
			 "masking: unknown_style must be redact or null (%s needs the original)",
			 mask_style_name(mp->unknown_style));
		return -1;
	}
	if ((unsigned)mp->detector_style >= MASK_STYLE_COUNT) {
		snprintf(err, errn, "masking: bad detector_style %d", (int)mp->detector_style);
		return -1;
	}
	if (mp->on_unmaskable != UNMASKABLE_WITHHOLD && mp->on_unmaskable != UNMASKABLE_NULL) {
		snprintf(err, errn, "masking: bad on_unmaskable %d", (int)mp->on_unmaskable);
		return -1;
	}
	me = calloc(1, sizeof(*me));
	if (!me) {
		snprintf(err, errn, "masking: %s", strerror(ENOMEM));
		return -1;
	}
	me->mp = *mp;
	me->mp.mrn_pattern[sizeof(me->mp.mrn_pattern) - 1] = '\0';
	if (!me->mp.mrn_pattern[0])
		strcpy(me->mp.mrn_pattern, "MRN-[0-9]{8}");
	memcpy(me->key, key, 32);
	me->gen = __atomic_add_fetch(&engine_gen, 1, __ATOMIC_RELAXED);
	if (hmac_states(me)) {
		snprintf(err, errn, "masking: OpenSSL SHA-256 unavailable");
		goto cleanup;
	}
	if (mask_detect_compile(me, err, errn))
		goto cleanup;
	*out = me;
	return 0;
cleanup:
	mask_engine_free(me);
	return -1;
}

void mask_engine_free(struct mask_engine *me)
{
	if (!me)
		return;
	if (me->hmac)
		memset(me->hmac, 0, sizeof(*me->hmac));
	free(me->hmac);
	hs_free_database(me->db_num);
	hs_free_database(me->db_lit);
	memset(me->key, 0, sizeof(me->key));
	free(me);
}

/* ---- per-thread workspace ---- */

/* One per thread: engines are shared, Hyperscan scratch and the row buffers are not. */
static __thread struct mask_tls *tls;

struct mask_tls *mask_tls_get(const struct mask_engine *me)
{
	struct mask_tls *w = tls;

	if (!w) {
		w = calloc(1, sizeof(*w));
		if (!w)
			return NULL;
		tls = w;
	}
	if (w->gen != me->gen) {
		/* grows the scratch to fit this engine's databases too; keeps it when it does */
		if ((me->db_num && hs_alloc_scratch(me->db_num, &w->scratch) != HS_SUCCESS) ||
		    (me->db_lit && hs_alloc_scratch(me->db_lit, &w->scratch) != HS_SUCCESS))
			return NULL;
		w->gen = me->gen;
	}
	return w;
}

int mask_tls_cells(struct mask_tls *w, size_t n)
{
	if (n <= w->capcells)
		return 0;
	{
		size_t cap = w->capcells ? w->capcells : 64;
		struct row_cell *c;
		struct row_out *o;
		uint8_t *k;

		while (cap < n)
			cap *= 2;
		c = realloc(w->cells, cap * sizeof(*c));
		if (!c)
			return -ENOMEM;
		w->cells = c;
		o = realloc(w->outs, cap * sizeof(*o));
		if (!o)
			return -ENOMEM;
		w->outs = o;
		k = realloc(w->cand, cap);
		if (!k)
			return -ENOMEM;
		w->cand = k;
		w->capcells = cap;
	}
	return 0;
}

/* A value of megabytes must not keep its buffers after its row: trim back what grew past
 * this (a relay's buffers follow the same rule). */
#define TLS_KEEP (1u << 20)

static void trim_buf(struct buf *b)
{
	if (b->cap > TLS_KEEP)
		buf_free(b);
}

void mask_tls_trim(struct mask_tls *w)
{
	trim_buf(&w->vals);
	trim_buf(&w->dec);
	trim_buf(&w->el);
	trim_buf(&w->eldec);
	trim_buf(&w->canon);
	if (w->captrig * sizeof(*w->trig) > TLS_KEEP) {
		free(w->trig);
		w->trig = NULL;
		w->captrig = w->ntrig = 0;
	}
	if (w->capspans * sizeof(*w->spans) > TLS_KEEP) {
		free(w->spans);
		w->spans = NULL;
		w->capspans = w->nspans = 0;
	}
}

void mask_thread_release(void)
{
	struct mask_tls *w = tls;

	if (!w)
		return;
	hs_free_scratch(w->scratch);
	free(w->trig);
	free(w->spans);
	free(w->cells);
	free(w->outs);
	free(w->cand);
	buf_free(&w->vals);
	buf_free(&w->dec);
	buf_free(&w->el);
	buf_free(&w->eldec);
	buf_free(&w->canon);
	free(w);
	tls = NULL;
}

void mask_hmac(const struct mask_engine *me, const void *a, size_t an, const void *b, size_t bn,
	       uint8_t out[32])
{
	SHA256_CTX c = me->hmac->in;
	uint8_t inner[32];

	/* Should SHA-256 fail, the value still gets a fixed, meaningless mask: never itself. */
	if (!SHA256_Update(&c, a, an) || (bn && !SHA256_Update(&c, b, bn)) ||
	    !SHA256_Final(inner, &c)) {
		memset(out, 0, 32);
		return;
	}
	c = me->hmac->out;
	if (!SHA256_Update(&c, inner, 32) || !SHA256_Final(out, &c))
		memset(out, 0, 32);
}

/* ---- counts ---- */

void mask_counts_json(const struct mask_colplan *cols, const struct mask_counts *c, struct buf *out)
{
	struct jbuf j;
	int any = 0, n = c->cols ? c->ncols : 0;
	char label[160];

	for (int i = 0; i < n; i++)
		any |= c->cols[i] != 0;
	for (int d = 0; d < DET_COUNT; d++)
		any |= c->det[d] != 0;
	if (!any)
		return;
	jb_init(&j);
	jb_obj_open(&j);
	jb_key(&j, "columns");
	jb_obj_open(&j);
	for (int i = 0; i < n; i++) {
		uint64_t sum = 0;
		int first = 1;

		if (cols && cols[i].label[0])
			snprintf(label, sizeof(label), "%.*s", (int)sizeof(cols[i].label),
				 cols[i].label);
		else
			snprintf(label, sizeof(label), "#%d", i + 1);
		/* result columns reported under one label (two reads of patients.ssn) add up */
		for (int k = 0; k < n; k++) {
			const char *lk = cols && cols[k].label[0] ? cols[k].label : NULL;
			int same = lk ? !strncmp(lk, label, sizeof(cols[k].label)) : k == i;

			if (!same)
				continue;
			if (k < i)
				first = 0;
			sum += c->cols[k];
		}
		if (first && sum)
			jb_kv_uint(&j, label, sum);
	}
	jb_obj_close(&j);
	jb_key(&j, "detectors");
	jb_obj_open(&j);
	for (int d = 0; d < DET_COUNT; d++)
		if (c->det[d])
			jb_kv_uint(&j, detector_names[d], c->det[d]);
	jb_obj_close(&j);
	jb_obj_close(&j);
	if (!j.oom && j.s)
		buf_append(out, j.s, j.len);
	jb_free(&j);
}
