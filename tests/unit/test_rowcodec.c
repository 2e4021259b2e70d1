/*
 * The row codec interface (rowcodec.h) from the outside: a codec of MySQL-style text rows
 * (a 4-byte packet header, then per column a length-encoded string or 0xFB for NULL), written
 * here in a few dozen lines as a new engine would, masks the same cells to the same values as
 * PostgreSQL's DataRow codec; and whatever the codec or the masking refuses leaves nothing in
 * the output (what cannot be masked is not sent, not even in part).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "harness.h"
#include "mask.h"
#include "pgrow.h"
#include "rowcodec.h"

static const uint8_t KEY[32] = {7, 1, 8, 2, 8, 1, 8, 2, 8, 4, 5, 9, 0, 4, 5, 2,
				3, 5, 3, 6, 0, 2, 8, 7, 4, 7, 1, 3, 5, 2, 6, 6};

/* ---- a MySQL-style text row codec ---- */

struct lenenc_state {
	int done;	    /* the packet's one row was split */
	size_t max_payload; /* a packet longer than this cannot be sent (MySQL's is 16 MB - 1) */
};

static uint32_t le24(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16;
}

static int put_lenenc(struct buf *out, const uint8_t *p, size_t n)
{
	uint8_t h[3] = {0xfc, (uint8_t)n, (uint8_t)(n >> 8)};

	if (n >= 65536)
		return -1; /* enough for these tests */
	if (n < 251 ? buf_append(out, h + 1, 1) : buf_append(out, h, 3))
		return -1;
	return n && buf_append(out, p, n) ? -1 : 0;
}

static int le_begin(struct row_codec *c, const uint8_t *msg, size_t len, size_t *off,
		    struct buf *out)
{
	struct lenenc_state *st = c->state;

	st->done = 0;
	if (len < 4 || le24(msg) != len - 4)
		return -1;
	*off = 4;
	return buf_append(out, msg, 4) ? -1 : 0; /* length fixed up by le_end */
}

static int le_split(struct row_codec *c, const uint8_t *msg, size_t len, size_t *off, struct row *r)
{
	struct lenenc_state *st = c->state;
	size_t i = *off;

	if (st->done)
		return 0;
	for (int k = 0; k < r->ncols; k++) {
		size_t n;

		if (i >= len)
			return -1;
		if (msg[i] == 0xfb) {
			r->cells[k].p = msg + i;
			r->cells[k].len = -1;
			i++;
			continue;
		}
		if (msg[i] < 251) {
			n = msg[i++];
		} else if (msg[i] == 0xfc && len - i >= 3) {
			n = (size_t)msg[i + 1] | (size_t)msg[i + 2] << 8;
			i += 3;
		} else {
			return -1;
		}
		if (n > len - i)
			return -1;
		r->cells[k].p = msg + i;
		r->cells[k].len = (int32_t)n;
		i += n;
	}
	if (i != len)
		return -1;
	r->base = msg;
	r->start = *off;
	r->end = len;
	*off = len;
	st->done = 1;
	return 1;
}

static int le_put_row(struct row_codec *c, const uint8_t *msg, const struct row *r, struct buf *out)
{
	for (int k = 0; k < r->ncols; k++) {
		const struct row_out *x = &r->outs[k];
		const struct row_cell *cell = &r->cells[k];
		int rc;

		if (x->kind == ROW_NULL || (x->kind == ROW_KEEP && cell->len < 0))
			rc = buf_append(out, "\xfb", 1) ? -1 : 0;
		else if (x->kind == ROW_KEEP)
			rc = put_lenenc(out, cell->p, (size_t)cell->len);
		else
			rc = put_lenenc(out, r->vals + x->off, (size_t)x->len);
		if (rc)
			return -1;
	}
	return 0;
}

