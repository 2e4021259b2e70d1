/*
 * libFuzzer target for MySQL's row codecs and column definitions (myrow.c). The first bytes
 * choose a mode (a text row, untyped or with its columns' types; a binary row; a column
 * definition) and, per column, a type, flags, precision and a masking rule; the rest is the
 * payload. Besides crashes and sanitizer reports, these are bugs:
 *   - a split row that, written back with every cell kept, is not the input byte for byte;
 *   - a binary row whose cells, written back as new values from their own texts, are refused,
 *     or split again into other texts or NULLs (decoding and encoding disagree);
 *   - a row masked with every column's rule null that is not all NULLs; masked with redact,
 *     a cell that kept its value (unless the value is the redaction itself), a NULL that
 *     changed, or a binary row refused though masking can redact each of its types;
 *   - under the input's own plan: a return other than -1, 0, 1; -1 for a row that splits or
 *     not -1 for one that does not; output on -1 or 1; 1 without a reason; an output that
 *     does not split; a NULL that is not NULL any more, a null-style column that is not NULL,
 *     a column nothing may touch that changed;
 *   - a column definition that parses, written again, parses to something else.
 * Seeds: fuzz/corpus/myrow/.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "fuzz_require.h"
#include "mask.h"
#include "myrow.h"
#include "rowcodec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAXCOLS 8

static const uint8_t types[] = {
    MY_TYPE_TINY,	 MY_TYPE_SHORT,	    MY_TYPE_LONG,      MY_TYPE_FLOAT,
    MY_TYPE_DOUBLE,	 MY_TYPE_NULL,	    MY_TYPE_TIMESTAMP, MY_TYPE_LONGLONG,
    MY_TYPE_INT24,	 MY_TYPE_DATE,	    MY_TYPE_TIME,      MY_TYPE_DATETIME,
    MY_TYPE_YEAR,	 MY_TYPE_NEWDATE,   MY_TYPE_VARCHAR,   MY_TYPE_BIT,
    MY_TYPE_TIMESTAMP2,	 MY_TYPE_DATETIME2, MY_TYPE_TIME2,     MY_TYPE_JSON,
    MY_TYPE_NEWDECIMAL,	 MY_TYPE_ENUM,	    MY_TYPE_SET,       MY_TYPE_TINY_BLOB,
    MY_TYPE_MEDIUM_BLOB, MY_TYPE_LONG_BLOB, MY_TYPE_BLOB,      MY_TYPE_VAR_STRING,
    MY_TYPE_STRING,	 MY_TYPE_GEOMETRY,  MY_TYPE_DECIMAL,   20,
};
#define NTYPES (sizeof(types) / sizeof(types[0]))

/* rule i is style i */
enum { R_REDACT = 0, R_PARTIAL, R_HASH, R_NULL, R_FP };

static struct mask_engine *engines[2][2];

static struct mask_engine *engine(int dets, int onnull)
{
	struct mask_engine **e = &engines[dets][onnull];

	if (!*e) {
		static struct mask_policy mp;
		static const uint8_t key[32] = {9, 9, 9};
		char err[256];

		memset(&mp, 0, sizeof(mp));
		mp.enabled = 1;
		mp.detectors = dets ? (1u << DET_COUNT) - 1 : 0;
		mp.detector_style = MASK_PARTIAL;
		mp.on_unmaskable = onnull ? UNMASKABLE_NULL : UNMASKABLE_WITHHOLD;
		mp.unknown_style = MASK_REDACT;
		mp.nrules = MASK_STYLE_COUNT;
		for (int i = 0; i < MASK_STYLE_COUNT; i++) {
			mp.rules[i].style = (enum mask_style)i;
			mp.rules[i].keep_first = 1;
			mp.rules[i].keep_last = 2;
		}
		REQUIRE(!mask_engine_new(&mp, key, e, err, sizeof(err)));
	}
	return *e;
}

/* A row's cells as split, copied (the codec's scratch is reused). */
struct cells {
	int n;
	int null[MAXCOLS];
	size_t off[MAXCOLS], len[MAXCOLS];
	struct buf text;
};

static const uint8_t *cell(const struct cells *c, int k)
{
	return c->text.data ? c->text.data + c->off[k] : (const uint8_t *)"";
}

