/*
 * Masking a row's cells: each cell by its column's plan (a column style, or the detectors on
 * text-like values), and the row loop that drives a row codec (rowcodec.h) over one message.
 * Knows no wire format: the cells come from the codec, the new values go back to it.
 */
#include <stdio.h>
#include <string.h>

#include "mask_int.h"

static int put(struct buf *b, const void *p, size_t n)
{
	return n && buf_append(b, p, n) ? -1 : 0;
}

/* The style a column's plan asks for, or -1 when no rule covers it. */
static int col_style(const struct mask_engine *me, const struct mask_colplan *c, int *kf, int *kl)
{
	int st;

	*kf = *kl = 0;
	if (c->rule == MASK_RULE_NONE)
		return -1;
	if (c->rule >= 0 && c->rule < me->mp.nrules) {
		const struct mask_column_rule *r = &me->mp.rules[c->rule];

		st = (int)r->style;
		*kf = r->keep_first;
		*kl = r->keep_last;
	} else {
		/* MASK_RULE_UNKNOWN, or a rule index this engine does not have: fail closed */
		st = (int)me->mp.unknown_style;
	}
	if (c->derived && (st == MASK_PARTIAL || st == MASK_FORMAT_PRESERVING))
		st = MASK_REDACT;
	return st;
}

struct row_ctx {
	const struct mask_engine *me;
	const struct mask_colplan *cols;
	int ncols;
	int copyfmt; /* -1: each column's own format; COPY: 0 text/csv, 1 binary */
	struct mask_tls *w;
	struct mask_counts *counts;
	int changed;
};

static int fmt_of(const struct row_ctx *r, int i)
{
	return r->copyfmt >= 0 ? r->copyfmt : r->cols[i].format;
}

static void count_col(struct mask_counts *c, int i)
{
	if (c->cols && i < c->ncols)
		c->cols[i]++;
}

/* A value that cannot be produced validly: NULL in its place, or the statement withheld. */
static int unmaskable(struct row_ctx *r, int i)
{
	const struct mask_colplan *c = &r->cols[i];
	int fmt = fmt_of(r, i);

	r->counts->withheld++;
	if (r->me->mp.on_unmaskable == UNMASKABLE_NULL) {
		r->w->outs[i].kind = ROW_NULL;
		r->changed = 1;
		return 0;
	}
	if (c->label[0])
		snprintf(r->counts->why, sizeof(r->counts->why),
			 "column %d (\"%.*s\", type oid %u) cannot be masked in %s format", i + 1,
			 (int)sizeof(c->label), c->label, c->type_oid,
			 fmt == 1 ? "binary" : "text");
	else
		snprintf(r->counts->why, sizeof(r->counts->why),
			 "column %d (type oid %u) cannot be masked in %s format", i + 1,
			 c->type_oid, fmt == 1 ? "binary" : "text");
	return 1;
}

/* Records what mask_value (or a detector) returned for cell i, its output at vals[off..]. */
static int settle(struct row_ctx *r, int i, int mv, size_t off)
{
	struct mask_tls *w = r->w;
	struct row_out *o = &w->outs[i];

	switch (mv) {
	case MV_KEEP:
		w->vals.len = off;
		return 0;
	case MV_VALUE:
		if (w->vals.len - off > INT32_MAX)
			return unmaskable(r, i);
		o->kind = ROW_NEW;
		o->off = (uint32_t)off;
		o->len = (int32_t)(w->vals.len - off);
		r->changed = 1;
		return 0;
	case MV_NULL:
		w->vals.len = off;
		o->kind = ROW_NULL;
		r->changed = 1;
		return 0;
	case MV_UNMASKABLE:
		w->vals.len = off;
		return unmaskable(r, i);
	default:
		w->vals.len = off;
		return -1;
	}
}

static int whole(struct row_ctx *r, int i, int style, int kf, int kl, const struct mtype *t)
{
	struct row_cell *c = &r->w->cells[i];
	size_t off = r->w->vals.len;
	int mv;

	if (style == MASK_NULL)
		mv = MV_NULL;
	else if (!t)
		mv = MV_UNMASKABLE;
	else
		mv = mask_value(r->me, (enum mask_style)style, kf, kl, t, fmt_of(r, i), c->p,
				(size_t)c->len, &r->w->vals);
	return settle(r, i, mv, off);
}