static int le_end(struct row_codec *c, const uint8_t *msg, size_t len, size_t off, size_t start,
		  struct buf *out, char *why, size_t whyn)
{
	struct lenenc_state *st = c->state;
	size_t n = out->len - start - 4;
	uint8_t *h = buf_head(out) + start;

	if (n > st->max_payload) {
		snprintf(why, whyn, "masked row longer than a packet can be");
		return 1;
	}
	h[0] = (uint8_t)n;
	h[1] = (uint8_t)(n >> 8);
	h[2] = (uint8_t)(n >> 16);
	return 0;
}

static const struct row_codec_ops lenenc_ops = {
    .name = "test-lenenc",
    .begin = le_begin,
    .split = le_split,
    .put_row = le_put_row,
    .end = le_end,
};

/* ---- messages ---- */

struct val {
	const char *s; /* NULL: SQL NULL */
};

/* A text row packet: header (payload length, sequence id 3), then the cells. */
static void lenenc_packet(struct buf *b, const struct val *v, int n)
{
	b->len = 0;
	buf_append(b, "\0\0\0\3", 4);
	for (int i = 0; i < n; i++) {
		if (!v[i].s)
			buf_append(b, "\xfb", 1);
		else
			put_lenenc(b, (const uint8_t *)v[i].s, strlen(v[i].s));
	}
	buf_head(b)[0] = (uint8_t)(b->len - 4);
	buf_head(b)[1] = (uint8_t)((b->len - 4) >> 8);
}

static void datarow_body(struct buf *b, const struct val *v, int n)
{
	uint8_t h[4];

	b->len = 0;
	h[0] = (uint8_t)(n >> 8);
	h[1] = (uint8_t)n;
	buf_append(b, h, 2);
	for (int i = 0; i < n; i++) {
		uint32_t l = v[i].s ? (uint32_t)strlen(v[i].s) : UINT32_MAX;

		h[0] = (uint8_t)(l >> 24);
		h[1] = (uint8_t)(l >> 16);
		h[2] = (uint8_t)(l >> 8);
		h[3] = (uint8_t)l;
		buf_append(b, h, 4);
		if (v[i].s)
			buf_append(b, v[i].s, strlen(v[i].s));
	}
}

/* The cells of a text row packet (as strings, NULL for NULL); -1 when it does not frame. */
static int lenenc_cells(const uint8_t *p, size_t n, int ncols, char **out)
{
	struct lenenc_state st = {0};
	struct row_codec c = {.ops = &lenenc_ops, .state = &st};
	struct row_cell cells[16];
	struct row r = {.ncols = ncols, .cells = cells};
	struct buf hdr = {0};
	size_t off;
	int rc;

	rc = le_begin(&c, p, n, &off, &hdr) || le_split(&c, p, n, &off, &r) != 1 ? -1 : 0;
	buf_free(&hdr);
	for (int i = 0; i < ncols && !rc; i++)
		out[i] = cells[i].len < 0 ? NULL
					  : strndup((const char *)cells[i].p, (size_t)cells[i].len);
	return rc;
}

/* The cells of a DataRow message ('D', length, body). */
static int datarow_cells(const uint8_t *p, size_t n, int ncols, char **out)
{
	size_t i = 7;

	if (n < 7 || p[0] != 'D')
		return -1;
	for (int k = 0; k < ncols; k++) {
		int32_t l;

		if (n - i < 4)
			return -1;
		l = (int32_t)((uint32_t)p[i] << 24 | (uint32_t)p[i + 1] << 16 |
			      (uint32_t)p[i + 2] << 8 | p[i + 3]);
		i += 4;
		if (l > 0 && (size_t)l > n - i)
			return -1;
		out[k] = l < 0 ? NULL : strndup((const char *)p + i, (size_t)l);
		i += l > 0 ? (size_t)l : 0;
	}
	return i == n ? 0 : -1;
}

/* ---- the tests ---- */

enum { NCOLS = 5 };