/* Split p[0..n) with codec c into *out; 1, or -1 when it is not a row. */
static int split(struct row_codec *c, const uint8_t *p, size_t n, int ncols, struct cells *out)
{
	struct row_cell rc[MAXCOLS];
	struct buf scratch = {0}, hdr = {0};
	struct row r = {.ncols = ncols, .cells = rc, .scratch = &scratch};
	size_t off;
	int ret;

	REQUIRE(!c->ops->begin(c, p, n, &off, &hdr));
	REQUIRE(hdr.len == 0);
	ret = c->ops->split(c, p, n, &off, &r);
	REQUIRE(ret == 1 || ret == -1);
	out->n = ncols;
	out->text.len = 0;
	if (ret == 1) {
		REQUIRE(r.start == 0 && r.end == n && off == n);
		for (int k = 0; k < ncols; k++) {
			out->null[k] = rc[k].len < 0;
			out->off[k] = out->text.len;
			out->len[k] = out->null[k] ? 0 : (size_t)rc[k].len;
			if (out->len[k])
				REQUIRE(!buf_append(&out->text, rc[k].p, out->len[k]));
		}
		REQUIRE(c->ops->split(c, p, n, &off, &r) == 0);
	}
	buf_free(&scratch);
	buf_free(&hdr);
	return ret;
}

/* put_row over p's row with outs and vals; its return, out filled. */
static int put_row(struct row_codec *c, const uint8_t *p, size_t n, int ncols,
		   const struct row_out *outs, const uint8_t *vals, struct buf *out)
{
	struct row_cell rc[MAXCOLS];
	struct buf scratch = {0}, hdr = {0};
	char why[256] = "";
	struct row r = {
	    .ncols = ncols, .cells = rc, .scratch = &scratch, .why = why, .whyn = sizeof(why)};
	size_t off;
	int ret;

	REQUIRE(!c->ops->begin(c, p, n, &off, &hdr));
	REQUIRE(c->ops->split(c, p, n, &off, &r) == 1);
	r.outs = outs;
	r.vals = vals;
	ret = c->ops->put_row(c, p, &r, out);
	REQUIRE(ret == 0 || ret == 1 || ret == -1);
	REQUIRE(ret != 1 || why[0]);
	buf_free(&scratch);
	buf_free(&hdr);
	return ret;
}

static int same_cell(const struct cells *a, int i, const struct cells *b, int j)
{
	return a->null[i] == b->null[j] &&
	       (a->null[i] ||
		(a->len[i] == b->len[j] && !memcmp(cell(a, i), cell(b, j), a->len[i])));
}

/* What redact writes, as a codec reads it back: "***", "\"***\"", zeros, the 1900 epoch, a
 * midnight time of day (fractions of zeros after the point). */
static int placeholder(const uint8_t *v, size_t n)
{
	size_t i = 0;

	if ((n == 3 && !memcmp(v, "***", 3)) || (n == 5 && !memcmp(v, "\"***\"", 5)))
		return 1;
	while (i < n && v[i] == '0')
		i++;
	if (n && i == n)
		return 1;
	if (n >= 10 && !memcmp(v, "1900-01-01", 10))
		i = 10;
	else
		i = 0;
	if (i == n)
		return 1;
	if (i == 10) {
		if (v[i] != ' ')
			return 0;
		i++;
	}
	if (n - i < 8 || memcmp(v + i, "00:00:00", 8))
		return 0;
	i += 8;
	if (i == n)
		return 1;
	if (v[i++] != '.')
		return 0;
	while (i < n && v[i] == '0')
		i++;
	return i == n;
}

static int detectable(uint32_t oid, unsigned ctx)
{
	if (mask_type_detectable(oid))
		return 1;
	if ((ctx & 1u << DET_DOB) && (oid == 1082 || oid == 1114))
		return 1;
	return (ctx & 1u << DET_US_SSN) && (oid == 21 || oid == 23 || oid == 20 || oid == 1700);
}

/* ---- rows ---- */