/* An integer column named like an SSN holding nine digits (leading zeros lost) that are one. */
static int int_is_ssn(const struct mtype *t, int fmt, const uint8_t *p, size_t n)
{
	uint64_t v = 0;
	uint8_t d[9];

	if (fmt == 1 && t->kind != MT_NUMERIC) {
		if (n != (t->kind == MT_INT4 ? 4u : 8u))
			return 0;
		for (size_t i = 0; i < n; i++)
			v = v << 8 | p[i];
		if (t->kind == MT_INT4)
			v = (uint64_t)(int64_t)(int32_t)v;
		if ((int64_t)v < 0)
			return 0;
	} else if (fmt == 0) {
		if (!n || n > 9)
			return 0;
		for (size_t i = 0; i < n; i++) {
			if (!mask_isdigit(p[i]))
				return 0;
			v = v * 10 + (uint64_t)(p[i] - '0');
		}
	} else {
		return 0;
	}
	if (v > 999999999)
		return 0;
	for (int k = 8; k >= 0; k--) {
		d[k] = (uint8_t)('0' + v % 10);
		v /= 10;
	}
	return mask_ssn_valid(d);
}

struct elem_det {
	const struct mask_engine *me;
	struct mask_tls *w;
	int kind, format;
	unsigned ctx;
	uint64_t *det;
};

static int elem_detect(void *arg, const uint8_t *v, size_t n, struct buf *out)
{
	struct elem_det *e = arg;
	int r;

	if (e->kind != MT_JSONB || e->format != 1)
		return mask_detect_value(e->me, e->w, e->kind, e->ctx, v, n, out, e->det);
	if (!n || v[0] != 1)
		return MV_UNMASKABLE;
	if (put(out, "\1", 1))
		return -1;
	r = mask_detect_value(e->me, e->w, e->kind, e->ctx, v + 1, n - 1, out, e->det);
	if (r != MV_VALUE)
		out->len = 0;
	return r;
}

/* Detectors on a candidate cell whose raw bytes had triggers [k0, k1) (shift: where the cell
 * starts in the scanned span). */
static int detect_cell(struct row_ctx *r, int i, const struct mtype *t, size_t shift, size_t k0,
		       size_t k1)
{
	struct mask_tls *w = r->w;
	struct row_cell *c = &w->cells[i];
	size_t off = w->vals.len;
	const uint8_t *v = c->p;
	size_t n = (size_t)c->len;
	int fmt = fmt_of(r, i), mv;

	if (t->kind == MT_ARRAY) {
		const struct mtype *et = mask_type(t->elem);
		struct elem_det e = {r->me, w, et->kind, fmt, r->cols[i].context, r->counts->det};

		mv = mask_array_map(t, fmt, v, n, elem_detect, &e, w, &w->vals);
		return settle(r, i, mv, off);
	}
	if (t->kind == MT_JSONB && fmt == 1) {
		if (!n || v[0] != 1)
			return settle(r, i, MV_UNMASKABLE, off);
		if (put(&w->vals, "\1", 1))
			return -1;
		v++;
		n--;
		shift++;
	}
	mv = mask_detect_apply(r->me, w, t->kind, r->cols[i].context, v, n, shift, k0, k1, &w->vals,
			       r->counts->det);
	return settle(r, i, mv, off);
}

/* A whole value that is an identifier by its type and its column's name (a birth date, an
 * address, an SSN kept as an integer): the detector that says so, or -1. */
static int whole_detector(const struct row_ctx *r, int i, const struct mtype *t, int kind)
{
	const struct mask_colplan *cp = &r->cols[i];
	const struct row_cell *c = &r->w->cells[i];
	unsigned dets = r->me->mp.detectors;

	if ((dets & 1u << DET_DOB) && (cp->context & 1u << DET_DOB) &&
	    (kind == MT_DATE || kind == MT_TIMESTAMP || kind == MT_TIMESTAMPTZ))
		return DET_DOB;
	if ((dets & 1u << DET_IPV4) && (kind == MT_INET || kind == MT_CIDR))
		return DET_IPV4;
	if ((dets & 1u << DET_US_SSN) && (cp->context & 1u << DET_US_SSN) &&
	    (t->kind == MT_INT4 || t->kind == MT_INT8 || t->kind == MT_NUMERIC) &&
	    int_is_ssn(t, fmt_of(r, i), c->p, (size_t)c->len))
		return DET_US_SSN;
	return -1;
}