static struct mask_engine *engine(enum mask_unmaskable on_unmaskable)
{
	struct mask_policy *mp = calloc(1, sizeof(*mp));
	struct mask_engine *me = NULL;
	char err[256];

	mp->enabled = 1;
	mp->detectors = (1u << DET_COUNT) - 1;
	mp->unknown_style = MASK_REDACT;
	mp->detector_style = MASK_PARTIAL;
	mp->on_unmaskable = on_unmaskable;
	mp->nrules = 2;
	mp->rules[0].style = MASK_REDACT;
	mp->rules[1].style = MASK_HASH;
	if (mask_engine_new(mp, KEY, &me, err, sizeof(err)))
		unit_fail(__FILE__, __LINE__, "mask_engine_new: %s", err);
	free(mp);
	return me;
}

/* n text columns, the second redacted and the fifth hashed. */
static void plans(struct mask_colplan *cp, int n)
{
	memset(cp, 0, (size_t)n * sizeof(*cp));
	for (int i = 0; i < n; i++) {
		cp[i].rule = MASK_RULE_NONE;
		cp[i].type_oid = 25; /* text: what a text row's every value reads as */
	}
	if (n > 1)
		cp[1].rule = 0; /* redact */
	if (n > 4)
		cp[4].rule = 1; /* hash */
}

static const struct val ROW[NCOLS] = {
    {"Jane Roe"},
    {"123-45-6789"},
    {NULL},
    {"write to jane.doe@example.com or call 555-123-4567"},
    {"a value long enough to need a three-byte length prefix in a MySQL text row, "
     "which is any value of 251 bytes or more: this one repeats itself to get there, "
     "a value long enough to need a three-byte length prefix in a MySQL text row, "
     "which is any value of 251 bytes or more: and now it is"},
};

/* The same row through both codecs: the same cells come out. */
static void test_lenenc_codec_masks_like_datarow(void)
{
	struct mask_engine *me = engine(UNMASKABLE_WITHHOLD);
	struct mask_colplan cp[NCOLS];
	struct lenenc_state st = {.max_payload = 0xffffff};
	struct row_codec codec = {.ops = &lenenc_ops, .cell_format = 0, .state = &st};
	struct buf in = {0}, out = {0}, dr = {0}, drout = {0};
	uint64_t cols[NCOLS] = {0};
	struct mask_counts counts = {.ncols = NCOLS, .cols = cols};
	char *a[NCOLS] = {0}, *b[NCOLS] = {0};

	if (!me)
		return;
	plans(cp, NCOLS);
	lenenc_packet(&in, ROW, NCOLS);
	buf_append(&out, "prefix", 6); /* mask_rows appends */
	CHECK_EQ_INT(mask_rows(me, &codec, cp, NCOLS, in.data, in.len, &out, &counts), 0);
	CHECK(out.len > 6 && !memcmp(out.data, "prefix", 6));
	CHECK_EQ_INT(out.data[6 + 3], 3); /* the sequence id stays */
	CHECK_EQ_INT(lenenc_cells(out.data + 6, out.len - 6, NCOLS, a), 0);
	datarow_body(&dr, ROW, NCOLS);
	CHECK_EQ_INT(mask_datarow(me, cp, NCOLS, dr.data, dr.len, &drout, NULL), 0);
	CHECK_EQ_INT(datarow_cells(drout.data, drout.len, NCOLS, b), 0);
	for (int i = 0; i < NCOLS; i++) {
		unit_where("column %d", i + 1);
		CHECK((!a[i] && !b[i]) || (a[i] && b[i] && !strcmp(a[i], b[i])));
	}
	unit_where("%s", "");
	CHECK(a[0] && !strcmp(a[0], "Jane Roe"));
	CHECK(a[1] && !strstr(a[1], "6789") && strcmp(a[1], ROW[1].s));
	CHECK(!a[2]);
	CHECK(a[3] && !strcmp(a[3], "write to ****.***@*******.*** or call ***-***-4567"));
	CHECK(a[4] && strlen(a[4]) < 251 && !strncmp(a[4], "h:", 2)); /* the prefix shrank */
	CHECK_EQ_INT(cols[1], 1);
	CHECK_EQ_INT(cols[4], 1);
	CHECK_EQ_INT(counts.det[DET_EMAIL], 1);
	CHECK_EQ_INT(counts.det[DET_PHONE], 1);
	for (int i = 0; i < NCOLS; i++) {
		free(a[i]);
		free(b[i]);
	}
	buf_free(&in);
	buf_free(&out);
	buf_free(&dr);
	buf_free(&drout);
	mask_engine_free(me);
}

