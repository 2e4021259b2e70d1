/*
 * Inside the masking module (mask.c, mask_value.c, mask_num.c, mask_time.c, mask_array.c,
 * mask_detect.c, mask_cells.c): the engine, the per-thread workspace, the type table and the
 * calls between those files.
 * Nothing outside user/hoopd/mask/mask*.c includes this.
 */
#ifndef HOOP_MASK_INT_H
#define HOOP_MASK_INT_H

#include <hs/hs.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "buf.h"
#include "mask.h"
#include "rowcodec.h"

/* ---- types ---- */

enum mtype_kind {
	MT_TEXT =
	    0, /* text, varchar, bpchar, name, unknown: the bytes are the text in both formats */
	MT_JSON,
	MT_JSONB, /* binary: version byte 1, then the text */
	MT_XML,
	MT_BYTEA,
	MT_CHAR, /* "char": one byte */
	MT_BOOL,
	MT_INT2,
	MT_INT4,
	MT_INT8,
	MT_NUMERIC,
	MT_FLOAT4,
	MT_FLOAT8,
	MT_DATE,
	MT_TIMESTAMP,
	MT_TIMESTAMPTZ,
	MT_TIME,
	MT_INET,
	MT_CIDR,
	MT_UUID,
	MT_ARRAY,
	MT_INTERVAL, /* binary: int64 microseconds, int32 days, int32 months */
};

struct mtype {
	uint32_t oid;
	uint8_t kind;  /* enum mtype_kind */
	uint32_t elem; /* MT_ARRAY: the element type's oid */
	const char *name;
};

/* NULL: not a type hoop can mask. A lookup, not a search: it runs per row and column. */
#define MASK_TYPE_INDEX_MAX 4096 /* the built-in types hoop masks are below */
extern const struct mtype mask_types[];
extern const uint8_t mask_type_index[MASK_TYPE_INDEX_MAX];

static inline const struct mtype *mask_type(uint32_t oid)
{
	return oid < MASK_TYPE_INDEX_MAX && mask_type_index[oid]
		   ? &mask_types[mask_type_index[oid] - 1]
		   : NULL;
}

static inline int mask_kind_textlike(int kind)
{
	return kind == MT_TEXT || kind == MT_JSON || kind == MT_JSONB || kind == MT_XML;
}

/* ---- the engine ---- */

/* Hyperscan expressions: several per detector; validators (mask_detect.c) re-find boundaries
 * from the end offset, so only the MRN pattern needs start-of-match. */
enum mask_pat {
	PAT_SSN_DASH = 0,
	PAT_SSN_SPACE,
	PAT_SSN_BARE,
	PAT_EMAIL,
	PAT_PHONE_PAREN,
	PAT_PHONE_SEP,
	PAT_PHONE_PLUS1,
	PAT_PHONE_E164,
	PAT_CARD,
	PAT_MRN,
	PAT_DOB_ISO,
	PAT_DOB_SLASH,
	PAT_DOB_DOT,
	PAT_DOB_COMPACT,
	PAT_IPV4,
	PAT_COUNT
};

struct mask_hmac_state; /* mask.c: SHA-256 states after key^ipad and key^opad */

struct mask_engine {
	struct mask_policy mp;
	uint8_t key[32];
	struct mask_hmac_state *hmac;
	/* Two databases: what needs digits (SSN, phone, card, DOB, IPv4), scanned only where a
	 * run of digits could hold one, and the rest (email, the MRN pattern), always scanned.
	 * NULL when none of their detectors is on. */
	hs_database_t *db_num;
	hs_database_t *db_lit;
	/* the literal database runs only where an '@' or the MRN pattern's literal prefix is
	 * (mrn_prefix_len 0: the pattern has none hoop can prove, it always runs) */
	char mrn_prefix[64];
	size_t mrn_prefix_len;
	uint64_t gen; /* tells a thread's scratch which engine it last served */
};

/* ---- per-thread workspace ---- */

struct mask_trig {
	uint32_t pat;	   /* enum mask_pat */
	uint32_t from, to; /* offsets in the scanned span (from: PAT_MRN only) */
};

struct mask_span {
	uint32_t s, e;
	uint16_t dets; /* 1 << enum mask_detector of every match merged into it */
};