/*
 * The first pass over a row: column styles and whole-value detectors applied, text-like cells
 * the detectors must read marked in w->cand, and the span of base they lie in (*lo, *hi).
 * Returns 0, 1 (withhold) or -1; *ncand the candidates.
 */
static int mask_by_column(struct row_ctx *r, const uint8_t *base, int *ncand_out,
			  size_t *lo_out, size_t *hi_out)
{
	size_t lo = SIZE_MAX, hi = 0; /* kept in registers, not through the pointers */
	int ncand = 0;
	const struct mask_engine *me = r->me;
	struct mask_tls *w = r->w;
	unsigned dets = me->mp.detectors;
	int scan = me->db_num || me->db_lit;
	int rc;

	for (int i = 0; i < r->ncols; i++) {
		const struct mask_colplan *cp = &r->cols[i];
		struct row_cell *c = &w->cells[i];
		const struct mtype *t, *et;
		int kf, kl, st, kind, d;

		w->outs[i].kind = ROW_KEEP;
		w->cand[i] = 0;
		if (c->len < 0)
			continue;
		t = mask_type(cp->type_oid);
		st = col_style(me, cp, &kf, &kl);
		if (st >= 0) {
			rc = whole(r, i, st, kf, kl, t);
			if (rc)
				return rc;
			if (w->outs[i].kind != ROW_KEEP)
				count_col(r->counts, i);
			continue;
		}
		if (!dets || !t)
			continue;
		et = t->kind == MT_ARRAY ? mask_type(t->elem) : t;
		kind = et ? et->kind : -1;
		if (mask_kind_textlike(kind)) {
			size_t a = (size_t)(c->p - base);

			if (!scan)
				continue;
			w->cand[i] = 1;
			ncand++;
			if (a < lo)
				lo = a;
			if (a + (size_t)c->len > hi)
				hi = a + (size_t)c->len;
			continue;
		}
		d = whole_detector(r, i, t, kind);
		if (d < 0)
			continue;
		rc = whole(r, i, me->mp.detector_style, 0, 0, t);
		if (rc)
			return rc;
		if (w->outs[i].kind != ROW_KEEP)
			r->counts->det[d]++;
	}
	*ncand_out = ncand;
	*lo_out = lo;
	*hi_out = hi;
	return 0;
}

/* The numeric patterns over the candidate cells of base[lo..hi): one pass for digits over the
 * span; a digit in a candidate cell sends that cell to the numeric test, a digit elsewhere
 * skips to its cell's end. 0 or -1. */
static int scan_numeric(struct row_ctx *r, const uint8_t *sp, size_t n)
{
	struct mask_tls *w = r->w;
	size_t d = mask_next_digit(sp, 0, n);
	int i = 0;

	while (d < n) {
		const struct row_cell *c;
		size_t cs, ce;

		/* cells before the span (not candidates) and those ending before d */
		while (i < r->ncols &&
		       (w->cells[i].len <= 0 || w->cells[i].p < sp ||
			(size_t)(w->cells[i].p - sp) + (size_t)w->cells[i].len <= d))
			i++;
		if (i >= r->ncols)
			break;
		c = &w->cells[i];
		cs = (size_t)(c->p - sp);
		ce = cs + (size_t)c->len;
		if (d < cs) { /* a byte between cells: the next digit from the cell on */
			d = mask_next_digit(sp, cs, n);
			continue;
		}
		if (w->cand[i] && mask_detect_scan_num(r->me, w, c->p, (size_t)c->len,
						       r->cols[i].context, cs, d - cs))
			return -1;
		d = mask_next_digit(sp, ce, n);
		i++;
	}
	return 0;
}

/*
 * Masks the row in w->cells[0..ncols) (pointers into base) into w->outs; new values go to
 * w->vals. 0, 1 (withhold: counts->why says why) or -1.
 */