/* A row nothing touches leaves as it came, byte for byte. */
static void test_lenenc_untouched_row_is_copied(void)
{
	struct mask_engine *me = engine(UNMASKABLE_WITHHOLD);
	struct mask_colplan cp[NCOLS];
	struct lenenc_state st = {.max_payload = 0xffffff};
	struct row_codec codec = {.ops = &lenenc_ops, .cell_format = 0, .state = &st};
	const struct val clean[NCOLS] = {{"a"}, {NULL}, {""}, {"no identifiers here"}, {NULL}};
	struct buf in = {0}, out = {0};

	if (!me)
		return;
	plans(cp, NCOLS);
	lenenc_packet(&in, clean, NCOLS);
	CHECK_EQ_INT(mask_rows(me, &codec, cp, NCOLS, in.data, in.len, &out, NULL), 0);
	CHECK(out.len == in.len && !memcmp(out.data, in.data, in.len));
	buf_free(&in);
	buf_free(&out);
	mask_engine_free(me);
}

/* Refusals leave nothing behind: a value masking cannot produce, a packet the codec cannot
 * write, a packet the codec cannot read. */
static void test_lenenc_refusals_send_nothing(void)
{
	struct mask_engine *me = engine(UNMASKABLE_WITHHOLD);
	struct mask_colplan cp[NCOLS];
	struct lenenc_state st = {.max_payload = 0xffffff};
	struct row_codec codec = {.ops = &lenenc_ops, .cell_format = 0, .state = &st};
	struct buf in = {0}, out = {0};
	struct mask_counts counts = {0};

	if (!me)
		return;
	plans(cp, NCOLS);
	lenenc_packet(&in, ROW, NCOLS);
	buf_append(&out, "prefix", 6);

	/* a masked column of a type masking does not know: withheld */
	cp[1].type_oid = 0;
	snprintf(cp[1].label, sizeof(cp[1].label), "patients.ssn");
	CHECK_EQ_INT(mask_rows(me, &codec, cp, NCOLS, in.data, in.len, &out, &counts), 1);
	CHECK_EQ_INT(out.len, 6);
	CHECK(strstr(counts.why, "patients.ssn") != NULL);
	CHECK_EQ_INT(counts.withheld, 1);
	plans(cp, NCOLS);

	/* the codec's own limit (a packet's length): the masked row is not sent */
	st.max_payload = 64;
	memset(&counts, 0, sizeof(counts));
	CHECK_EQ_INT(mask_rows(me, &codec, cp, NCOLS, in.data, in.len, &out, &counts), 1);
	CHECK_EQ_INT(out.len, 6);
	CHECK(strstr(counts.why, "longer than a packet") != NULL);
	st.max_payload = 0xffffff;

	/* malformed: a length past the end, a wrong header, one cell too few */
	in.data[4] = 250;
	CHECK_EQ_INT(mask_rows(me, &codec, cp, NCOLS, in.data, in.len, &out, NULL), -1);
	lenenc_packet(&in, ROW, NCOLS);
	in.data[0]++;
	CHECK_EQ_INT(mask_rows(me, &codec, cp, NCOLS, in.data, in.len, &out, NULL), -1);
	lenenc_packet(&in, ROW, NCOLS - 1);
	CHECK_EQ_INT(mask_rows(me, &codec, cp, NCOLS, in.data, in.len, &out, NULL), -1);
	CHECK_EQ_INT(out.len, 6);

	/* no codec at all (a result whose codec was never set): refused, never passed through */
	CHECK_EQ_INT(mask_rows(me, &(struct row_codec){0}, cp, NCOLS, in.data, in.len, &out, NULL),
		     -1);
	CHECK_EQ_INT(mask_rows(me, NULL, cp, NCOLS, in.data, in.len, &out, NULL), -1);
	CHECK_EQ_INT(out.len, 6);
	buf_free(&in);
	buf_free(&out);
	mask_engine_free(me);
}