struct mask_tls {
	hs_scratch_t *scratch;
	uint64_t gen;
	struct mask_trig *trig;
	size_t ntrig, captrig;
	int64_t last[PAT_COUNT]; /* index of each pattern's last trigger, for merging runs */
	struct mask_span *spans;
	size_t nspans, capspans;
	struct row_cell *cells; /* the row being masked, as its codec split it */
	struct row_out *outs;
	uint8_t *cand;
	size_t capcells;
	struct buf vals;  /* new cell values of the row */
	struct buf dec;	  /* the codec's scratch: decoded cells (COPY text/csv) */
	struct buf el;	  /* arrays: one masked element */
	struct buf eldec; /* arrays: one decoded element */
	struct buf canon; /* canonical text of a value for hashing */
};

/* The calling thread's workspace, its scratch fit for me's database; NULL on ENOMEM. */
struct mask_tls *mask_tls_get(const struct mask_engine *me);
int mask_tls_cells(struct mask_tls *w, size_t n); /* room for n cells; 0 or -ENOMEM */
void mask_tls_trim(struct mask_tls *w);		  /* after a message: drop what grew large */

/* HMAC-SHA-256 of the concatenation a || b under the engine's key. */
void mask_hmac(const struct mask_engine *me, const void *a, size_t an, const void *b, size_t bn,
	       uint8_t out[32]);

/* ---- whole values (mask_value.c, mask_array.c) ---- */

enum { MV_VALUE = 0, MV_NULL, MV_UNMASKABLE, MV_KEEP };

/*
 * Mask v[0..n) of type t in format (0 text, 1 binary) with style (not MASK_NULL, which the
 * caller handles) into dst: MV_VALUE (appended), MV_NULL, MV_UNMASKABLE (the value cannot be
 * produced validly: unknown layout, malformed binary value), or -1 (ENOMEM).
 */
int mask_value(const struct mask_engine *me, enum mask_style style, int keep_first, int keep_last,
	       const struct mtype *t, int format, const uint8_t *v, size_t n, struct buf *dst);

/* Text style helpers shared with the detectors. */
int mask_put_hash_text(const struct mask_engine *me, const uint8_t *v, size_t n, struct buf *dst);
/* Format-preserving over v: ASCII digits, upper and lower case letters stay in their class,
 * keyed by seed_src (the whole value), position by position; everything else is kept. */
int mask_put_fp_text(const struct mask_engine *me, const uint8_t *seed_src, size_t seed_n,
		     const uint8_t *v, size_t n, struct buf *dst);

/* Element-wise over an array value: fn gets each non-NULL element (decoded, in the element
 * format) and returns MV_KEEP, MV_VALUE (its output appended to out), MV_NULL, MV_UNMASKABLE or
 * -1. The array is rewritten into dst with the same dimensions. Returns MV_KEEP when no element
 * changed (nothing appended), MV_VALUE, MV_UNMASKABLE (also for a malformed array) or -1. */
typedef int (*mask_elem_fn)(void *ctx, const uint8_t *v, size_t n, struct buf *out);
int mask_array_map(const struct mtype *at, int format, const uint8_t *v, size_t n, mask_elem_fn fn,
		   void *ctx, struct mask_tls *w, struct buf *dst);

/* ---- one value's types, by family (mask_num.c, mask_time.c; mask_value.c dispatches) ---- */

/* Each masks v[0..n) in format (0 text, 1 binary) with style st into dst, like mask_value
 * (canon: scratch for the value's canonical text). */
int mask_int(const struct mask_engine *me, enum mask_style st, int kind, int format,
	     const uint8_t *v, size_t n, struct buf *dst);
int mask_numeric(const struct mask_engine *me, enum mask_style st, int format, const uint8_t *v,
		 size_t n, struct buf *dst, struct buf *canon);
int mask_float(const struct mask_engine *me, enum mask_style st, int kind, int format,
	       const uint8_t *v, size_t n, struct buf *dst);
int mask_datetime(const struct mask_engine *me, enum mask_style st, int kind, int format,
		  const uint8_t *v, size_t n, struct buf *dst);
int mask_interval(const struct mask_engine *me, enum mask_style st, int format, const uint8_t *v,
		  size_t n, struct buf *dst);
uint64_t mask_pow10_u64(int d); /* 10^d for d in 0..19 */