static int mask_cells(struct row_ctx *r, const uint8_t *base)
{
	const struct mask_engine *me = r->me;
	struct mask_tls *w = r->w;
	size_t lo = SIZE_MAX, hi = 0;
	int ncand = 0, rc;

	w->vals.len = 0;
	r->changed = 0;
	rc = mask_by_column(r, base, &ncand, &lo, &hi);
	if (rc || !ncand)
		return rc;
	/* one scan of the span for the literal patterns; the numeric ones cell by cell, where
	 * digits could hold an identifier (non-text cells between stay out) */
	w->ntrig = 0;
	if (mask_detect_scan_lit(me, w, base + lo, hi - lo))
		return -1;
	if (me->db_num && scan_numeric(r, base + lo, hi - lo))
		return -1;
	if (!w->ntrig)
		return 0;
	mask_detect_sort(w, 0);
	for (int i = 0, k = 0; i < r->ncols; i++) {
		struct row_cell *c = &w->cells[i];
		size_t cs, ce, k0;

		if (!w->cand[i])
			continue;
		cs = (size_t)(c->p - base) - lo;
		ce = cs + (size_t)c->len;
		while ((size_t)k < w->ntrig && w->trig[k].to <= cs)
			k++;
		k0 = (size_t)k;
		while ((size_t)k < w->ntrig && w->trig[k].to <= ce)
			k++;
		if (k0 == (size_t)k)
			continue;
		rc = detect_cell(r, i, mask_type(r->cols[i].type_oid), cs, k0, (size_t)k);
		if (rc)
			return rc;
	}
	return 0;
}

static int row_begin(struct row_ctx *r, const struct mask_engine *me,
		     const struct mask_colplan *cols, int ncols, struct mask_counts *counts,
		     struct mask_counts *dummy, int copyfmt)
{
	memset(r, 0, sizeof(*r));
	/* a row has at most 32767 columns (PostgreSQL's count is an int16; MySQL allows 4096) */
	if (!me || ncols < 0 || ncols > INT16_MAX || (ncols > 0 && !cols))
		return -1;
	r->me = me;
	r->cols = cols;
	r->ncols = ncols;
	r->copyfmt = copyfmt;
	r->counts = counts ? counts : dummy;
	r->w = mask_tls_get(me);
	if (!r->w || mask_tls_cells(r->w, (size_t)ncols + 1))
		return -1;
	return 0;
}

int mask_type_detectable(uint32_t type_oid)
{
	const struct mtype *t = mask_type(type_oid), *et;

	if (!t)
		return 0;
	et = t->kind == MT_ARRAY ? mask_type(t->elem) : t;
	return et && mask_kind_textlike(et->kind);
}

/* The message through the codec (see rowcodec.h); on any failure nothing stays in out. */
static int rows(struct row_ctx *rc, struct row_codec *codec, const uint8_t *msg, size_t len,
		struct buf *out)
{
	const struct row_codec_ops *ops = codec->ops;
	struct mask_tls *w = rc->w;
	struct row r = {.ncols = rc->ncols,
			.cells = w->cells,
			.outs = w->outs,
			.scratch = &w->dec,
			.why = rc->counts->why,
			.whyn = sizeof(rc->counts->why)};
	size_t start = out->len, off = 0;
	int ret;

	if (len > INT32_MAX || ops->begin(codec, msg, len, &off, out))
		goto bad;
	for (;;) {
		w->dec.len = 0;
		ret = ops->split(codec, msg, len, &off, &r);
		if (ret == 0)
			break;
		if (ret != 1)
			goto bad;
		ret = mask_cells(rc, r.base);
		if (ret)
			goto fail;
		if (!rc->changed) {
			if (put(out, msg + r.start, r.end - r.start))
				goto bad;
			continue;
		}
		r.vals = w->vals.data;
		ret = ops->put_row(codec, msg, &r, out);
		if (ret)
			goto fail;
	}
	ret = ops->end(codec, msg, len, off, start, out, rc->counts->why, sizeof(rc->counts->why));
	if (!ret)
		return 0;
fail:
	out->len = start;
	return ret == 1 ? 1 : -1;
bad:
	out->len = start;
	return -1;
}

int mask_rows(const struct mask_engine *me, struct row_codec *codec,
	      const struct mask_colplan *cols, int ncols, const uint8_t *msg, size_t len,
	      struct buf *out, struct mask_counts *counts)
{
	struct mask_counts dummy;
	struct row_ctx r = {0};
	int rc = -1;

	if (!counts) /* zeroed only when used: it is most of a row's fixed cost */
		memset(&dummy, 0, sizeof(dummy));
	if (codec && codec->ops &&
	    !row_begin(&r, me, cols, ncols, counts, &dummy, codec->cell_format))
		rc = rows(&r, codec, msg, len, out);
	if (r.w)
		mask_tls_trim(r.w);
	return rc;
}