/* With on_unmaskable null, the unmaskable cell goes as NULL through the codec's NULL. */
static void test_lenenc_unmaskable_as_null(void)
{
	struct mask_engine *me = engine(UNMASKABLE_NULL);
	struct mask_colplan cp[NCOLS];
	struct lenenc_state st = {.max_payload = 0xffffff};
	struct row_codec codec = {.ops = &lenenc_ops, .cell_format = 0, .state = &st};
	struct buf in = {0}, out = {0};
	char *a[NCOLS] = {0};

	if (!me)
		return;
	plans(cp, NCOLS);
	cp[1].type_oid = 0;
	lenenc_packet(&in, ROW, NCOLS);
	CHECK_EQ_INT(mask_rows(me, &codec, cp, NCOLS, in.data, in.len, &out, NULL), 0);
	CHECK_EQ_INT(lenenc_cells(out.data, out.len, NCOLS, a), 0);
	CHECK(!a[1]);
	CHECK(a[0] && !strcmp(a[0], "Jane Roe"));
	for (int i = 0; i < NCOLS; i++)
		free(a[i]);
	buf_free(&in);
	buf_free(&out);
	mask_engine_free(me);
}

/* PostgreSQL's COPY codec keeps its state in the caller's options across messages: the CSV
 * header passes once, as it came, and the rows after it are masked. */
static void test_pg_copy_codec_state_across_messages(void)
{
	struct mask_engine *me = engine(UNMASKABLE_WITHHOLD);
	struct mask_colplan cp[2];
	struct mask_copy opt = {.format = 1, .header = 1};
	struct row_codec codec;
	struct buf out = {0};
	static const char hdr[] = "name,ssn\n", row[] = "Jane,123-45-6789\n";

	if (!me)
		return;
	plans(cp, 2);
	pgrow_copy_codec(&codec, &opt);
	CHECK_EQ_INT(codec.cell_format, 0);
	CHECK_EQ_INT(mask_rows(me, &codec, cp, 2, (const uint8_t *)hdr, strlen(hdr), &out, NULL),
		     0);
	CHECK(out.len == 5 + strlen(hdr) && out.data[0] == 'd' &&
	      !memcmp(out.data + 5, hdr, strlen(hdr)));
	CHECK_EQ_INT(opt.header_done, 1);
	out.len = 0;
	CHECK_EQ_INT(mask_rows(me, &codec, cp, 2, (const uint8_t *)row, strlen(row), &out, NULL),
		     0);
	CHECK(out.len > 5 && !memmem(out.data, out.len, "6789", 4) &&
	      !memcmp(out.data + 5, "Jane,", 5));
	buf_free(&out);
	mask_engine_free(me);
}

int main(void)
{
	UNIT_RUN(test_lenenc_codec_masks_like_datarow);
	UNIT_RUN(test_lenenc_untouched_row_is_copied);
	UNIT_RUN(test_lenenc_refusals_send_nothing);
	UNIT_RUN(test_lenenc_unmaskable_as_null);
	UNIT_RUN(test_pg_copy_codec_state_across_messages);
	mask_thread_release();
	return unit_report();
}