/* ---- detectors (mask_detect.c) ---- */

int mask_detect_compile(struct mask_engine *me, char *err, size_t errn);
/* Scans append triggers to w->trig: the literal database over p[0..n) (offsets relative to
 * p), where an '@' or the MRN prefix occurs; the numeric one over a value p[0..n) with column
 * context ctx, only when a run of its digits from p[from] on could hold a numeric identifier
 * (offsets plus shift). 0, or -1 (the scan failed or too many triggers: fail closed). Then
 * mask_detect_sort from the first new trigger. mask_detect_numeric_candidate is that test. */
int mask_detect_numeric_candidate(const uint8_t *p, size_t n, unsigned ctx);
/* The first digit at or after p[i], or n. */
size_t mask_next_digit(const uint8_t *p, size_t i, size_t n);
int mask_detect_scan_lit(const struct mask_engine *me, struct mask_tls *w, const uint8_t *p,
			 size_t n);
int mask_detect_scan_num(const struct mask_engine *me, struct mask_tls *w, const uint8_t *p,
			 size_t n, unsigned ctx, size_t shift, size_t from);
void mask_detect_sort(struct mask_tls *w, size_t first);
/*
 * Validate triggers t[0..nt) (offsets relative to v - shift) against the text value v[0..n) of
 * kind (MT_TEXT, MT_JSON, MT_JSONB's text, MT_XML) and column context ctx; mask what they find
 * with the engine's detector style. Returns MV_KEEP, MV_VALUE (the whole masked value appended
 * to dst), MV_NULL (detector style null) or -1. det[] counts the matches masked.
 */
int mask_detect_apply(const struct mask_engine *me, struct mask_tls *w, int kind, unsigned ctx,
		      const uint8_t *v, size_t n, size_t shift, size_t t0, size_t t1,
		      struct buf *dst, uint64_t det[DET_COUNT]);
/* Scan and apply on one standalone text value (array elements). */
int mask_detect_value(const struct mask_engine *me, struct mask_tls *w, int kind, unsigned ctx,
		      const uint8_t *v, size_t n, struct buf *dst, uint64_t det[DET_COUNT]);
/* SSN validity of nine digits (area, group, serial). */
int mask_ssn_valid(const uint8_t d[9]);

/* ---- small shared helpers ---- */

static inline uint32_t mask_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void mask_set_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline int mask_isdigit(int c)
{
	return c >= '0' && c <= '9';
}

static inline int mask_isalnum(int c)
{
	return mask_isdigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* splitmix64: expands a keyed seed into per-position choices for format-preserving masks. */
static inline uint64_t mask_mix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static inline uint64_t mask_u64(const uint8_t *h)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | h[i];
	return v;
}

/* ---- output of one value (mask_value.c, mask_num.c, mask_time.c) ---- */

/* 0 or -1 (ENOMEM) */
static inline int mask_put(struct buf *b, const void *p, size_t n)
{
	return n && buf_append(b, p, n) ? -1 : 0;
}

static inline int mask_put_str(struct buf *b, const char *s)
{
	return mask_put(b, s, strlen(s));
}

static inline int mask_put_be(struct buf *b, uint64_t v, int width)
{
	uint8_t o[8];

	for (int i = 0; i < width; i++)
		o[i] = (uint8_t)(v >> (8 * (width - 1 - i)));
	return mask_put(b, o, (size_t)width);
}

static inline uint64_t mask_get_be(const uint8_t *p, int width)
{
	uint64_t v = 0;

	for (int i = 0; i < width; i++)
		v = v << 8 | p[i];
	return v;
}

/* Either text or binary for one value: ret is MV_VALUE or -1. */
#define MV_PUT(expr) ((expr) ? -1 : MV_VALUE)

/* Keys of the hash and format-preserving styles: over the value's canonical text. */
static inline void mask_hash_of(const struct mask_engine *me, const void *v, size_t n,
				uint8_t h[32])
{
	mask_hmac(me, v, n, NULL, 0, h);
}

static inline void mask_fp_seed_of(const struct mask_engine *me, const void *v, size_t n,
				   uint64_t *seed)
{
	uint8_t h[32];

	mask_hmac(me, "fp:", 3, v, n, h);
	*seed = mask_u64(h) ^ mask_u64(h + 8);
}

#endif
