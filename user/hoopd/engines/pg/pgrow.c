/*
 * PostgreSQL's result rows as row codecs (see pgrow.h): DataRow, and CopyData of COPY TO
 * STDOUT in text, CSV and binary formats, split into cells and written again. What to do with
 * each cell is masking's (mask_rows); this file only knows the formats.
 */
#include "pgrow.h"

#include <stdio.h>
#include <string.h>

#include "hex.h"

static int put(struct buf *b, const void *p, size_t n)
{
	return n && buf_append(b, p, n) ? -1 : 0;
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void set_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* A message's header (type, int32 length to be fixed up by msg_end). */
static int msg_begin(uint8_t type, struct buf *out)
{
	uint8_t hdr[5] = {type, 0, 0, 0, 0};

	return put(out, hdr, 5);
}

/* The length of the message written from out[start..) into its header; 1 when it is longer
 * than a message can be. */
static int msg_end(size_t start, struct buf *out, const char *what, char *why, size_t whyn)
{
	size_t total = out->len - start - 1;

	if (total > INT32_MAX) {
		snprintf(why, whyn, "masked %s longer than a message can be", what);
		return 1;
	}
	set_be32(buf_head(out) + start + 1, (uint32_t)total);
	return 0;
}

/* n fields as a DataRow and a binary COPY tuple carry them (int32 length, -1 for NULL, then the
 * bytes) from d[*off..len) into cells. 0, or -1 when one overruns or is malformed. */
static int read_cells(struct row_cell *cells, int n, const uint8_t *d, size_t len, size_t *off)
{
	size_t i = *off;

	for (int k = 0; k < n; k++) {
		int32_t l;

		if (len - i < 4)
			return -1;
		l = (int32_t)be32(d + i);
		i += 4;
		if (l < -1 || (l > 0 && (size_t)l > len - i))
			return -1;
		cells[k].p = d + i;
		cells[k].len = l;
		if (l > 0)
			i += (size_t)l;
	}
	*off = i;
	return 0;
}

/* The cells as a DataRow and a binary COPY tuple carry them, after their count. */
static int put_cells(const struct row *r, struct buf *out)
{
	size_t total = 0;
	uint8_t *o;

	for (int i = 0; i < r->ncols; i++) {
		const struct row_out *x = &r->outs[i];

		total += 4;
		if (x->kind == ROW_KEEP && r->cells[i].len > 0)
			total += (size_t)r->cells[i].len;
		else if (x->kind == ROW_NEW)
			total += (size_t)x->len;
		if (total > INT32_MAX) {
			snprintf(r->why, r->whyn, "masked row longer than a message can be");
			return 1;
		}
	}
	o = buf_reserve(out, total);
	if (!o)
		return -1;
	for (int i = 0; i < r->ncols; i++) {
		const struct row_out *x = &r->outs[i];
		const struct row_cell *c = &r->cells[i];

		if (x->kind == ROW_NULL || (x->kind == ROW_KEEP && c->len < 0)) {
			set_be32(o, UINT32_MAX);
			o += 4;
		} else if (x->kind == ROW_KEEP) {
			set_be32(o, (uint32_t)c->len);
			memcpy(o + 4, c->p, (size_t)c->len);
			o += 4 + (size_t)c->len;
		} else {
			set_be32(o, (uint32_t)x->len);
			memcpy(o + 4, r->vals + x->off, (size_t)x->len);
			o += 4 + (size_t)x->len;
		}
	}
	buf_commit(out, total);
	return 0;
}

/* ---- DataRow ---- */

static int dr_begin(struct row_codec *c, const uint8_t *msg, size_t len, size_t *off,
		    struct buf *out)
{
	uint8_t *o;

	*off = 0; /* the row is not read yet */
	if (len < 2 || len > INT32_MAX - 4)
		return -1;
	/* room for the row as it came: an untouched row (most) is then one copy */
	o = buf_reserve(out, 5 + len);
	if (!o)
		return -1;
	o[0] = 'D';
	memcpy(o + 5, msg, 2);
	buf_commit(out, 7);
	return 0;
}

static int dr_split(struct row_codec *c, const uint8_t *msg, size_t len, size_t *off, struct row *r)
{
	size_t i = 2;

	if (*off) /* one row per message */
		return 0;
	if ((int16_t)(msg[0] << 8 | msg[1]) != r->ncols ||
	    read_cells(r->cells, r->ncols, msg, len, &i) || i != len)
		return -1;
	r->base = msg;
	r->start = 2;
	r->end = len;
	*off = len;
	return 1;
}

static int dr_put_row(struct row_codec *c, const uint8_t *msg, const struct row *r, struct buf *out)
{
	return put_cells(r, out);
}

static int dr_end(struct row_codec *c, const uint8_t *msg, size_t len, size_t off, size_t start,
		  struct buf *out, char *why, size_t whyn)
{
	/* the length counts itself: the body may be at most INT32_MAX - 4 */
	if (out->len - start - 5 > INT32_MAX - 4) {
		snprintf(why, whyn, "masked row longer than a message can be");
		return 1;
	}
	return msg_end(start, out, "row", why, whyn);
}

static const struct row_codec_ops datarow_ops = {
    .name = "pg-datarow",
    .begin = dr_begin,
    .split = dr_split,
    .put_row = dr_put_row,
    .end = dr_end,
};

const struct row_codec pgrow_datarow = {.ops = &datarow_ops, .cell_format = -1};

/* ---- COPY text and CSV ---- */

static int octal(int c)
{
	return c >= '0' && c <= '7';
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
			if (i < n && hex_digit(p[i]) >= 0) {
				b = (uint8_t)hex_digit(p[i++]);
				if (i < n && hex_digit(p[i]) >= 0)
					b = (uint8_t)(b << 4 | hex_digit(p[i++]));
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
 * One row of text or CSV at data[*i..len): fields decoded into r->scratch (cells point
 * there), raw slices remembered; *i moves past the line end. -1 when the row is incomplete or
 * has the wrong number of fields.
 */
static int read_row(const struct mask_copy *cp, int csv, struct row *r, const uint8_t *d,
		    size_t len, size_t *i, size_t *row_end)
{
	size_t p = *i, nnull = strlen(cp->null_str);
	struct buf *dec = r->scratch;
	struct row_cell *cells = r->cells;
	int f = 0, ncols = r->ncols;

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
		size_t a = p, doff = dec->len;
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
						if (put(dec, d + ++p, 1))
							return -1;
					} else if (c == (uint8_t)cp->quote) {
						if (cp->escape == cp->quote && p + 1 < len &&
						    d[p + 1] == (uint8_t)cp->quote) {
							if (put(dec, d + ++p, 1))
								return -1;
						} else {
							in_q = 0;
						}
					} else if (put(dec, &c, 1)) {
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
				if (put(dec, &c, 1))
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
		cells[f].raw_off = (uint32_t)(a - *i);
		cells[f].raw_len = (uint32_t)(p - a);
		if (!quoted && p - a == nnull && !memcmp(d + a, cp->null_str, nnull)) {
			cells[f].len = -1;
			dec->len = doff;
		} else {
			if (!csv && text_decode(d + a, p - a, dec))
				return -1;
			if (dec->len - doff > INT32_MAX)
				return -1;
			cells[f].len = (int32_t)(dec->len - doff);
		}
		/* where the value starts in dec, until dec stops moving */
		cells[f].p = (const uint8_t *)(uintptr_t)doff;
		f++;
		/* a separator byte between fields keeps detector matches from running across */
		if (put(dec, "\0", 1))
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
		cells[k].p = dec->data + (uintptr_t)cells[k].p;
	*i = p;
	return 0;
}

static int copy_put_text_row(const struct mask_copy *cp, const uint8_t *d, const struct row *r,
			     struct buf *out)
{
	int csv = cp->format == 1, rc;

	for (int k = 0; k < r->ncols; k++) {
		const struct row_out *x = &r->outs[k];
		const struct row_cell *c = &r->cells[k];

		if (k && put(out, &cp->delim, 1))
			return -1;
		if (x->kind == ROW_KEEP)
			rc = put(out, d + r->start + c->raw_off, c->raw_len);
		else if (x->kind == ROW_NULL)
			rc = put(out, cp->null_str, strlen(cp->null_str));
		else if (csv)
			rc = csv_encode(r->vals + x->off, (size_t)x->len, cp, out);
		else
			rc = text_encode(r->vals + x->off, (size_t)x->len, cp, out);
		if (rc)
			return -1;
	}
	/* the line end as it came */
	return put(out, d + r->mark, r->end - r->mark);
}

/* ---- COPY binary ---- */

static const uint8_t copy_sig[11] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', 0xff, '\r', '\n', 0};

/* The signature and header extension, in the first message. */
static int copy_binary_header(struct mask_copy *cp, const uint8_t *d, size_t len, size_t *off,
			      struct buf *out)
{
	uint32_t flags, ext;

	if (len < 19 || memcmp(d, copy_sig, 11))
		return -1;
	flags = be32(d + 11);
	ext = be32(d + 15);
	/* bit 16: an OID per row (before PostgreSQL 12); other high bits: unknown */
	if ((flags & 0xffff0000u) || ext > len - 19)
		return -1;
	*off = 19 + ext;
	if (put(out, d, *off))
		return -1;
	cp->header_done = 1;
	return 0;
}

static int copy_binary_split(struct mask_copy *cp, const uint8_t *d, size_t len, size_t *off,
			     struct row *r)
{
	size_t i = *off;
	int16_t cnt;

	if (i >= len)
		return 0;
	if (len - i < 2)
		return -1;
	cnt = (int16_t)(d[i] << 8 | d[i + 1]);
	if (cnt == -1) /* the trailer ends the data (end copies it) */
		return i + 2 == len ? 0 : -1;
	i += 2;
	if (cnt != r->ncols || read_cells(r->cells, r->ncols, d, len, &i))
		return -1;
	r->base = d;
	r->start = *off;
	r->end = i;
	*off = i;
	return 1;
}

/* ---- the COPY codec ---- */

static int copy_begin(struct row_codec *c, const uint8_t *msg, size_t len, size_t *off,
		      struct buf *out)
{
	struct mask_copy *cp = c->state;

	*off = 0;
	if (!cp || cp->format < 0 || cp->format > 2 || len > INT32_MAX - 4)
		return -1;
	/* the defaults of what the statement did not say */
	if (!cp->delim)
		cp->delim = cp->format == 1 ? ',' : '\t';
	if (!cp->quote)
		cp->quote = '"';
	if (!cp->escape)
		cp->escape = cp->quote;
	cp->null_str[sizeof(cp->null_str) - 1] = '\0';
	if (cp->format != 2 &&
	    (cp->delim == '\n' || cp->delim == '\r' || (cp->format == 0 && cp->delim == '\\')))
		return -1;
	if (msg_begin('d', out))
		return -1;
	if (cp->format == 2)
		return cp->header_done ? 0 : copy_binary_header(cp, msg, len, off, out);
	if (cp->header && !cp->header_done && len) {
		/* CSV HEADER: the first line is column names, passed as it is */
		const uint8_t *nl = memchr(msg, '\n', len);

		if (!nl)
			return -1;
		*off = (size_t)(nl - msg) + 1;
		if (put(out, msg, *off))
			return -1;
		cp->header_done = 1;
	}
	return 0;
}

static int copy_split(struct row_codec *c, const uint8_t *msg, size_t len, size_t *off,
		      struct row *r)
{
	struct mask_copy *cp = c->state;
	size_t a = *off, row_end;

	if (cp->format == 2)
		return copy_binary_split(cp, msg, len, off, r);
	if (a >= len)
		return 0;
	if (read_row(cp, cp->format == 1, r, msg, len, off, &row_end))
		return -1;
	r->base = r->scratch->data;
	r->start = a;
	r->end = *off;
	r->mark = row_end;
	return 1;
}

static int copy_put_row(struct row_codec *c, const uint8_t *msg, const struct row *r,
			struct buf *out)
{
	struct mask_copy *cp = c->state;

	if (cp->format != 2)
		return copy_put_text_row(cp, msg, r, out);
	return put(out, msg + r->start, 2) ? -1 : put_cells(r, out);
}

static int copy_end(struct row_codec *c, const uint8_t *msg, size_t len, size_t off, size_t start,
		    struct buf *out, char *why, size_t whyn)
{
	/* binary's trailer, checked by copy_split */
	if (off < len && put(out, msg + off, len - off))
		return -1;
	return msg_end(start, out, "COPY data", why, whyn);
}

static const struct row_codec_ops copy_ops = {
    .name = "pg-copy",
    .begin = copy_begin,
    .split = copy_split,
    .put_row = copy_put_row,
    .end = copy_end,
};

void pgrow_copy_codec(struct row_codec *c, struct mask_copy *cp)
{
	c->ops = &copy_ops;
	c->cell_format = cp && cp->format == 2 ? 1 : 0;
	c->state = cp;
}

int mask_datarow(const struct mask_engine *me, const struct mask_colplan *cols, int ncols,
		 const uint8_t *body, size_t len, struct buf *out, struct mask_counts *counts)
{
	struct row_codec c = pgrow_datarow;

	return mask_rows(me, &c, cols, ncols, body, len, out, counts);
}

int mask_copydata(const struct mask_engine *me, const struct mask_colplan *cols, int ncols,
		  struct mask_copy *cp, const uint8_t *data, size_t len, struct buf *out,
		  struct mask_counts *counts)
{
	struct row_codec c;

	pgrow_copy_codec(&c, cp);
	return mask_rows(me, &c, cols, ncols, data, len, out, counts);
}
