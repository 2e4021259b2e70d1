/*
 * libFuzzer target for the result rewriters: mask_datarow and mask_copydata (text, CSV and
 * binary COPY). The first bytes of the input choose a plan (how many columns; per column a
 * type, a rule or none, a format, a name context) and engine settings (detectors, detector
 * style, what happens to unmaskable values); the rest is the message, or for COPY up to two
 * messages (so a header or signature can ride alone). Besides crashes and sanitizer reports,
 * these are bugs:
 *   - a return other than -1, 0 or 1; output appended on -1 or 1; 1 without a reason;
 *   - an output message that does not frame: its length field, its column count, a cell
 *     length running past the end, a COPY row with another number of fields;
 *   - a well-framed DataRow refused as malformed;
 *   - a NULL cell that is not NULL any more, a null-style column that is not NULL, a column
 *     nothing may touch (no rule, not text, not an identifier by type) that changed;
 *   - with redact or partial detector styles, a second pass of the detectors over a DataRow's
 *     output that still finds something: a match that survived masking;
 *   - counts that are not one JSON object.
 * Seeds: fuzz/corpus/mask_datarow/; dictionary: fuzz/mask.dict.
 */
#include <json-c/json.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_require.h"
#include "buf.h"
#include "mask.h"
#include "pgrow.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAXCOLS 8

static const uint32_t type_oids[] = {
    25,	  1043, 1042, 19,   705,  114,	3802, 142,  17,	  21,	23,   20,    1700,
    700,  701,	1082, 1114, 1184, 1083, 869,  650,  2950, 16,	18,   1009,  1015,
    1014, 1007, 1016, 1182, 199,  3807, 1231, 1115, 1000, 2951, 1001, 16390, 2249,
};
#define NTYPES (sizeof(type_oids) / sizeof(type_oids[0]))

static const char *const ctx_names[] = {"note", "dob", "ssn", "birth_date"};

/* engines by settings, compiled on first use and kept */
#define DET_SETS 4
static struct mask_engine *engines[DET_SETS][MASK_STYLE_COUNT][2];
static const unsigned det_sets[DET_SETS] = {
    (1u << DET_COUNT) - 1,
    0,
    ((1u << DET_COUNT) - 1) & ~(1u << DET_MRN),
    1u << DET_US_SSN | 1u << DET_EMAIL | 1u << DET_CREDIT_CARD,
};

static struct mask_engine *engine(int ds, int st, int onnull)
{
	struct mask_engine **e = &engines[ds][st][onnull];