static void check_row(int binary, int typed, int dets, int onnull, const struct mycol *cols,
		      const int *rules, const unsigned *ctx, int n, const uint8_t *p, size_t len)
{
	struct myrow_cols mc = {n, cols};
	struct row_codec c;
	struct cells in = {0}, got = {0};
	struct row_out outs[MAXCOLS];
	struct mask_colplan cp[MAXCOLS];
	struct mask_counts counts;
	struct buf out = {0};
	int framed, rc, unredactable = 0, decimal = 0;

	if (binary)
		myrow_bin_codec(&c, &mc);
	else if (typed)
		myrow_text_codec(&c, &mc);
	else
		c = myrow_text;
	REQUIRE(c.cell_format == 0);
	framed = split(&c, p, len, n, &in) == 1;

	memset(cp, 0, sizeof(cp));
	for (int k = 0; k < n; k++) {
		cp[k].type_oid = mycol_pg_type(&cols[k]);
		cp[k].context = ctx[k];
		snprintf(cp[k].label, sizeof(cp[k].label), "t.c%d", k);
	}

	if (framed) {
		for (int k = 0; k < n; k++) {
			int dec =
			    cols[k].type == MY_TYPE_DECIMAL || cols[k].type == MY_TYPE_NEWDECIMAL;

			/* masking cannot redact these; a DECIMAL's string may be no decimal */
			if (!in.null[k] && (cp[k].type_oid == 0 || dec))
				unredactable = 1;
			if (!in.null[k] && dec)
				decimal = 1;
		}
		/* every cell kept: the input */
		for (int k = 0; k < n; k++)
			outs[k] = (struct row_out){.kind = ROW_KEEP};
		REQUIRE(put_row(&c, p, len, n, outs, NULL, &out) == 0);
		REQUIRE(out.len == len && !memcmp(out.data, p, len));

		/* every cell new, from its own text */
		for (int k = 0; k < n; k++)
			outs[k] = in.null[k] ? (struct row_out){.kind = ROW_NULL}
					     : (struct row_out){.kind = ROW_NEW,
								.off = (uint32_t)in.off[k],
								.len = (int32_t)in.len[k]};
		out.len = 0;
		rc = put_row(&c, p, len, n, outs, cell(&in, 0), &out);
		REQUIRE(rc == 0 || (rc == 1 && ((typed && !binary) || decimal)));
		if (rc == 0) {
			REQUIRE(split(&c, out.data, out.len, n, &got) == 1);
			for (int k = 0; k < n; k++)
				REQUIRE(same_cell(&in, k, &got, k));
		}
	}

	/* every column null: all NULLs */
	for (int k = 0; k < n; k++)
		cp[k].rule = R_NULL;
	out.len = 0;
	rc = mask_rows(engine(dets, onnull), &c, cp, n, p, len, &out, NULL);
	REQUIRE(rc == (framed ? 0 : -1));
	if (!rc) {
		REQUIRE(split(&c, out.data, out.len, n, &got) == 1);
		for (int k = 0; k < n; k++)
			REQUIRE(got.null[k]);
		REQUIRE(out.len == (binary ? 1 + ((size_t)n + 9) / 8 : (size_t)n));
	}

	/* every column redacted: no value left but the redaction itself */
	for (int k = 0; k < n; k++)
		cp[k].rule = R_REDACT;
	out.len = 0;
	memset(&counts, 0, sizeof(counts));
	rc = mask_rows(engine(dets, onnull), &c, cp, n, p, len, &out, &counts);
	REQUIRE(framed ? rc == 0 || rc == 1 : rc == -1);
	REQUIRE(rc == 0 || out.len == 0);
	if (binary && rc == 1)
		REQUIRE(unredactable);
	if (!rc) {
		REQUIRE(split(&c, out.data, out.len, n, &got) == 1);
		for (int k = 0; k < n; k++) {
			if (in.null[k]) {
				REQUIRE(got.null[k]);
				continue;
			}
			if (got.null[k]) /* unmaskable, sent as NULL */
				continue;
			if (same_cell(&in, k, &got, k) && in.len[k])
				REQUIRE(placeholder(cell(&in, k), in.len[k]));
		}
	}

	/* the input's own plan */
	for (int k = 0; k < n; k++)
		cp[k].rule = rules[k];
	out.len = 0;
	REQUIRE(!buf_append(&out, "x", 1));
	memset(&counts, 0, sizeof(counts));
	rc = mask_rows(engine(dets, onnull), &c, cp, n, p, len, &out, &counts);
	REQUIRE(rc == -1 || rc == 0 || rc == 1);
	REQUIRE(framed ? rc != -1 : rc == -1);
	if (rc) {
		REQUIRE(out.len == 1);
		REQUIRE(rc == -1 || counts.why[0]);
	} else {
		REQUIRE(split(&c, out.data + 1, out.len - 1, n, &got) == 1);
		for (int k = 0; k < n; k++) {
			if (in.null[k])
				REQUIRE(got.null[k]);
			if (rules[k] == R_NULL)
				REQUIRE(got.null[k]);
			if (rules[k] == MASK_RULE_NONE &&
			    !(dets && detectable(cp[k].type_oid, ctx[k])))
				REQUIRE(same_cell(&in, k, &got, k));
		}
	}
	buf_free(&out);
	buf_free(&in.text);
	buf_free(&got.text);
}

