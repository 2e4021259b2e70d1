/*
 * Where DataRows and CopyData are rewritten: each message is parsed strictly into cells, every
 * cell is masked by its column's plan (a column style, or the detectors on text), and the
 * message is written again with its lengths recomputed. A row nothing touches is copied once,
 * as it came. COPY TO STDOUT in text, CSV and binary formats is decoded field by field and
 * encoded again in the same format and options.
 */
#include <stdio.h>
#include <string.h>

#include "mask_int.h"

static int put(struct buf *b, const void *p, size_t n)
{
	return n && buf_append(b, p, n) ? -1 : 0;
}

static int put_be32(struct buf *b, uint32_t v)
{
	uint8_t o[4];

	mask_set_be32(o, v);
	return put(b, o, 4);
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
		r->w->outs[i].kind = CELL_NULL;
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
	struct mask_out *o = &w->outs[i];

	switch (mv) {
	case MV_KEEP:
		w->vals.len = off;
		return 0;
	case MV_VALUE:
		if (w->vals.len - off > INT32_MAX)
			return unmaskable(r, i);
		o->kind = CELL_NEW;
		o->off = (uint32_t)off;
		o->len = (int32_t)(w->vals.len - off);
		r->changed = 1;
		return 0;
	case MV_NULL:
		w->vals.len = off;
		o->kind = CELL_NULL;
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
	struct mask_cell *c = &r->w->cells[i];
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
	struct mask_cell *c = &w->cells[i];
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

/*
 * Masks the row in w->cells[0..ncols) (pointers into base) into w->outs; new values go to
 * w->vals. 0, 1 (withhold: counts->why says why) or -1.
 */
/* n fields as a DataRow and a binary COPY tuple carry them (int32 length, -1 for NULL, then the
 * bytes) from d[*off..len) into w->cells. 0, or -1 when one overruns or is malformed. */
static int read_cells(struct mask_tls *w, int n, const uint8_t *d, size_t len, size_t *off)
{
	size_t i = *off;

	for (int k = 0; k < n; k++) {
		int32_t l;

		if (len - i < 4)
			return -1;
		l = (int32_t)mask_be32(d + i);
		i += 4;
		if (l < -1 || (l > 0 && (size_t)l > len - i))
			return -1;
		w->cells[k].p = d + i;
		w->cells[k].len = l;
		if (l > 0)
			i += (size_t)l;
	}
	*off = i;
	return 0;
}

static int mask_cells(struct row_ctx *r, const uint8_t *base)
{
	const struct mask_engine *me = r->me;
	struct mask_tls *w = r->w;
	unsigned dets = me->mp.detectors;
	int scan = me->db_num || me->db_lit;
	size_t lo = SIZE_MAX, hi = 0;
	int ncand = 0, rc;

	w->vals.len = 0;
	r->changed = 0;
	for (int i = 0; i < r->ncols; i++) {
		const struct mask_colplan *cp = &r->cols[i];
		struct mask_cell *c = &w->cells[i];
		const struct mtype *t, *et;
		int kf, kl, st, kind;

		w->outs[i].kind = CELL_KEEP;
		w->cand[i] = 0;
		if (c->len < 0)
			continue;
		t = mask_type(cp->type_oid);
		st = col_style(me, cp, &kf, &kl);
		if (st >= 0) {
			rc = whole(r, i, st, kf, kl, t);
			if (rc)
				return rc;
			if (w->outs[i].kind != CELL_KEEP)
				count_col(r->counts, i);
			continue;
		}
		if (!dets || !t)
			continue;
		et = t->kind == MT_ARRAY ? mask_type(t->elem) : t;
		kind = et ? et->kind : -1;
		if (mask_kind_textlike(kind)) {
			if (!scan)
				continue;
			size_t a = (size_t)(c->p - base);

			w->cand[i] = 1;
			ncand++;
			if (a < lo)
				lo = a;
			if (a + (size_t)c->len > hi)
				hi = a + (size_t)c->len;
			continue;
		}
		/* whole values that are identifiers by their type and the column's name */
		{
			int d = -1;

			if ((dets & 1u << DET_DOB) && (cp->context & 1u << DET_DOB) &&
			    (kind == MT_DATE || kind == MT_TIMESTAMP || kind == MT_TIMESTAMPTZ))
				d = DET_DOB;
			else if ((dets & 1u << DET_IPV4) && (kind == MT_INET || kind == MT_CIDR))
				d = DET_IPV4;
			else if ((dets & 1u << DET_US_SSN) && (cp->context & 1u << DET_US_SSN) &&
				 (t->kind == MT_INT4 || t->kind == MT_INT8 ||
				  t->kind == MT_NUMERIC) &&
				 int_is_ssn(t, fmt_of(r, i), c->p, (size_t)c->len))
				d = DET_US_SSN;
			if (d < 0)
				continue;
			rc = whole(r, i, me->mp.detector_style, 0, 0, t);
			if (rc)
				return rc;
			if (w->outs[i].kind != CELL_KEEP)
				r->counts->det[d]++;
		}
	}
	if (!ncand)
		return 0;
	/* one scan of the span for the literal patterns; the numeric ones cell by cell, where
	 * digits could hold an identifier (non-text cells between stay out) */
	w->ntrig = 0;
	if (mask_detect_scan_lit(me, w, base + lo, hi - lo))
		return -1;
	if (me->db_num) {
		/* one pass for digits over the span; a digit in a candidate cell sends that cell
		 * to the numeric test, a digit elsewhere skips to its cell's end */
		const uint8_t *sp = base + lo;
		size_t n = hi - lo, d = mask_next_digit(sp, 0, n);
		int i = 0;

		while (d < n) {
			const struct mask_cell *c;
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
			if (d < cs) { /* a length field's byte: the next digit from the cell on */
				d = mask_next_digit(sp, cs, n);
				continue;
			}
			if (w->cand[i] && mask_detect_scan_num(me, w, c->p, (size_t)c->len,
							       r->cols[i].context, cs, d - cs))
				return -1;
			d = mask_next_digit(sp, ce, n);
			i++;
		}
	}
	if (!w->ntrig)
		return 0;
	mask_detect_sort(w, 0);
	for (int i = 0, k = 0; i < r->ncols; i++) {
		struct mask_cell *c = &w->cells[i];
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
	/* a row has at most 32767 columns (its count is an int16) */
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

/* ---- DataRow ---- */

static int datarow(const struct mask_engine *me, const struct mask_colplan *cols, int ncols,
		   const uint8_t *body, size_t len, struct buf *out, struct mask_counts *counts)
{
	struct mask_counts dummy = {0};
	struct row_ctx r;
	struct mask_tls *w;
	size_t off = 2, total;
	uint8_t *o;
	int rc;

	if (len < 2 || len > INT32_MAX - 4 || (int16_t)(body[0] << 8 | body[1]) != ncols ||
	    row_begin(&r, me, cols, ncols, counts, &dummy, -1))
		return -1;
	w = r.w;
	if (read_cells(w, ncols, body, len, &off) || off != len)
		return -1;
	rc = mask_cells(&r, body);
	if (rc)
		return rc;
	if (!r.changed) {
		o = buf_reserve(out, 5 + len);
		if (!o)
			return -1;
		o[0] = 'D';
		mask_set_be32(o + 1, (uint32_t)(len + 4));
		memcpy(o + 5, body, len);
		buf_commit(out, 5 + len);
		return 0;
	}
	total = 2;
	for (int i = 0; i < ncols; i++) {
		const struct mask_out *x = &w->outs[i];

		total += 4;
		if (x->kind == CELL_KEEP && w->cells[i].len > 0)
			total += (size_t)w->cells[i].len;
		else if (x->kind == CELL_NEW)
			total += (size_t)x->len;
		if (total > INT32_MAX - 4) {
			snprintf(r.counts->why, sizeof(r.counts->why),
				 "masked row longer than a message can be");
			return 1;
		}
	}
	o = buf_reserve(out, 5 + total);
	if (!o)
		return -1;
	o[0] = 'D';
	mask_set_be32(o + 1, (uint32_t)(total + 4));
	o[5] = body[0];
	o[6] = body[1];
	off = 7;
	for (int i = 0; i < ncols; i++) {
		const struct mask_out *x = &w->outs[i];
		const struct mask_cell *c = &w->cells[i];

		if (x->kind == CELL_NULL || (x->kind == CELL_KEEP && c->len < 0)) {
			mask_set_be32(o + off, UINT32_MAX);
			off += 4;
		} else if (x->kind == CELL_KEEP) {
			mask_set_be32(o + off, (uint32_t)c->len);
			memcpy(o + off + 4, c->p, (size_t)c->len);
			off += 4 + (size_t)c->len;
		} else {
			mask_set_be32(o + off, (uint32_t)x->len);
			memcpy(o + off + 4, w->vals.data + x->off, (size_t)x->len);
			off += 4 + (size_t)x->len;
		}
	}
	buf_commit(out, off);
	return 0;
}

/* ---- COPY text ---- */

static int octal(int c)
{
	return c >= '0' && c <= '7';
}

static int hexval(int c)
{
	if (mask_isdigit(c))
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* COPY text's backslash escapes, undone into dec; -1 for a trailing lone backslash. */
static int text_decode(const uint8_t *p, size_t n, struct buf *dec)
{
	for (size_t i = 0; i < n;) {
		size_t a = i;
		uint8_t b;

		while (i < n && p[i] != '\\')
			i++;
		if (put(dec, p + a, i - a))
			return -1;
		if (i >= n)
			break;
		if (++i >= n)
			return -1;
		b = p[i++];
		switch (b) {
		case 'b':
			b = '\b';
			break;
		case 'f':
			b = '\f';
			break;
		case 'n':
			b = '\n';
			break;
		case 'r':
			b = '\r';
			break;
		case 't':
			b = '\t';
			break;
		case 'v':
			b = '\v';
			break;
		case 'x':
			if (i < n && hexval(p[i]) >= 0) {
				b = (uint8_t)hexval(p[i++]);
				if (i < n && hexval(p[i]) >= 0)
					b = (uint8_t)(b << 4 | hexval(p[i++]));
			}
			break;
		default:
			if (octal(b)) {
				int v = b - '0';

				for (int k = 0; k < 2 && i < n && octal(p[i]); k++)
					v = v * 8 + (p[i++] - '0');
				b = (uint8_t)v;
			}
		}
		if (put(dec, &b, 1))
			return -1;
	}
	return 0;
}

/* As PostgreSQL's CopyAttributeOutText: controls by name, backslash and delimiter escaped. */
static int text_encode(const uint8_t *p, size_t n, const struct mask_copy *cp, struct buf *out)
{
	size_t start = out->len;

	for (size_t i = 0; i < n; i++) {
		uint8_t c = p[i], e[2] = {'\\', 0};

		switch (c) {
		case '\b':
			e[1] = 'b';
			break;
		case '\f':
			e[1] = 'f';
			break;
		case '\n':
			e[1] = 'n';
			break;
		case '\r':
			e[1] = 'r';
			break;
		case '\t':
			e[1] = 't';
			break;
		case '\v':
			e[1] = 'v';
			break;
		default:
			if (c == '\\' || c == (uint8_t)cp->delim)
				e[1] = c;
		}
		if (e[1] ? put(out, e, 2) : put(out, &c, 1))
			return -1;
	}
	/* a value spelled like the null marker would read back as NULL: escape its first byte */
	if (cp->null_str[0] && out->len - start == strlen(cp->null_str) &&
	    !memcmp(buf_head(out) + start, cp->null_str, out->len - start)) {
		uint8_t *o = buf_reserve(out, 1);

		if (!o)
			return -1;
		o = buf_head(out) + start;
		memmove(o + 1, o, out->len - start);
		o[0] = '\\';
		buf_commit(out, 1);
	}
	return 0;
}

/* ---- COPY csv ---- */

static int csv_encode(const uint8_t *p, size_t n, const struct mask_copy *cp, struct buf *out)
{
	int quote = strlen(cp->null_str) == n && !memcmp(p, cp->null_str, n);

	for (size_t i = 0; i < n && !quote; i++)
		quote = p[i] == (uint8_t)cp->delim || p[i] == (uint8_t)cp->quote || p[i] == '\n' ||
			p[i] == '\r';
	if (!quote)
		return put(out, p, n);
	if (put(out, &cp->quote, 1))
		return -1;
	for (size_t i = 0, a = 0; i <= n; i++) {
		if (i < n && p[i] != (uint8_t)cp->quote && p[i] != (uint8_t)cp->escape)
			continue;
		if (put(out, p + a, i - a) || (i < n && put(out, &cp->escape, 1)))
			return -1;
		a = i;
	}
	return put(out, &cp->quote, 1);
}

/*
 * One row of text or CSV at data[*i..len): fields decoded into w->dec (cells point there),
 * raw slices remembered; *i moves past the line end. -1 when the row is incomplete or has
 * the wrong number of fields.
 */
static int read_row(const struct mask_copy *cp, int csv, struct mask_tls *w, const uint8_t *d,
		    size_t len, size_t *i, int ncols, size_t *row_end)
{
	size_t p = *i, nnull = strlen(cp->null_str);
	int f = 0;

	w->dec.len = 0;
	if (!ncols) { /* SELECT with no columns: PostgreSQL writes an empty line per row */
		if (p < len && d[p] == '\r')
			p++;
		if (p >= len || d[p] != '\n')
			return -1;
		*row_end = p - (p > *i);
		*i = p + 1;
		return 0;
	}
	for (;;) {
		size_t a = p, doff = w->dec.len;
		int quoted = 0, in_q = 0;

		if (csv) {
			for (;; p++) {
				uint8_t c;

				if (p >= len)
					return -1;
				c = d[p];
				if (in_q) {
					if (c == (uint8_t)cp->escape && cp->escape != cp->quote &&
					    p + 1 < len &&
					    (d[p + 1] == (uint8_t)cp->quote ||
					     d[p + 1] == (uint8_t)cp->escape)) {
						if (put(&w->dec, d + ++p, 1))
							return -1;
					} else if (c == (uint8_t)cp->quote) {
						if (cp->escape == cp->quote && p + 1 < len &&
						    d[p + 1] == (uint8_t)cp->quote) {
							if (put(&w->dec, d + ++p, 1))
								return -1;
						} else {
							in_q = 0;
						}
					} else if (put(&w->dec, &c, 1)) {
						return -1;
					}
					continue;
				}
				if (c == (uint8_t)cp->delim || c == '\n')
					break;
				if (c == '\r' && p + 1 < len && d[p + 1] == '\n')
					break;
				if (c == (uint8_t)cp->quote) {
					in_q = quoted = 1;
					continue;
				}
				if (put(&w->dec, &c, 1))
					return -1;
			}
		} else {
			while (p < len && d[p] != (uint8_t)cp->delim && d[p] != '\n') {
				if (d[p] == '\r' && p + 1 < len && d[p + 1] == '\n')
					break;
				p += d[p] == '\\' ? 2 : 1;
			}
			if (p >= len)
				return -1;
		}
		if (f >= ncols)
			return -1;
		w->cells[f].raw_off = (uint32_t)(a - *i);
		w->cells[f].raw_len = (uint32_t)(p - a);
		if (!quoted && p - a == nnull && !memcmp(d + a, cp->null_str, nnull)) {
			w->cells[f].len = -1;
			w->dec.len = doff;
		} else {
			if (!csv && text_decode(d + a, p - a, &w->dec))
				return -1;
			if (w->dec.len - doff > INT32_MAX)
				return -1;
			w->cells[f].len = (int32_t)(w->dec.len - doff);
		}
		/* where the value starts in dec, until dec stops moving */
		w->cells[f].p = (const uint8_t *)(uintptr_t)doff;
		f++;
		/* a separator byte between fields keeps detector matches from running across */
		if (put(&w->dec, "\0", 1))
			return -1;
		if (d[p] == (uint8_t)cp->delim) {
			p++;
			continue;
		}
		*row_end = p;
		p += d[p] == '\r' ? 2 : 1;
		break;
	}
	if (f != ncols)
		return -1;
	for (int k = 0; k < f; k++)
		w->cells[k].p = w->dec.data + (uintptr_t)w->cells[k].p;
	*i = p;
	return 0;
}

static int copy_text(struct row_ctx *r, struct mask_copy *cp, const uint8_t *d, size_t len,
		     struct buf *out)
{
	struct mask_tls *w = r->w;
	int csv = cp->format == 1;
	size_t i = 0;

	while (i < len) {
		size_t a = i, row_end;
		int rc;

		if (cp->header && !cp->header_done) {
			const uint8_t *nl = memchr(d + i, '\n', len - i);

			if (!nl)
				return -1;
			i = (size_t)(nl - d) + 1;
			if (put(out, d + a, i - a))
				return -1;
			cp->header_done = 1;
			continue;
		}
		if (read_row(cp, csv, w, d, len, &i, r->ncols, &row_end))
			return -1;
		rc = mask_cells(r, w->dec.data);
		if (rc)
			return rc;
		if (!r->changed) {
			if (put(out, d + a, i - a))
				return -1;
			continue;
		}
		for (int k = 0; k < r->ncols; k++) {
			const struct mask_out *x = &w->outs[k];
			const struct mask_cell *c = &w->cells[k];

			if (k && put(out, &cp->delim, 1))
				return -1;
			if (x->kind == CELL_KEEP)
				rc = put(out, d + a + c->raw_off, c->raw_len);
			else if (x->kind == CELL_NULL)
				rc = put(out, cp->null_str, strlen(cp->null_str));
			else if (csv)
				rc = csv_encode(w->vals.data + x->off, (size_t)x->len, cp, out);
			else
				rc = text_encode(w->vals.data + x->off, (size_t)x->len, cp, out);
			if (rc)
				return -1;
		}
		if (put(out, d + row_end, i - row_end))
			return -1;
	}
	return 0;
}

/* ---- COPY binary ---- */

static const uint8_t copy_sig[11] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', 0xff, '\r', '\n', 0};

static int copy_binary(struct row_ctx *r, struct mask_copy *cp, const uint8_t *d, size_t len,
		       struct buf *out)
{
	struct mask_tls *w = r->w;
	size_t i = 0;

	if (!cp->header_done) {
		uint32_t flags, ext;

		if (len < 19 || memcmp(d, copy_sig, 11))
			return -1;
		flags = mask_be32(d + 11);
		ext = mask_be32(d + 15);
		/* bit 16: an OID per row (before PostgreSQL 12); other high bits: unknown */
		if ((flags & 0xffff0000u) || ext > len - 19)
			return -1;
		i = 19 + ext;
		if (put(out, d, i))
			return -1;
		cp->header_done = 1;
	}
	while (i < len) {
		size_t a = i;
		int16_t cnt;
		int rc;

		if (len - i < 2)
			return -1;
		cnt = (int16_t)(d[i] << 8 | d[i + 1]);
		i += 2;
		if (cnt == -1) {
			/* the trailer ends the data */
			if (i != len)
				return -1;
			return put(out, d + a, 2);
		}
		if (cnt != r->ncols || read_cells(w, r->ncols, d, len, &i))
			return -1;
		rc = mask_cells(r, d);
		if (rc)
			return rc;
		if (!r->changed) {
			if (put(out, d + a, i - a))
				return -1;
			continue;
		}
		if (put(out, d + a, 2))
			return -1;
		for (int k = 0; k < r->ncols; k++) {
			const struct mask_out *x = &w->outs[k];
			const struct mask_cell *c = &w->cells[k];

			if (x->kind == CELL_NULL || (x->kind == CELL_KEEP && c->len < 0))
				rc = put_be32(out, UINT32_MAX);
			else if (x->kind == CELL_KEEP)
				rc = put(out, c->p - 4, 4 + (size_t)c->len);
			else
				rc = put_be32(out, (uint32_t)x->len) ||
				     put(out, w->vals.data + x->off, (size_t)x->len);
			if (rc)
				return -1;
		}
	}
	return 0;
}

static int copydata(const struct mask_engine *me, const struct mask_colplan *cols, int ncols,
		    struct mask_copy *cp, const uint8_t *data, size_t len, struct buf *out,
		    struct mask_counts *counts)
{
	struct mask_counts dummy = {0};
	struct mask_copy opt;
	struct row_ctx r;
	size_t start = out->len, total;
	uint8_t hdr[5] = {'d', 0, 0, 0, 0};
	int rc;

	if (!cp || cp->format < 0 || cp->format > 2 || len > INT32_MAX - 4 ||
	    row_begin(&r, me, cols, ncols, counts, &dummy, cp->format == 2 ? 1 : 0))
		return -1;
	opt = *cp;
	if (!opt.delim)
		opt.delim = opt.format == 1 ? ',' : '\t';
	if (!opt.quote)
		opt.quote = '"';
	if (!opt.escape)
		opt.escape = opt.quote;
	opt.null_str[sizeof(opt.null_str) - 1] = '\0';
	if (opt.format != 2 &&
	    (opt.delim == '\n' || opt.delim == '\r' || (opt.format == 0 && opt.delim == '\\')))
		return -1;
	if (put(out, hdr, 5))
		return -1;
	rc = opt.format == 2 ? copy_binary(&r, &opt, data, len, out)
			     : copy_text(&r, &opt, data, len, out);
	cp->header_done = opt.header_done;
	total = out->len - start - 1;
	if (!rc && total > INT32_MAX) {
		snprintf(r.counts->why, sizeof(r.counts->why),
			 "masked COPY data longer than a message can be");
		rc = 1;
	}
	if (rc) {
		out->len = start;
		return rc;
	}
	mask_set_be32(buf_head(out) + start + 1, (uint32_t)total);
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

int mask_datarow(const struct mask_engine *me, const struct mask_colplan *cols, int ncols,
		 const uint8_t *body, size_t len, struct buf *out, struct mask_counts *counts)
{
	int rc = datarow(me, cols, ncols, body, len, out, counts);
	struct mask_tls *w = me ? mask_tls_get(me) : NULL;

	if (w)
		mask_tls_trim(w);
	return rc;
}

int mask_copydata(const struct mask_engine *me, const struct mask_colplan *cols, int ncols,
		  struct mask_copy *cp, const uint8_t *data, size_t len, struct buf *out,
		  struct mask_counts *counts)
{
	int rc = copydata(me, cols, ncols, cp, data, len, out, counts);
	struct mask_tls *w = me ? mask_tls_get(me) : NULL;

	if (w)
		mask_tls_trim(w);
	return rc;
}