	if (!*e) {
		static struct mask_policy mp;
		static const uint8_t key[32] = {7};
		char err[256];

		memset(&mp, 0, sizeof(mp));
		mp.enabled = 1;
		mp.detectors = det_sets[ds];
		mp.detector_style = (enum mask_style)st;
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

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

struct cell {
	const uint8_t *p;
	int32_t len;
};

/* A DataRow body's cells; 0 if it frames with n cells. */
static int cells_of(const uint8_t *b, size_t len, int n, struct cell *c)
{
	size_t off = 2;

	if (len < 2 || (int16_t)(b[0] << 8 | b[1]) != n)
		return -1;
	for (int i = 0; i < n; i++) {
		int32_t l;

		if (len - off < 4)
			return -1;
		l = (int32_t)be32(b + off);
		off += 4;
		if (l < -1 || (l > 0 && (size_t)l > len - off))
			return -1;
		c[i].p = b + off;
		c[i].len = l;
		if (l > 0)
			off += (size_t)l;
	}
	return off == len ? 0 : -1;
}

static int textlike(uint32_t oid)
{
	switch (oid) {
	case 25:
	case 1043:
	case 1042:
	case 19:
	case 705:
	case 114:
	case 3802:
	case 142:
	case 1009:
	case 1015:
	case 1014:
	case 199:
	case 3807:
		return 1;
	}
	return 0;
}

/* May the detectors touch this column without a rule? */
static int detectable(const struct mask_colplan *c)
{
	switch (c->type_oid) {
	case 869:
	case 650: /* inet, cidr */
		return 1;
	case 1082:
	case 1114:
	case 1184:
	case 1182:
	case 1115:
		return (c->context & 1u << DET_DOB) != 0;
	case 23:
	case 20:
	case 1700:
		return (c->context & 1u << DET_US_SSN) != 0;
	}
	return textlike(c->type_oid);
}

static void check_counts(const struct mask_colplan *cols, const struct mask_counts *counts)
{
	struct buf j = {0};

	mask_counts_json(cols, counts, &j);
	if (j.len) {
		char *s = malloc(j.len + 1);
		struct json_object *o;

		memcpy(s, j.data, j.len);
		s[j.len] = '\0';
		o = json_tokener_parse(s);
		REQUIRE(o && json_object_is_type(o, json_type_object));
		json_object_put(o);
		free(s);
	}
	buf_free(&j);
}

static void check_datarow(struct mask_engine *me, struct mask_engine *again,
			  const struct mask_colplan *cols, int n, const uint8_t *b, size_t len)
{
	struct buf out = {0}, out2 = {0};
	struct mask_counts counts = {0};
	uint64_t cnt[MAXCOLS] = {0};
	struct cell in[MAXCOLS], got[MAXCOLS];
	int framed = !cells_of(b, len, n, in), rc;

	counts.ncols = n;
	counts.cols = cnt;
	buf_append(&out, "x", 1);
	rc = mask_datarow(me, cols, n, b, len, &out, &counts);
	REQUIRE(rc == -1 || rc == 0 || rc == 1);
	if (rc) {
		REQUIRE(out.len == 1);
		REQUIRE(rc == -1 || counts.why[0]);
		REQUIRE(rc == 1 || !framed);
		goto cleanup;
	}
	REQUIRE(framed);
	REQUIRE(out.len >= 1 + 7 && out.data[1] == 'D' && be32(out.data + 2) == out.len - 2);
	REQUIRE(!cells_of(out.data + 6, out.len - 6, n, got));
	for (int i = 0; i < n; i++) {
		if (in[i].len < 0)
			REQUIRE(got[i].len < 0);
		if (cols[i].rule == MASK_NULL && in[i].len >= 0)
			REQUIRE(got[i].len < 0);
		if (cols[i].rule == MASK_RULE_NONE && !detectable(&cols[i]))
			REQUIRE(got[i].len == in[i].len &&
				(in[i].len <= 0 || !memcmp(got[i].p, in[i].p, (size_t)in[i].len)));
	}
	check_counts(cols, &counts);
	if (again) {
		/* the output again, detectors only, on the columns they looked at */
		struct mask_colplan c2[MAXCOLS];

		for (int i = 0; i < n; i++) {
			c2[i] = cols[i];
			if (cols[i].rule != MASK_RULE_NONE) {
				c2[i].rule = MASK_RULE_NONE;
				c2[i].type_oid = 17; /* bytea: no detector looks */
			}
		}
		memset(&counts, 0, sizeof(counts));
		rc = mask_datarow(again, c2, n, out.data + 6, out.len - 6, &out2, &counts);
		REQUIRE(rc == 0);
		REQUIRE(out2.len == out.len - 1 && !memcmp(out2.data, out.data + 1, out2.len));
	}
cleanup:
	buf_free(&out);
	buf_free(&out2);
}

/* COPY text/CSV output rows: each with n fields (CSV quotes honoured). */
static void check_copy_rows(const struct mask_copy *cp, const uint8_t *p, size_t len, int n,
			    int skip_header)
{
	size_t i = 0;

	if (skip_header) {
		const uint8_t *nl = memchr(p, '\n', len);

		REQUIRE(nl);
		i = (size_t)(nl - p) + 1;
	}
	while (i < len) {
		int f = 1, in_q = 0;

		for (;; i++) {
			REQUIRE(i < len);
			if (cp->format == 1 && in_q) {
				if (p[i] == (uint8_t)cp->escape && cp->escape != cp->quote &&
				    i + 1 < len &&
				    (p[i + 1] == (uint8_t)cp->quote ||
				     p[i + 1] == (uint8_t)cp->escape))
					i++;
				else if (p[i] == (uint8_t)cp->quote && cp->escape == cp->quote &&
					 i + 1 < len && p[i + 1] == (uint8_t)cp->quote)
					i++;
				else if (p[i] == (uint8_t)cp->quote)
					in_q = 0;
				continue;
			}
			if (cp->format == 0 && p[i] == '\\') {
				i++;
				continue;
			}
			if (cp->format == 1 && p[i] == (uint8_t)cp->quote) {
				in_q = 1;
				continue;
			}
			if (p[i] == (uint8_t)cp->delim)
				f++;
			else if (p[i] == '\n')
				break;
		}
		i++;
		REQUIRE(f == n);
	}
}

static void check_copy_binary(const uint8_t *p, size_t len, int n, int with_header)
{
	size_t i = 0;

	if (with_header) {
		REQUIRE(len >= 19 && !memcmp(p, "PGCOPY\n\377\r\n\0", 11));
		i = 19 + be32(p + 15);
		REQUIRE(i <= len);
	}
	while (i < len) {
		int16_t cnt;

		REQUIRE(len - i >= 2);
		cnt = (int16_t)(p[i] << 8 | p[i + 1]);
		i += 2;
		if (cnt == -1) {
			REQUIRE(i == len);
			return;
		}
		REQUIRE(cnt == n);
		for (int k = 0; k < n; k++) {
			int32_t l;

			REQUIRE(len - i >= 4);
			l = (int32_t)be32(p + i);
			i += 4;
			REQUIRE(l >= -1 && (l < 0 || (size_t)l <= len - i));
			if (l > 0)
				i += (size_t)l;
		}
	}
}

static void check_copy(struct mask_engine *me, const struct mask_colplan *cols, int n,
		       struct mask_copy *cp, const uint8_t *d, size_t len)
{
	struct buf out = {0};
	struct mask_counts counts = {0};
	uint64_t cnt[MAXCOLS] = {0};
	int before = cp->header_done, rc;

	counts.ncols = n;
	counts.cols = cnt;
	rc = mask_copydata(me, cols, n, cp, d, len, &out, &counts);
	REQUIRE(rc == -1 || rc == 0 || rc == 1);
	if (rc) {
		REQUIRE(out.len == 0);
		REQUIRE(rc == -1 || counts.why[0]);
		goto cleanup;
	}
	REQUIRE(out.len >= 5 && out.data[0] == 'd' && be32(out.data + 1) == out.len - 1);
	if (cp->format == 2)
		check_copy_binary(out.data + 5, out.len - 5, n, !before && cp->header_done);
	else
		check_copy_rows(cp, out.data + 5, out.len - 5, n, !before && cp->header_done);
	check_counts(cols, &counts);
cleanup:
	buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mask_colplan cols[MAXCOLS];
	int n, mode, ds, st, onnull;
	size_t off;

	if (size < 3)
		return 0;
	mode = data[0] & 3; /* DataRow, COPY text, COPY csv, COPY binary */
	onnull = data[0] >> 2 & 1;
	st = (data[0] >> 3) % MASK_STYLE_COUNT; /* detector style */
	ds = (data[0] >> 6) % DET_SETS;
	n = 1 + data[1] % MAXCOLS;
	off = 2;
	if (size < off + 3 * (size_t)n + 1)
		return 0;
	memset(cols, 0, sizeof(cols));
	for (int i = 0; i < n; i++, off += 3) {
		uint8_t r = data[off + 1], f = data[off + 2];

		cols[i].type_oid = type_oids[data[off] % NTYPES];
		/* rule: none, unknown, or one of the five styles */
		cols[i].rule = r % 7 == 0   ? MASK_RULE_NONE
			       : r % 7 == 1 ? MASK_RULE_UNKNOWN
					    : r % 7 - 2;
		cols[i].derived = r >> 7;
		cols[i].format = (int16_t)(f & 1);
		cols[i].context = mask_context_from_name(ctx_names[f >> 1 & 3]);
		snprintf(cols[i].label, sizeof(cols[i].label), "t.c%d", i);
	}
	if (mode == 0) {
		int fix =
		    (st == MASK_REDACT || st == MASK_PARTIAL) && !(det_sets[ds] & 1u << DET_MRN);

		check_datarow(engine(ds, st, onnull), fix ? engine(ds, st, onnull) : NULL, cols, n,
			      data + off, size - off);
	} else {
		struct mask_copy cp = {0};
		uint8_t opt = data[off++];
		size_t rest = size - off, split = rest ? opt % (rest + 1) : 0;

		cp.format = mode - 1;
		if (cp.format == 1) {
			cp.delim = opt & 8 ? ';' : ',';
			cp.quote = '"';
			cp.escape = opt & 16 ? '\\' : '"';
			snprintf(cp.null_str, sizeof(cp.null_str), "%s", opt & 32 ? "NULL" : "");
		} else {
			cp.delim = opt & 8 ? '|' : '\t';
			snprintf(cp.null_str, sizeof(cp.null_str), "%s", opt & 32 ? "" : "\\N");
		}
		cp.header = opt >> 7;
		if (!(opt & 64)) /* one message */
			split = rest;
		check_copy(engine(ds, st, onnull), cols, n, &cp, data + off, split);
		if (split < rest)
			check_copy(engine(ds, st, onnull), cols, n, &cp, data + off + split,
				   rest - split);
	}
	return 0;
}