/* ---- column definitions ---- */

static void check_coldef(const uint8_t *p, size_t len)
{
	struct mycol *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b));
	struct buf out = {0};
	uint8_t fixed[13];

	REQUIRE(a && b);
	if (mycol_parse(p, len, a))
		goto cleanup;
	{
		const char *names[6] = {a->catalog,   a->schema, a->table,
					a->org_table, a->name,	 a->org_name};

		for (int i = 0; i < 6; i++)
			REQUIRE(!my_put_lenenc_str(&out, names[i], strlen(names[i])));
	}
	fixed[0] = 0x0c;
	fixed[1] = (uint8_t)a->charset;
	fixed[2] = (uint8_t)(a->charset >> 8);
	for (int i = 0; i < 4; i++)
		fixed[3 + i] = (uint8_t)(a->length >> (8 * i));
	fixed[7] = a->type;
	fixed[8] = (uint8_t)a->flags;
	fixed[9] = (uint8_t)(a->flags >> 8);
	fixed[10] = a->decimals;
	memcpy(fixed + 11, p + len - 2, 2); /* the filler as it came */
	REQUIRE(!buf_append(&out, fixed, 13));
	/* minimal length prefixes: the input again, or shorter when it used longer ones */
	REQUIRE(out.len <= len);
	REQUIRE(out.len < len || !memcmp(out.data, p, len));
	REQUIRE(!mycol_parse(out.data, out.len, b));
	REQUIRE(!strcmp(a->catalog, b->catalog) && !strcmp(a->schema, b->schema) &&
		!strcmp(a->table, b->table) && !strcmp(a->org_table, b->org_table) &&
		!strcmp(a->name, b->name) && !strcmp(a->org_name, b->org_name));
	REQUIRE(a->type == b->type && a->flags == b->flags && a->length == b->length &&
		a->charset == b->charset && a->decimals == b->decimals);
	/* the type map answers for any type */
	(void)mycol_pg_type(a);
cleanup:
	buf_free(&out);
	free(a);
	free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct mycol cols[MAXCOLS];
	int rules[MAXCOLS];
	unsigned ctx[MAXCOLS];
	int mode, n;
	size_t off;

	if (size < 2)
		return 0;
	mode = data[0] & 3; /* text, text with types, binary, a column definition */
	if (mode == 3) {
		check_coldef(data + 1, size - 1);
		return 0;
	}
	n = 1 + data[1] % MAXCOLS;
	off = 2;
	if (size < off + 3 * (size_t)n)
		return 0;
	for (int k = 0; k < n; k++, off += 3) {
		uint8_t t = data[off], f = data[off + 1], r = data[off + 2];
		static const uint8_t decs[8] = {0, 1, 2, 3, 4, 6, 31, 39};

		memset(&cols[k], 0, sizeof(cols[k]));
		cols[k].type = types[t % NTYPES];
		cols[k].flags = (uint16_t)((f & 1 ? MY_FLAG_UNSIGNED : 0) |
					   (f & 2 ? MY_FLAG_ZEROFILL | MY_FLAG_UNSIGNED : 0));
		cols[k].decimals = decs[f >> 2 & 7];
		cols[k].length = (uint32_t)(f >> 5) * 4;
		cols[k].charset = t & 0x80 ? 63 : 45;
		/* rule: none, unknown, or one of the five styles */
		rules[k] = r % 7 == 0 ? MASK_RULE_NONE : r % 7 == 1 ? MASK_RULE_UNKNOWN : r % 7 - 2;
		ctx[k] = r & 0x80 ? mask_context_from_name(r & 0x40 ? "ssn" : "dob") : 0;
	}
	check_row(mode == 2, mode == 1, data[0] >> 2 & 1, data[0] >> 3 & 1, cols, rules, ctx, n,
		  data + off, size - off);
	return 0;
}
