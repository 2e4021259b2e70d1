/*
 * PHI masking (user/hoopd/mask/mask*.c): the value and detector cases in tests/unit/mask/ (.cases),
 * then the row and COPY rewriters, arrays, the unmaskable paths, counts and names.
 *
 * Usage: test_mask CASES_DIR
 *
 * A cases file has one case a line; blank lines and lines starting with '#' are ignored:
 *
 *   [@OPTION ...] STYLE TYPE FORMAT INPUT OP EXPECT [COUNT ...]
 *
 *   @OPTION  @derived (the column is computed from the masked one), @unknown (provenance
 *            unknown: the rule is MASK_RULE_UNKNOWN), @name=COLUMN (the column context comes
 *            from mask_context_from_name(COLUMN)), @unmaskable=null, @detstyle=STYLE,
 *            @detectors=NAME,NAME (only these on; "none" for none), @mrn=PATTERN
 *   STYLE    redact, partial:FIRST:LAST, hash, null, format_preserving, or none (no column
 *            rule: only the detectors apply)
 *   TYPE     a type name hoop knows (text, int4, _text...) or a number (an OID)
 *   FORMAT   text or binary
 *   INPUT    "quoted" (C escapes \n \t \\ \" \xHH), x:HEX (bytes), or NULL
 *   OP EXPECT
 *            = "quoted" | x:HEX | NULL | same (the input unchanged) | unmaskable (withheld,
 *            with a reason)
 *            ~ "ERE": the output (text; hex for binary format) matches the POSIX regex
 *   COUNT    det:NAME=N (detector matches counted), cols=N (cells counted for the column),
 *            withheld=N
 *
 * Each case runs as a one-column DataRow through mask_datarow; text-format cases also go
 * through COPY text and COPY CSV, binary ones through COPY binary, and each COPY output is
 * decoded here and must give the same value as the DataRow.
 */
#include <errno.h>
#include <dirent.h>
#include <json-c/json.h>
#include <openssl/hmac.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "harness.h"
#include "mask.h"
#include "mask_int.h"
#include "pgrow.h"

static const uint8_t KEY[32] = {1,  2,	3,  4,	5,  6,	7,  8,	9,  10, 11, 12, 13, 14, 15, 16,
				17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

#define ALL_DETECTORS ((1u << DET_COUNT) - 1)

static void policy_default(struct mask_policy *mp)
{
	memset(mp, 0, sizeof(*mp));
	mp->enabled = 1;
	mp->detectors = ALL_DETECTORS;
	mp->unknown_style = MASK_REDACT;
	mp->detector_style = MASK_PARTIAL;
	mp->on_unmaskable = UNMASKABLE_WITHHOLD;
}

static struct mask_engine *engine(const struct mask_policy *mp)
{
	struct mask_engine *me = NULL;
	char err[512];

	if (mask_engine_new(mp, KEY, &me, err, sizeof(err))) {
		unit_fail(__FILE__, __LINE__, "mask_engine_new: %s", err);
		return NULL;
	}
	return me;
}

/* ---- values and messages ---- */

struct val {
	int null;
	uint8_t *p;
	size_t n;
};

static void val_free(struct val *v)
{
	free(v->p);
	memset(v, 0, sizeof(*v));
}

static void val_set(struct val *v, const void *p, size_t n)
{
	v->null = 0;
	v->p = malloc(n + 1);
	memcpy(v->p, p, n);
	v->p[n] = '\0';
	v->n = n;
}

static void put_be32(struct buf *b, uint32_t x)
{
	uint8_t o[4] = {(uint8_t)(x >> 24), (uint8_t)(x >> 16), (uint8_t)(x >> 8), (uint8_t)x};

	buf_append(b, o, 4);
}

static void put_be16(struct buf *b, uint16_t x)
{
	uint8_t o[2] = {(uint8_t)(x >> 8), (uint8_t)x};

	buf_append(b, o, 2);
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* A DataRow body of n cells. */
static void row_body(struct buf *b, const struct val *c, int n)
{
	b->len = 0;
	put_be16(b, (uint16_t)n);
	for (int i = 0; i < n; i++) {
		if (c[i].null) {
			put_be32(b, UINT32_MAX);
			continue;
		}
		put_be32(b, (uint32_t)c[i].n);
		buf_append(b, c[i].p, c[i].n);
	}
}

/* One whole DataRow message at m[0..n): checked frame by frame; its cells into out. */
static int parse_datarow(const uint8_t *m, size_t n, int ncols, struct val *out)
{
	size_t off = 7;

	if (n < 7 || m[0] != 'D' || be32(m + 1) != n - 1 || (int16_t)(m[5] << 8 | m[6]) != ncols)
		return -1;
	for (int i = 0; i < ncols; i++) {
		int32_t l;

		if (n - off < 4)
			return -1;
		l = (int32_t)be32(m + off);
		off += 4;
		if (l == -1) {
			out[i].null = 1;
			continue;
		}
		if (l < 0 || (size_t)l > n - off)
			return -1;
		val_set(&out[i], m + off, (size_t)l);
		off += (size_t)l;
	}
	return off == n ? 0 : -1;
}

/* ---- COPY decoding, written apart from pgrow.c's ---- */

static int ishex(int c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int hexv(int c)
{
	return c <= '9' ? c - '0' : (c | 32) - 'a' + 10;
}

/* COPY text: one line (without its newline) into fields. */
static int copy_text_fields(const uint8_t *p, size_t n, char delim, const char *null_str,
			    struct val *out, int max)
{
	int f = 0;
	size_t a = 0;

	for (size_t i = 0; i <= n; i++) {
		struct buf d = {0};

		if (i < n && p[i] == '\\') {
			i++;
			continue;
		}
		if (i < n && p[i] != (uint8_t)delim)
			continue;
		if (f >= max)
			return -1;
		if (i - a == strlen(null_str) && !memcmp(p + a, null_str, i - a)) {
			out[f++].null = 1;
			a = i + 1;
			continue;
		}
		for (size_t k = a; k < i; k++) {
			uint8_t c = p[k];

			if (c == '\\' && k + 1 < i) {
				c = p[++k];
				if (c == 'n')
					c = '\n';
				else if (c == 't')
					c = '\t';
				else if (c == 'r')
					c = '\r';
				else if (c == 'b')
					c = '\b';
				else if (c == 'f')
					c = '\f';
				else if (c == 'v')
					c = '\v';
				else if (c == 'x' && k + 1 < i && ishex(p[k + 1])) {
					c = (uint8_t)hexv(p[++k]);
					if (k + 1 < i && ishex(p[k + 1]))
						c = (uint8_t)(c * 16 + hexv(p[++k]));
				} else if (c >= '0' && c <= '7') {
					int v = c - '0';

					for (int j = 0; j < 2 && k + 1 < i && p[k + 1] >= '0' &&
							p[k + 1] <= '7';
					     j++)
						v = v * 8 + p[++k] - '0';
					c = (uint8_t)v;
				}
			}
			buf_append(&d, &c, 1);
		}
		val_set(&out[f++], d.data ? d.data : (uint8_t *)"", d.len);
		buf_free(&d);
		a = i + 1;
	}
	return f;
}

/* COPY CSV (quote '"', escape '"' or given): one record at p[*i..n) into fields. */
static int copy_csv_fields(const uint8_t *p, size_t n, size_t *i, char delim, char quote,
			   char escape, const char *null_str, struct val *out, int max)
{
	int f = 0;

	for (;;) {
		struct buf d = {0};
		int quoted = 0, in_q = 0;
		size_t a = *i;

		for (;; (*i)++) {
			uint8_t c;

			if (*i >= n) {
				buf_free(&d);
				return -1;
			}
			c = p[*i];
			if (in_q) {
				if (c == (uint8_t)escape && *i + 1 < n &&
				    (p[*i + 1] == (uint8_t)quote ||
				     (escape != quote && p[*i + 1] == (uint8_t)escape))) {
					(*i)++;
					buf_append(&d, p + *i, 1);
				} else if (c == (uint8_t)quote) {
					in_q = 0;
				} else {
					buf_append(&d, &c, 1);
				}
				continue;
			}
			if (c == (uint8_t)delim || c == '\n')
				break;
			if (c == (uint8_t)quote) {
				in_q = quoted = 1;
				continue;
			}
			buf_append(&d, &c, 1);
		}
		if (f >= max) {
			buf_free(&d);
			return -1;
		}
		if (!quoted && *i - a == strlen(null_str) && !memcmp(p + a, null_str, *i - a))
			out[f].null = 1;
		else
			val_set(&out[f], d.data ? d.data : (uint8_t *)"", d.len);
		buf_free(&d);
		f++;
		if (p[(*i)++] == '\n')
			return f;
	}
}

/* ---- cases ---- */

struct tok {
	char s[4096];
	size_t n;
	int quoted;
};

static int tokenize(const char *line, struct tok *t, int max)
{
	int nt = 0;
	const char *p = line;

	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p || *p == '\n')
			return nt;
		if (nt == max)
			return -1;
		t[nt].n = 0;
		t[nt].quoted = *p == '"';
		if (*p == '"') {
			for (p++; *p && *p != '"'; p++) {
				char c = *p;

				if (c == '\\') {
					p++;
					switch (*p) {
					case 'n':
						c = '\n';
						break;
					case 't':
						c = '\t';
						break;
					case 'r':
						c = '\r';
						break;
					case 'x':
						if (!ishex(p[1]) || !ishex(p[2]))
							return -1;
						c = (char)(hexv(p[1]) * 16 + hexv(p[2]));
						p += 2;
						break;
					case '\0':
						return -1;
					case '\\':
					case '"':
						c = *p;
						break;
					default:
						/* \{ \. \+ ...: kept for regular expressions */
						if (t[nt].n + 2 >= sizeof(t[nt].s))
							return -1;
						t[nt].s[t[nt].n++] = '\\';
						c = *p;
					}
				}
				if (t[nt].n + 1 >= sizeof(t[nt].s))
					return -1;
				t[nt].s[t[nt].n++] = c;
			}
			if (*p != '"')
				return -1;
			p++;
		} else {
			while (*p && *p != ' ' && *p != '\t' && *p != '\n') {
				if (t[nt].n + 1 >= sizeof(t[nt].s))
					return -1;
				t[nt].s[t[nt].n++] = *p++;
			}
		}
		t[nt].s[t[nt].n] = '\0';
		nt++;
	}
}

static int tok_value(const struct tok *t, struct val *v)
{
	memset(v, 0, sizeof(*v));
	if (t->quoted) {
		val_set(v, t->s, t->n);
		return 0;
	}
	if (!strcmp(t->s, "NULL")) {
		v->null = 1;
		return 0;
	}
	if (!strncmp(t->s, "x:", 2)) {
		size_t h = t->n - 2;
		uint8_t b[2048];

		if (h % 2 || h / 2 > sizeof(b))
			return -1;
		for (size_t i = 0; i < h / 2; i++) {
			if (!ishex(t->s[2 + 2 * i]) || !ishex(t->s[3 + 2 * i]))
				return -1;
			b[i] = (uint8_t)(hexv(t->s[2 + 2 * i]) * 16 + hexv(t->s[3 + 2 * i]));
		}
		val_set(v, b, h / 2);
		return 0;
	}
	return -1;
}

static uint32_t type_oid(const char *name)
{
	char *end;
	unsigned long n = strtoul(name, &end, 10);

	if (!*end && end != name)
		return (uint32_t)n;
	for (uint32_t oid = 1; oid < 5000; oid++) {
		const struct mtype *t = mask_type(oid);

		if (t && !strcmp(t->name, name))
			return oid;
	}
	return 0;
}

static void show(const struct val *v, int binary, char *o, size_t on)
{
	if (v->null) {
		snprintf(o, on, "NULL");
		return;
	}
	if (binary) {
		size_t k = 0;

		for (size_t i = 0; i < v->n && k + 3 < on; i++)
			k += (size_t)snprintf(o + k, on - k, "%02x", v->p[i]);
		o[k] = '\0';
		return;
	}
	unit_quote((const char *)v->p, o, on);
	if (strlen((const char *)v->p) != v->n)
		snprintf(o, on, "(%zu bytes with NUL)", v->n);
}

static int val_eq(const struct val *a, const struct val *b)
{
	return a->null == b->null && (a->null || (a->n == b->n && !memcmp(a->p, b->p, a->n)));
}

/* The same value through COPY in the format of the case: must decode to what DataRow gave. */
static void check_copy(struct mask_engine *me, const struct mask_colplan *cp, const struct val *in,
		       const struct val *want, int binary, int csv)
{
	struct mask_copy opt = {0};
	struct buf payload = {0}, out = {0};
	struct mask_counts counts = {0};
	uint64_t cols[1] = {0};
	struct val got[2] = {{0}};
	char a[1024], b[1024];
	int rc;

	counts.ncols = 1;
	counts.cols = cols;
	if (binary) {
		static const uint8_t sig[] = "PGCOPY\n\377\r\n";

		opt.format = 2;
		buf_append(&payload, sig, 11);
		put_be32(&payload, 0);
		put_be32(&payload, 0);
		put_be16(&payload, 1);
		if (in->null) {
			put_be32(&payload, UINT32_MAX);
		} else {
			put_be32(&payload, (uint32_t)in->n);
			buf_append(&payload, in->p, in->n);
		}
	} else {
		opt.format = csv;
		opt.delim = csv ? ',' : '\t';
		opt.quote = opt.escape = '"';
		snprintf(opt.null_str, sizeof(opt.null_str), "%s", csv ? "" : "\\N");
		if (in->null) {
			buf_append(&payload, opt.null_str, strlen(opt.null_str));
		} else if (csv) {
			buf_append(&payload, "\"", 1);
			for (size_t i = 0; i < in->n; i++) {
				if (in->p[i] == '"')
					buf_append(&payload, "\"", 1);
				buf_append(&payload, in->p + i, 1);
			}
			buf_append(&payload, "\"", 1);
		} else {
			for (size_t i = 0; i < in->n; i++) {
				char e[5];
				uint8_t c = in->p[i];

				if (c == '\\' || c == '\t' || c == '\n' || c == '\r') {
					snprintf(e, sizeof(e), "\\%c",
						 c == '\\'   ? '\\'
						 : c == '\t' ? 't'
						 : c == '\n' ? 'n'
							     : 'r');
					buf_append(&payload, e, 2);
				} else {
					buf_append(&payload, &c, 1);
				}
			}
		}
		buf_append(&payload, "\n", 1);
	}
	rc = mask_copydata(me, cp, 1, &opt, payload.data, payload.len, &out, &counts);
	if (!want) {
		if (rc != 1)
			unit_fail(__FILE__, __LINE__, "COPY %s: rc %d, want 1 (withheld)",
				  binary ? "binary"
				  : csv	 ? "csv"
					 : "text",
				  rc);
		goto cleanup;
	}
	if (rc != 0 || out.len < 5 || out.data[0] != 'd' || be32(out.data + 1) != out.len - 1) {
		unit_fail(__FILE__, __LINE__, "COPY %s: rc %d, or a bad frame",
			  binary ? "binary"
			  : csv	 ? "csv"
				 : "text",
			  rc);
		goto cleanup;
	}
	if (binary) {
		const uint8_t *p = out.data + 5;
		size_t n = out.len - 5;
		int32_t l;

		if (n < 19 + 2 + 4 || memcmp(p, payload.data, 19) || p[19] != 0 || p[20] != 1) {
			unit_fail(__FILE__, __LINE__, "COPY binary: bad header or field count");
			goto cleanup;
		}
		l = (int32_t)be32(p + 21);
		if (l == -1 && n == 25)
			got[0].null = 1;
		else if (l >= 0 && (size_t)l == n - 25)
			val_set(&got[0], p + 25, (size_t)l);
		else {
			unit_fail(__FILE__, __LINE__, "COPY binary: bad field length %d", l);
			goto cleanup;
		}
	} else if (csv) {
		size_t i = 5;

		if (copy_csv_fields(out.data, out.len, &i, ',', '"', '"', "", got, 2) != 1 ||
		    i != out.len) {
			unit_fail(__FILE__, __LINE__,
				  "COPY csv: output does not parse as one field");
			goto cleanup;
		}
	} else {
		if (out.data[out.len - 1] != '\n' ||
		    copy_text_fields(out.data + 5, out.len - 6, '\t', "\\N", got, 2) != 1) {
			unit_fail(__FILE__, __LINE__,
				  "COPY text: output does not parse as one field");
			goto cleanup;
		}
	}
	if (!val_eq(&got[0], want)) {
		show(&got[0], binary, a, sizeof(a));
		show(want, binary, b, sizeof(b));
		unit_fail(__FILE__, __LINE__, "COPY %s gave %s, DataRow %s",
			  binary ? "binary"
			  : csv	 ? "csv"
				 : "text",
			  a, b);
	}
cleanup:
	val_free(&got[0]);
	buf_free(&payload);
	buf_free(&out);
}

static void run_case(const char *file, int line, char *text)
{
	struct tok *t = calloc(16, sizeof(*t));
	int nt = tokenize(text, t, 16), i = 0, binary, rc, style;
	struct mask_policy *mp = malloc(sizeof(*mp));
	struct mask_colplan cp = {0};
	struct mask_counts counts = {0};
	struct mask_engine *me = NULL;
	uint64_t cols[1] = {0};
	struct val in = {0}, want = {0}, got = {0};
	struct buf body = {0}, out = {0};
	int unknown = 0, regex = 0, want_unmaskable = 0;
	char a[2048], b[2048];

	unit_begin("mask cases");
	unit_where("%s:%d", file, line);
	policy_default(mp);
	if (nt < 0) {
		unit_fail(__FILE__, __LINE__, "cannot tokenize the line");
		goto cleanup;
	}
	for (; i < nt && t[i].s[0] == '@' && !t[i].quoted; i++) {
		char *o = t[i].s + 1, *eq = strchr(o, '=');

		if (eq)
			*eq++ = '\0';
		if (!strcmp(o, "derived")) {
			cp.derived = 1;
		} else if (!strcmp(o, "unknown")) {
			unknown = 1;
		} else if (!strcmp(o, "name") && eq) {
			cp.context = mask_context_from_name(eq);
		} else if (!strcmp(o, "unmaskable") && eq && !strcmp(eq, "null")) {
			mp->on_unmaskable = UNMASKABLE_NULL;
		} else if (!strcmp(o, "detstyle") && eq && mask_style_from_name(eq) >= 0) {
			mp->detector_style = (enum mask_style)mask_style_from_name(eq);
		} else if (!strcmp(o, "detectors") && eq) {
			mp->detectors = 0;
			for (char *d = strtok(eq, ","); d; d = strtok(NULL, ","))
				if (strcmp(d, "none"))
					mp->detectors |= 1u << mask_detector_from_name(d);
		} else if (!strcmp(o, "mrn") && eq) {
			snprintf(mp->mrn_pattern, sizeof(mp->mrn_pattern), "%s", eq);
		} else {
			unit_fail(__FILE__, __LINE__, "unknown option @%s", o);
			goto cleanup;
		}
	}
	if (nt - i < 6) {
		unit_fail(__FILE__, __LINE__, "want STYLE TYPE FORMAT INPUT OP EXPECT");
		goto cleanup;
	}
	if (!strcmp(t[i].s, "none")) {
		style = -1;
	} else if (!strncmp(t[i].s, "partial:", 8)) {
		style = MASK_PARTIAL;
		if (sscanf(t[i].s + 8, "%d:%d", &mp->rules[0].keep_first,
			   &mp->rules[0].keep_last) != 2) {
			unit_fail(__FILE__, __LINE__, "partial:FIRST:LAST");
			goto cleanup;
		}
	} else if ((style = mask_style_from_name(t[i].s)) < 0) {
		unit_fail(__FILE__, __LINE__, "unknown style %s", t[i].s);
		goto cleanup;
	}
	if (style >= 0) {
		mp->rules[0].style = (enum mask_style)style;
		mp->nrules = 1;
		cp.rule = 0;
	} else {
		cp.rule = MASK_RULE_NONE;
	}
	if (unknown) {
		cp.rule = MASK_RULE_UNKNOWN;
		if (style >= 0)
			mp->unknown_style = (enum mask_style)style;
	}
	cp.type_oid = type_oid(t[i + 1].s);
	if (!cp.type_oid) {
		unit_fail(__FILE__, __LINE__, "unknown type %s", t[i + 1].s);
		goto cleanup;
	}
	binary = !strcmp(t[i + 2].s, "binary");
	if (!binary && strcmp(t[i + 2].s, "text")) {
		unit_fail(__FILE__, __LINE__, "format is text or binary");
		goto cleanup;
	}
	cp.format = (int16_t)binary;
	snprintf(cp.label, sizeof(cp.label), "t.c");
	if (tok_value(&t[i + 3], &in)) {
		unit_fail(__FILE__, __LINE__, "bad input %s", t[i + 3].s);
		goto cleanup;
	}
	regex = !strcmp(t[i + 4].s, "~");
	if (!regex && strcmp(t[i + 4].s, "=")) {
		unit_fail(__FILE__, __LINE__, "OP is = or ~");
		goto cleanup;
	}
	if (regex && !t[i + 5].quoted) {
		unit_fail(__FILE__, __LINE__, "~ takes a quoted regex");
		goto cleanup;
	} else if (!regex && !t[i + 5].quoted && !strcmp(t[i + 5].s, "unmaskable")) {
		want_unmaskable = 1;
	} else if (!regex && !t[i + 5].quoted && !strcmp(t[i + 5].s, "same")) {
		want = in;
		if (!in.null)
			val_set(&want, in.p, in.n);
	} else if (!regex && tok_value(&t[i + 5], &want)) {
		unit_fail(__FILE__, __LINE__, "bad expectation %s", t[i + 5].s);
		goto cleanup;
	}
	me = engine(mp);
	if (!me)
		goto cleanup;
	counts.ncols = 1;
	counts.cols = cols;
	row_body(&body, &in, 1);
	rc = mask_datarow(me, &cp, 1, body.data, body.len, &out, &counts);
	if (want_unmaskable) {
		if (rc != 1 || out.len || !strstr(counts.why, "cannot be masked"))
			unit_fail(__FILE__, __LINE__,
				  "rc %d, %zu bytes out, why \"%s\": want withheld", rc, out.len,
				  counts.why);
		if (!binary && !in.null)
			check_copy(me, &cp, &in, NULL, 0, 0);
	} else if (rc != 0) {
		unit_fail(__FILE__, __LINE__, "mask_datarow returned %d (%s)", rc, counts.why);
	} else if (parse_datarow(out.data, out.len, 1, &got)) {
		unit_fail(__FILE__, __LINE__, "output is not a well-formed one-column DataRow");
	} else if (regex) {
		regex_t re;

		if (binary || got.null)
			show(&got, binary, a, sizeof(a));
		else
			snprintf(a, sizeof(a), "%s", (char *)got.p);
		if (regcomp(&re, t[i + 5].s, REG_EXTENDED | REG_NOSUB)) {
			unit_fail(__FILE__, __LINE__, "bad regex %s", t[i + 5].s);
		} else {
			if (got.null || regexec(&re, a, 0, NULL, 0)) {
				show(&got, binary, a, sizeof(a));
				unit_fail(__FILE__, __LINE__, "got %s, want a match of /%s/", a,
					  t[i + 5].s);
			}
			regfree(&re);
		}
	} else if (!val_eq(&got, &want)) {
		show(&got, binary, a, sizeof(a));
		show(&want, binary, b, sizeof(b));
		unit_fail(__FILE__, __LINE__, "got %s, want %s", a, b);
	}
	if (rc == 0 && !got.null && !in.null) {
		check_copy(me, &cp, &in, &got, binary, 0);
		if (!binary)
			check_copy(me, &cp, &in, &got, 0, 1);
	}
	for (int k = i + 6; k < nt; k++) {
		char name[64];
		unsigned long long n;
		int d;

		if (sscanf(t[k].s, "det:%63[a-z_0-9]=%llu", name, &n) == 2 &&
		    (d = mask_detector_from_name(name)) >= 0) {
			if (counts.det[d] != n)
				unit_fail(__FILE__, __LINE__, "det:%s counted %llu, want %llu",
					  name, (unsigned long long)counts.det[d], n);
		} else if (sscanf(t[k].s, "cols=%llu", &n) == 1) {
			if (cols[0] != n)
				unit_fail(__FILE__, __LINE__, "cols counted %llu, want %llu",
					  (unsigned long long)cols[0], n);
		} else if (sscanf(t[k].s, "withheld=%llu", &n) == 1) {
			if (counts.withheld != n)
				unit_fail(__FILE__, __LINE__, "withheld counted %llu, want %llu",
					  (unsigned long long)counts.withheld, n);
		} else {
			unit_fail(__FILE__, __LINE__, "bad count %s", t[k].s);
		}
	}
cleanup:
	mask_engine_free(me);
	val_free(&in);
	val_free(&want);
	val_free(&got);
	buf_free(&body);
	buf_free(&out);
	free(mp);
	free(t);
	unit_end();
}

static int cases_filter(const struct dirent *d)
{
	size_t n = strlen(d->d_name);

	return n > 6 && !strcmp(d->d_name + n - 6, ".cases");
}

static void run_cases_dir(const char *dir)
{
	struct dirent **names;
	int nn = scandir(dir, &names, cases_filter, alphasort);

	unit_begin("cases directory");
	if (nn <= 0)
		unit_fail(__FILE__, __LINE__, "no .cases files in %s", dir);
	unit_end();
	for (int k = 0; k < nn; k++) {
		char path[1024], line[8192];
		FILE *f;
		int ln = 0;

		snprintf(path, sizeof(path), "%s/%s", dir, names[k]->d_name);
		f = fopen(path, "r");
		if (!f) {
			unit_begin("cases file");
			unit_fail(__FILE__, __LINE__, "%s: %s", path, strerror(errno));
			unit_end();
			free(names[k]);
			continue;
		}
		while (fgets(line, sizeof(line), f)) {
			char *p = line;

			ln++;
			while (*p == ' ' || *p == '\t')
				p++;
			if (!*p || *p == '\n' || *p == '#')
				continue;
			run_case(path, ln, p);
		}
		fclose(f);
		free(names[k]);
	}
	free(names);
}

/* ---- C tests ---- */

static void test_names(void)
{
	for (int s = 0; s < MASK_STYLE_COUNT; s++)
		CHECK_EQ_INT(mask_style_from_name(mask_style_name((enum mask_style)s)), s);
	for (int d = 0; d < DET_COUNT; d++)
		CHECK_EQ_INT(mask_detector_from_name(mask_detector_name((enum mask_detector)d)), d);
	CHECK_STREQ(mask_style_name(MASK_FORMAT_PRESERVING), "format_preserving");
	CHECK_STREQ(mask_detector_name(DET_US_SSN), "us_ssn");
	CHECK_STREQ(mask_detector_name(DET_CREDIT_CARD), "credit_card");
	CHECK_EQ_INT(mask_style_from_name("Redact"), -1);
	CHECK_EQ_INT(mask_detector_from_name("ssn"), -1);
	CHECK_EQ_INT(mask_style_from_name(NULL), -1);
}

static void test_context_from_name(void)
{
	static const struct {
		const char *name;
		unsigned want;
	} c[] = {
	    {"dob", 1u << DET_DOB},
	    {"DOB", 1u << DET_DOB},
	    {"birth_date", 1u << DET_DOB},
	    {"date_of_birth", 1u << DET_DOB},
	    {"DateOfBirth", 1u << DET_DOB},
	    {"birthdate", 1u << DET_DOB},
	    {"birthDate", 1u << DET_DOB},
	    {"Birthday", 1u << DET_DOB},
	    {"patient_dob", 1u << DET_DOB},
	    {"ssn", 1u << DET_US_SSN},
	    {"SSN", 1u << DET_US_SSN},
	    {"patient_ssn", 1u << DET_US_SSN},
	    {"social_security", 1u << DET_US_SSN},
	    {"social_security_number", 1u << DET_US_SSN},
	    {"SocialSecurityNumber", 1u << DET_US_SSN},
	    {"ss_num", 1u << DET_US_SSN},
	    {"lesson", 0},
	    {"classnum", 0},
	    {"dobby", 0},
	    {"name", 0},
	    {"created_at", 0},
	    {"", 0},
	};

	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		unit_where("%s", c[i].name);
		CHECK_EQ_INT(mask_context_from_name(c[i].name), c[i].want);
	}
	CHECK_EQ_INT(mask_context_from_name(NULL), 0);
}

static void test_engine_errors(void)
{
	struct mask_policy *mp = malloc(sizeof(*mp));
	struct mask_engine *me = NULL;
	char err[512];

	policy_default(mp);
	snprintf(mp->mrn_pattern, sizeof(mp->mrn_pattern), "MRN-[0-9");
	CHECK_EQ_INT(mask_engine_new(mp, KEY, &me, err, sizeof(err)), -1);
	CHECK(me == NULL);
	CHECK(strstr(err, "mrn_pattern") != NULL);
	/* with the MRN detector off its pattern is not compiled */
	mp->detectors = ALL_DETECTORS & ~(1u << DET_MRN);
	CHECK_EQ_INT(mask_engine_new(mp, KEY, &me, err, sizeof(err)), 0);
	mask_engine_free(me);
	me = NULL;
	policy_default(mp);
	mp->unknown_style = MASK_HASH;
	CHECK_EQ_INT(mask_engine_new(mp, KEY, &me, err, sizeof(err)), -1);
	CHECK(strstr(err, "unknown_style") != NULL);
	policy_default(mp);
	mp->nrules = 1;
	mp->rules[0].style = (enum mask_style)99;
	CHECK_EQ_INT(mask_engine_new(mp, KEY, &me, err, sizeof(err)), -1);
	policy_default(mp);
	mp->detectors = 0;
	CHECK_EQ_INT(mask_engine_new(mp, KEY, &me, err, sizeof(err)), 0);
	mask_engine_free(me);
	mask_engine_free(NULL);
	free(mp);
}

/* Masks one value by style through a one-column DataRow; the cell in *got. */
static int mask_one(struct mask_engine *me, int rule, uint32_t oid, int binary, const void *p,
		    size_t n, struct val *got)
{
	struct mask_colplan cp = {.rule = rule, .type_oid = oid, .format = (int16_t)binary};
	struct val in = {0};
	struct buf body = {0}, out = {0};
	struct mask_counts counts = {0};
	int rc;

	val_set(&in, p, n);
	row_body(&body, &in, 1);
	rc = mask_datarow(me, &cp, 1, body.data, body.len, &out, &counts);
	memset(got, 0, sizeof(*got));
	if (!rc && parse_datarow(out.data, out.len, 1, got))
		rc = -2;
	val_free(&in);
	buf_free(&body);
	buf_free(&out);
	return rc;
}

static struct mask_engine *engine_style(enum mask_style s)
{
	struct mask_policy *mp = malloc(sizeof(*mp));
	struct mask_engine *me;

	policy_default(mp);
	mp->nrules = 1;
	mp->rules[0].style = s;
	me = engine(mp);
	free(mp);
	return me;
}

static void test_hash_is_hmac_sha256(void)
{
	struct mask_engine *me = engine_style(MASK_HASH);
	uint8_t h[32];
	unsigned int hl = 0;
	char want[64] = "h:";
	struct val got;

	if (!me)
		return;
	HMAC(EVP_sha256(), KEY, 32, (const uint8_t *)"Jane Doe", 8, h, &hl);
	for (int i = 0; i < 16; i++)
		snprintf(want + 2 + 2 * i, 3, "%02x", h[i]);
	CHECK_EQ_INT(mask_one(me, 0, 25, 0, "Jane Doe", 8, &got), 0);
	CHECK_STREQ((char *)got.p, want);
	val_free(&got);
	/* deterministic, and the same in binary format for text types */
	CHECK_EQ_INT(mask_one(me, 0, 1043, 1, "Jane Doe", 8, &got), 0);
	CHECK_STREQ((char *)got.p, want);
	val_free(&got);
	mask_engine_free(me);
}

static int64_t test_days(int y, int m, int d)
{
	/* days since 2000-01-01, by counting: independent of mask_value.c's arithmetic */
	static const int md[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int64_t n = 0;

	for (int yy = 2000; yy < y; yy++)
		n += 365 + ((yy % 4 == 0 && yy % 100) || yy % 400 == 0);
	for (int yy = y; yy < 2000; yy++)
		n -= 365 + ((yy % 4 == 0 && yy % 100) || yy % 400 == 0);
	for (int mm = 1; mm < m; mm++)
		n += md[mm - 1] + (mm == 2 && ((y % 4 == 0 && y % 100) || y % 400 == 0));
	return n + d - 1;
}

/* hash and format_preserving key on the canonical text: text and binary inputs of one value
 * give the same masked value, each valid for its format */
static void test_hash_text_binary_agree(void)
{
	for (int s = 0; s < 2; s++) {
		struct mask_engine *me = engine_style(s ? MASK_FORMAT_PRESERVING : MASK_HASH);
		struct val a, b;
		int y, m, d;

		if (!me)
			return;
		unit_where("%s", s ? "format_preserving" : "hash");
		/* int4 */
		CHECK_EQ_INT(mask_one(me, 0, 23, 0, "12345", 5, &a), 0);
		CHECK_EQ_INT(mask_one(me, 0, 23, 1, "\0\0\x30\x39", 4, &b), 0);
		CHECK_EQ_INT(b.n, 4);
		CHECK_EQ_INT(strtoll((char *)a.p, NULL, 10), (int32_t)be32(b.p));
		if (s)
			CHECK_EQ_INT(a.n, 5);
		val_free(&a);
		val_free(&b);
		/* int8, negative */
		CHECK_EQ_INT(mask_one(me, 0, 20, 0, "-42", 3, &a), 0);
		CHECK_EQ_INT(mask_one(me, 0, 20, 1, "\xff\xff\xff\xff\xff\xff\xff\xd6", 8, &b), 0);
		CHECK_EQ_INT(b.n, 8);
		CHECK_EQ_INT(strtoll((char *)a.p, NULL, 10),
			     (int64_t)((uint64_t)be32(b.p) << 32 | be32(b.p + 4)));
		val_free(&a);
		val_free(&b);
		/* date: 1985-03-14 is day -5406 */
		CHECK_EQ_INT(test_days(1985, 3, 14), -5406);
		CHECK_EQ_INT(mask_one(me, 0, 1082, 0, "1985-03-14", 10, &a), 0);
		CHECK_EQ_INT(mask_one(me, 0, 1082, 1, "\xff\xff\xea\xe2", 4, &b), 0);
		CHECK_EQ_INT(sscanf((char *)a.p, "%d-%d-%d", &y, &m, &d), 3);
		CHECK_EQ_INT(test_days(y, m, d), (int32_t)be32(b.p));
		CHECK(y >= 1920 && y <= 2005);
		val_free(&a);
		val_free(&b);
		/* timestamptz: the same instant written with an offset, and in binary (UTC) */
		{
			int64_t us = (test_days(2024, 3, 14) * 86400 + 10 * 3600) * 1000000LL;
			uint8_t bin[8];

			for (int i = 0; i < 8; i++)
				bin[i] = (uint8_t)((uint64_t)us >> (56 - 8 * i));
			CHECK_EQ_INT(mask_one(me, 0, 1184, 0, "2024-03-14 11:00:00+01", 22, &a), 0);
			CHECK_EQ_INT(mask_one(me, 0, 1184, 1, bin, 8, &b), 0);
			if (a.p && b.n == 8) {
				int hh, mi, ss;
				int64_t bu = (int64_t)((uint64_t)be32(b.p) << 32 | be32(b.p + 4));

				CHECK_EQ_INT(sscanf((char *)a.p, "%d-%d-%d %d:%d:%d+00", &y, &m, &d,
						    &hh, &mi, &ss),
					     6);
				CHECK_EQ_INT(
				    (test_days(y, m, d) * 86400 + hh * 3600 + mi * 60 + ss) *
					1000000LL,
				    bu);
			}
			val_free(&a);
			val_free(&b);
		}
		/* uuid */
		{
			static const char u[] = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
			static const uint8_t ub[16] = {0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b,
						       0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9,
						       0xbd, 0x38, 0x0a, 0x11};
			char hex[40] = "";

			CHECK_EQ_INT(mask_one(me, 0, 2950, 0, u, 36, &a), 0);
			CHECK_EQ_INT(mask_one(me, 0, 2950, 1, ub, 16, &b), 0);
			CHECK_EQ_INT(b.n, 16);
			for (size_t i = 0; i < b.n && i < 16; i++)
				snprintf(hex + strlen(hex), 3, "%02x", b.p[i]);
			if (a.p && a.n == 36) {
				char flat[40];
				size_t k = 0;

				for (size_t i = 0; i < 36; i++)
					if (a.p[i] != '-')
						flat[k++] = (char)a.p[i];
				flat[k] = '\0';
				CHECK_STREQ(flat, hex);
			}
			val_free(&a);
			val_free(&b);
		}
		/* numeric: 123.45 */
		{
			static const uint8_t nb[] = {0, 2, 0, 0, 0, 0, 0, 2, 0, 123, 0x11, 0x94};

			CHECK_EQ_INT(mask_one(me, 0, 1700, 0, "123.45", 6, &a), 0);
			CHECK_EQ_INT(mask_one(me, 0, 1700, 1, nb, sizeof(nb), &b), 0);
			if (a.p && b.n >= 8) {
				/* decode the binary answer here */
				int nd = b.p[0] << 8 | b.p[1], w = (int16_t)(b.p[2] << 8 | b.p[3]);
				int sign = b.p[4] << 8 | b.p[5], ds = b.p[6] << 8 | b.p[7];
				double v = 0, want = strtod((char *)a.p, NULL);

				CHECK_EQ_INT(b.n, 8 + 2 * (size_t)nd);
				for (int i = 0; i < nd && 8 + 2 * (size_t)i + 1 < b.n; i++) {
					double g = b.p[8 + 2 * i] << 8 | b.p[9 + 2 * i], f = 1;

					for (int k = 0; k < w - i; k++)
						f *= 10000;
					for (int k = 0; k < i - w; k++)
						f /= 10000;
					v += g * f;
				}
				if (sign == 0x4000)
					v = -v;
				CHECK(v - want < 1e-6 && want - v < 1e-6);
				if (s) { /* same digits before and after the point */
					CHECK_EQ_INT(a.n, 6);
					CHECK_EQ_INT(ds, 2);
				}
			}
			val_free(&a);
			val_free(&b);
		}
		/* float8: 1.5 */
		{
			static const uint8_t fb[] = {0x3f, 0xf8, 0, 0, 0, 0, 0, 0};

			CHECK_EQ_INT(mask_one(me, 0, 701, 0, "1.5", 3, &a), 0);
			CHECK_EQ_INT(mask_one(me, 0, 701, 1, fb, 8, &b), 0);
			if (a.p && b.n == 8) {
				uint64_t u = (uint64_t)be32(b.p) << 32 | be32(b.p + 4);
				double x;

				memcpy(&x, &u, 8);
				CHECK(strtod((char *)a.p, NULL) == x);
			}
			val_free(&a);
			val_free(&b);
		}
		mask_engine_free(me);
	}
}

/* Two rows with one value differing must give different hashes; equal values equal ones. */
static void test_hash_deterministic(void)
{
	struct mask_engine *me = engine_style(MASK_HASH);
	struct val a, b, c;

	if (!me)
		return;
	CHECK_EQ_INT(mask_one(me, 0, 25, 0, "123-45-6789", 11, &a), 0);
	CHECK_EQ_INT(mask_one(me, 0, 25, 0, "123-45-6789", 11, &b), 0);
	CHECK_EQ_INT(mask_one(me, 0, 25, 0, "123-45-6788", 11, &c), 0);
	CHECK(val_eq(&a, &b));
	CHECK(!val_eq(&a, &c));
	val_free(&a);
	val_free(&b);
	val_free(&c);
	mask_engine_free(me);
}

static void test_datarow_lengths(void)
{
	struct mask_policy *mp = malloc(sizeof(*mp));
	struct mask_engine *me;
	struct mask_colplan cp[5] = {
	    {.rule = 0, .type_oid = 25, .format = 0},
	    {.rule = MASK_RULE_NONE, .type_oid = 23, .format = 1},
	    {.rule = 0, .type_oid = 25, .format = 0},
	    {.rule = MASK_RULE_NONE, .type_oid = 25, .format = 0},
	    {.rule = 1, .type_oid = 1082, .format = 1},
	};
	struct val in[5] = {{0}}, got[5] = {{0}};
	struct buf body = {0}, out = {0};
	struct mask_counts counts = {0};
	uint64_t cols[5] = {0};

	policy_default(mp);
	mp->nrules = 2;
	mp->rules[0].style = MASK_PARTIAL;
	mp->rules[0].keep_last = 4;
	mp->rules[1].style = MASK_REDACT;
	me = engine(mp);
	free(mp);
	if (!me)
		return;
	val_set(&in[0], "a much longer value than its mask 1234", 38);
	val_set(&in[1], "\0\0\0\x07", 4);
	in[2].null = 1;
	val_set(&in[3], "reach me at jane.doe@example.com or 555-123-4567 today", 54);
	val_set(&in[4], "\0\0\x10\x00", 4);
	counts.ncols = 5;
	counts.cols = cols;
	row_body(&body, in, 5);
	buf_append(&out, "prefix", 6); /* mask_datarow appends */
	CHECK_EQ_INT(mask_datarow(me, cp, 5, body.data, body.len, &out, &counts), 0);
	CHECK(out.len > 6 && !memcmp(out.data, "prefix", 6));
	if (out.len > 6 && !parse_datarow(out.data + 6, out.len - 6, 5, got)) {
		CHECK_STREQ((char *)got[0].p, "**********************************1234");
		CHECK_EQ_INT(got[1].n, 4);
		CHECK(!memcmp(got[1].p, "\0\0\0\x07", 4));
		CHECK(got[2].null);
		CHECK_STREQ((char *)got[3].p,
			    "reach me at ****.***@*******.*** or ***-***-4567 today");
		CHECK_EQ_INT(got[4].n, 4);
		CHECK_EQ_INT((int32_t)be32(got[4].p), -36524); /* 1900-01-01 */
	} else {
		CHECK(!"output frames");
	}
	CHECK_EQ_INT(cols[0], 1);
	CHECK_EQ_INT(cols[1], 0);
	CHECK_EQ_INT(cols[2], 0); /* NULL stays NULL, nothing to count */
	CHECK_EQ_INT(cols[3], 0); /* detectors count under det */
	CHECK_EQ_INT(cols[4], 1);
	CHECK_EQ_INT(counts.det[DET_EMAIL], 1);
	CHECK_EQ_INT(counts.det[DET_PHONE], 1);
	for (int i = 0; i < 5; i++) {
		val_free(&in[i]);
		val_free(&got[i]);
	}
	buf_free(&body);
	buf_free(&out);
	mask_engine_free(me);
}

static void test_datarow_fast_path(void)
{
	struct mask_policy *mp = malloc(sizeof(*mp));
	struct mask_engine *me;
	struct mask_colplan cp[3] = {
	    {.rule = MASK_RULE_NONE, .type_oid = 25},
	    {.rule = MASK_RULE_NONE, .type_oid = 23},
	    {.rule = MASK_RULE_NONE, .type_oid = 3802, .format = 1},
	};
	struct val in[3] = {{0}};
	struct buf body = {0}, out = {0};
	struct mask_counts counts = {0};

	policy_default(mp);
	me = engine(mp);
	free(mp);
	if (!me)
		return;
	val_set(&in[0], "nothing to see here, room 12, 3 pills", 37);
	val_set(&in[1], "123456789", 9); /* an int4 is not text: no detector */
	val_set(&in[2], "\1{\"a\": \"b\"}", 11);
	row_body(&body, in, 3);
	CHECK_EQ_INT(mask_datarow(me, cp, 3, body.data, body.len, &out, &counts), 0);
	CHECK_EQ_INT(out.len, body.len + 5);
	CHECK(out.len == body.len + 5 && out.data[0] == 'D' && be32(out.data + 1) == body.len + 4 &&
	      !memcmp(out.data + 5, body.data, body.len));
	for (int d = 0; d < DET_COUNT; d++)
		CHECK_EQ_INT(counts.det[d], 0);
	for (int i = 0; i < 3; i++)
		val_free(&in[i]);
	buf_free(&body);
	buf_free(&out);
	mask_engine_free(me);
}

static void test_datarow_malformed(void)
{
	static const struct {
		const char *why;
		const char *b;
		size_t n;
	} c[] = {
	    {"empty", "", 0},
	    {"one byte", "\0", 1},
	    {"count 2 for 1 column", "\0\2\0\0\0\1a\0\0\0\1b", 13},
	    {"count 0 for 1 column", "\0\0", 2},
	    {"negative count", "\xff\xff", 2},
	    {"length past the end", "\0\1\0\0\0\5ab", 8},
	    {"truncated length", "\0\1\0\0", 4},
	    {"length -2", "\0\1\xff\xff\xff\xfe", 6},
	    {"trailing bytes", "\0\1\0\0\0\1ab", 8},
	    {"huge length", "\0\1\x7f\xff\xff\xff", 6},
	};
	struct mask_policy *mp = malloc(sizeof(*mp));
	struct mask_engine *me;
	struct mask_colplan cp = {.rule = 0, .type_oid = 25};

	policy_default(mp);
	mp->nrules = 1;
	me = engine(mp);
	free(mp);
	if (!me)
		return;
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		struct buf out = {0};
		struct mask_counts counts = {0};

		unit_where("%s", c[i].why);
		CHECK_EQ_INT(
		    mask_datarow(me, &cp, 1, (const uint8_t *)c[i].b, c[i].n, &out, &counts), -1);
		CHECK_EQ_INT(out.len, 0);
		buf_free(&out);
	}
	mask_engine_free(me);
}

static void test_unmaskable(void)
{
	struct mask_policy *mp = malloc(sizeof(*mp));
	struct mask_engine *me;
	struct mask_colplan cp[3] = {
	    {.rule = MASK_RULE_NONE, .type_oid = 25},
	    {.rule = MASK_RULE_NONE, .type_oid = 25},
	    {.rule = 0, .type_oid = 16390, .format = 1},
	};
	struct val in[3] = {{0}}, got[3] = {{0}};
	struct buf body = {0}, out = {0};
	struct mask_counts counts = {0};
	uint64_t cols[3] = {0};

	snprintf(cp[2].label, sizeof(cp[2].label), "p");
	policy_default(mp);
	mp->nrules = 1;
	me = engine(mp);
	if (!me) {
		free(mp);
		return;
	}
	val_set(&in[0], "a", 1);
	val_set(&in[1], "b", 1);
	val_set(&in[2], "\0\0\0\1\0\0\0\0", 8);
	row_body(&body, in, 3);
	counts.ncols = 3;
	counts.cols = cols;
	CHECK_EQ_INT(mask_datarow(me, cp, 3, body.data, body.len, &out, &counts), 1);
	CHECK_EQ_INT(out.len, 0);
	CHECK_STREQ(counts.why,
		    "column 3 (\"p\", type oid 16390) cannot be masked in binary format");
	CHECK_EQ_INT(counts.withheld, 1);
	mask_engine_free(me);
	/* on_unmaskable: null sends NULL in its place */
	mp->on_unmaskable = UNMASKABLE_NULL;
	me = engine(mp);
	free(mp);
	if (!me)
		goto cleanup;
	memset(&counts, 0, sizeof(counts));
	memset(cols, 0, sizeof(cols));
	counts.ncols = 3;
	counts.cols = cols;
	CHECK_EQ_INT(mask_datarow(me, cp, 3, body.data, body.len, &out, &counts), 0);
	CHECK_EQ_INT(parse_datarow(out.data, out.len, 3, got), 0);
	CHECK(got[2].null);
	CHECK(got[0].p && got[0].p[0] == 'a');
	CHECK_EQ_INT(counts.withheld, 1);
	CHECK_EQ_INT(cols[2], 1);
	/* a NULL is never unmaskable */
	in[2].null = 1;
	row_body(&body, in, 3);
	out.len = 0;
	mask_engine_free(me);
	mp = malloc(sizeof(*mp));
	policy_default(mp);
	mp->nrules = 1;
	me = engine(mp);
	free(mp);
	if (me)
		CHECK_EQ_INT(mask_datarow(me, cp, 3, body.data, body.len, &out, &counts), 0);
cleanup:
	for (int i = 0; i < 3; i++) {
		val_free(&in[i]);
		val_free(&got[i]);
	}
	buf_free(&body);
	buf_free(&out);
	mask_engine_free(me);
}

static void put_bin_array(struct buf *b, uint32_t elem, int ndim, const int *dims,
			  const struct val *el, int n)
{
	int hasnull = 0;

	for (int i = 0; i < n; i++)
		hasnull |= el[i].null;
	put_be32(b, (uint32_t)ndim);
	put_be32(b, (uint32_t)hasnull);
	put_be32(b, elem);
	for (int d = 0; d < ndim; d++) {
		put_be32(b, (uint32_t)dims[d]);
		put_be32(b, 1);
	}
	for (int i = 0; i < n; i++) {
		if (el[i].null) {
			put_be32(b, UINT32_MAX);
			continue;
		}
		put_be32(b, (uint32_t)el[i].n);
		buf_append(b, el[i].p, el[i].n);
	}
}

/* A binary array's elements, checked frame by frame. */
static int parse_bin_array(const struct val *v, uint32_t elem, int *ndim, struct val *el, int max)
{
	size_t off;
	int items = 1;

	if (v->null || v->n < 12 || be32(v->p + 8) != elem)
		return -1;
	*ndim = (int)be32(v->p);
	off = 12 + 8 * (size_t)*ndim;
	if (*ndim < 0 || *ndim > 6 || v->n < off)
		return -1;
	for (int d = 0; d < *ndim; d++)
		items *= (int)be32(v->p + 12 + 8 * d);
	if (!*ndim)
		items = 0;
	if (items > max)
		return -1;
	for (int i = 0; i < items; i++) {
		int32_t l;

		if (v->n - off < 4)
			return -1;
		l = (int32_t)be32(v->p + off);
		off += 4;
		if (l == -1) {
			el[i].null = 1;
			continue;
		}
		if (l < 0 || (size_t)l > v->n - off)
			return -1;
		val_set(&el[i], v->p + off, (size_t)l);
		off += (size_t)l;
	}
	return off == v->n ? items : -1;
}

static void test_binary_arrays(void)
{
	struct mask_engine *me = engine_style(MASK_REDACT);
	struct mask_policy *mp = malloc(sizeof(*mp));
	struct mask_engine *det;
	struct val el[4] = {{0}}, out[4] = {{0}}, got;
	struct buf arr = {0};
	int dims[2] = {2, 2}, nd = 0;

	policy_default(mp);
	det = engine(mp);
	free(mp);
	if (!me || !det)
		goto cleanup;
	/* int4[2][2] with a NULL: zeros, NULL kept, dimensions kept */
	val_set(&el[0], "\0\0\0\1", 4);
	val_set(&el[1], "\0\0\0\2", 4);
	el[2].null = 1;
	val_set(&el[3], "\xff\xff\xff\xff", 4);
	put_bin_array(&arr, 23, 2, dims, el, 4);
	CHECK_EQ_INT(mask_one(me, 0, 1007, 1, arr.data, arr.len, &got), 0);
	CHECK_EQ_INT(parse_bin_array(&got, 23, &nd, out, 4), 4);
	CHECK_EQ_INT(nd, 2);
	CHECK(got.n >= 16 && be32(got.p + 4) == 1 && be32(got.p + 12) == 2 &&
	      be32(got.p + 20) == 2);
	for (int i = 0; i < 4; i++) {
		if (i == 2)
			CHECK(out[i].null);
		else
			CHECK(out[i].n == 4 && be32(out[i].p) == 0);
		val_free(&out[i]);
		val_free(&el[i]);
	}
	val_free(&got);
	/* text[] with identifiers in elements, detectors only */
	arr.len = 0;
	val_set(&el[0], "call 555-123-4567", 17);
	val_set(&el[1], "clean", 5);
	el[2].null = 1;
	val_set(&el[3], "ssn 123-45-6789", 15);
	put_bin_array(&arr, 25, 1, (int[]){4}, el, 4);
	CHECK_EQ_INT(mask_one(det, MASK_RULE_NONE, 1009, 1, arr.data, arr.len, &got), 0);
	CHECK_EQ_INT(parse_bin_array(&got, 25, &nd, out, 4), 4);
	CHECK(out[0].p && !strcmp((char *)out[0].p, "call ***-***-4567"));
	CHECK(out[1].p && !strcmp((char *)out[1].p, "clean"));
	CHECK(out[2].null);
	CHECK(out[3].p && !strcmp((char *)out[3].p, "ssn ***-**-6789"));
	for (int i = 0; i < 4; i++) {
		val_free(&out[i]);
		val_free(&el[i]);
	}
	val_free(&got);
	/* an element type that does not match the array type is unmaskable */
	arr.len = 0;
	val_set(&el[0], "x", 1);
	put_bin_array(&arr, 16390, 1, (int[]){1}, el, 1);
	CHECK_EQ_INT(mask_one(me, 0, 1009, 1, arr.data, arr.len, &got), 1);
	val_free(&el[0]);
	/* malformed: more items than bytes */
	arr.len = 0;
	put_bin_array(&arr, 25, 1, (int[]){1000000}, el, 0);
	CHECK_EQ_INT(mask_one(me, 0, 1009, 1, arr.data, arr.len, &got), 1);
cleanup:
	buf_free(&arr);
	mask_engine_free(me);
	mask_engine_free(det);
}

/* ---- COPY ---- */

static void put_d(struct buf *b, const char *s)
{
	buf_append(b, s, strlen(s));
}

static void test_copy_text_roundtrip(void)
{
	struct mask_policy *mp = malloc(sizeof(*mp));
	struct mask_engine *me;
	struct mask_colplan cp[3] = {
	    {.rule = 0, .type_oid = 25},
	    {.rule = MASK_RULE_NONE, .type_oid = 25},
	    {.rule = MASK_RULE_NONE, .type_oid = 23},
	};
	struct mask_copy opt = {.format = 0, .delim = '\t', .null_str = "\\N"};
	struct buf in = {0}, out = {0};
	struct mask_counts counts = {0};
	uint64_t cols[3] = {0};
	struct val f[3] = {{0}};
	const uint8_t *p;
	size_t off = 0;

	policy_default(mp);
	mp->nrules = 1;
	mp->rules[0].style = MASK_PARTIAL;
	mp->rules[0].keep_first = 1;
	me = engine(mp);
	free(mp);
	if (!me)
		return;
	counts.ncols = 3;
	counts.cols = cols;
	/* two rows in one message: escapes, a NULL, a detector hit, a clean row */
	put_d(&in, "Jane\\tDoe\tline1\\nssn 123-45-6789\t42\n");
	put_d(&in, "\\N\tclean\\\\text\t7\n");
	CHECK_EQ_INT(mask_copydata(me, cp, 3, &opt, in.data, in.len, &out, &counts), 0);
	CHECK(out.len > 5 && out.data[0] == 'd' && be32(out.data + 1) == out.len - 1);
	p = out.data + 5;
	for (int row = 0; row < 2 && out.len > 5; row++) {
		const uint8_t *nl = memchr(p + off, '\n', out.len - 5 - off);

		if (!nl) {
			CHECK(!"a row ends with a newline");
			break;
		}
		CHECK_EQ_INT(copy_text_fields(p + off, (size_t)(nl - p) - off, '\t', "\\N", f, 3),
			     3);
		if (row == 0) {
			CHECK_STREQ((char *)f[0].p, "J*******"); /* "Jane\tDoe": 8 characters */
			CHECK_STREQ((char *)f[1].p, "line1\nssn ***-**-6789");
			CHECK_STREQ((char *)f[2].p, "42");
		} else {
			CHECK(f[0].null);
			CHECK_STREQ((char *)f[1].p, "clean\\text");
			CHECK_STREQ((char *)f[2].p, "7");
		}
		for (int i = 0; i < 3; i++)
			val_free(&f[i]);
		off = (size_t)(nl - p) + 1;
	}
	CHECK_EQ_INT(off, out.len - 5);
	CHECK_EQ_INT(cols[0], 1);
	CHECK_EQ_INT(counts.det[DET_US_SSN], 1);
	/* a masked value equal to the null marker must not read back as NULL */
	{
		struct mask_copy o2 = {.format = 0, .delim = '\t', .null_str = "***"};
		struct mask_colplan c1 = {.rule = 0, .type_oid = 25};
		struct mask_engine *red = engine_style(MASK_REDACT);

		out.len = 0;
		if (red) {
			CHECK_EQ_INT(
			    mask_copydata(red, &c1, 1, &o2, (const uint8_t *)"x\n", 2, &out, NULL),
			    0);
			CHECK(out.len == 5 + 5 && !memcmp(out.data + 5, "\\***\n", 5));
		}
		mask_engine_free(red);
	}
	/* rows of no columns (SELECT FROM t): empty lines in COPY, a bare count in a DataRow */
	out.len = 0;
	CHECK_EQ_INT(mask_copydata(me, NULL, 0, &opt, (const uint8_t *)"\n\r\n", 3, &out, NULL), 0);
	CHECK(out.len == 8 && !memcmp(out.data + 5, "\n\r\n", 3));
	out.len = 0;
	CHECK_EQ_INT(mask_datarow(me, NULL, 0, (const uint8_t *)"\0\0", 2, &out, NULL), 0);
	CHECK(out.len == 7 && !memcmp(out.data, "D\0\0\0\6\0\0", 7));
	/* malformed: a row without its newline, too few and too many fields */
	{
		static const char *bad[] = {"a\tb\t1", "a\tb\n", "a\tb\t1\t2\n", "a\tb\t1\nc"};

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			unit_where("malformed %zu", i);
			out.len = 0;
			CHECK_EQ_INT(mask_copydata(me, cp, 3, &opt, (const uint8_t *)bad[i],
						   strlen(bad[i]), &out, &counts),
				     -1);
			CHECK_EQ_INT(out.len, 0);
		}
	}
	buf_free(&in);
	buf_free(&out);
	mask_engine_free(me);
}

static void test_copy_csv_roundtrip(void)
{
	struct mask_policy *mp = malloc(sizeof(*mp));
	struct mask_engine *me;
	struct mask_colplan cp[3] = {
	    {.rule = 0, .type_oid = 25},
	    {.rule = MASK_RULE_NONE, .type_oid = 25},
	    {.rule = MASK_RULE_NONE, .type_oid = 1082},
	};
	struct mask_copy opt = {
	    .format = 1, .delim = ',', .quote = '"', .escape = '"', .null_str = "", .header = 1};
	struct buf out = {0};
	struct mask_counts counts = {0};
	struct val f[3] = {{0}};
	const char *hdr = "name,note,seen\n";
	const char *rows =
	    "\"Doe, Jane\",\"she said \"\"call 555-123-4567\"\"\nthen left\",2024-01-02\n"
	    ",\"\",\n";
	size_t i;

	policy_default(mp);
	mp->nrules = 1;
	mp->rules[0].style = MASK_HASH;
	me = engine(mp);
	free(mp);
	if (!me)
		return;
	/* the header arrives alone and passes once */
	CHECK_EQ_INT(
	    mask_copydata(me, cp, 3, &opt, (const uint8_t *)hdr, strlen(hdr), &out, &counts), 0);
	CHECK(out.len == 5 + strlen(hdr) && !memcmp(out.data + 5, hdr, strlen(hdr)));
	CHECK_EQ_INT(opt.header_done, 1);
	out.len = 0;
	CHECK_EQ_INT(
	    mask_copydata(me, cp, 3, &opt, (const uint8_t *)rows, strlen(rows), &out, &counts), 0);
	CHECK(out.len > 5 && be32(out.data + 1) == out.len - 1);
	i = 5;
	CHECK_EQ_INT(copy_csv_fields(out.data, out.len, &i, ',', '"', '"', "", f, 3), 3);
	CHECK(f[0].p && !strncmp((char *)f[0].p, "h:", 2) && f[0].n == 34);
	CHECK_STREQ((char *)f[1].p, "she said \"call ***-***-4567\"\nthen left");
	CHECK_STREQ((char *)f[2].p, "2024-01-02");
	for (int k = 0; k < 3; k++)
		val_free(&f[k]);
	/* NULL, an empty string (quoted: not NULL), NULL */
	CHECK_EQ_INT(copy_csv_fields(out.data, out.len, &i, ',', '"', '"', "", f, 3), 3);
	CHECK(f[0].null);
	CHECK(!f[1].null && f[1].n == 0);
	CHECK(f[2].null);
	CHECK_EQ_INT(i, out.len);
	for (int k = 0; k < 3; k++)
		val_free(&f[k]);
	CHECK_EQ_INT(counts.det[DET_PHONE], 1);
	/* a backslash escape character and a custom delimiter and null */
	{
		struct mask_copy o2 = {
		    .format = 1, .delim = ';', .quote = '\'', .escape = '\\', .null_str = "NULL"};
		const char *r = "'it\\'s jane@example.org';NULL;1999-12-31\n";

		out.len = 0;
		CHECK_EQ_INT(mask_copydata(me, (struct mask_colplan[]){cp[1], cp[1], cp[2]}, 3, &o2,
					   (const uint8_t *)r, strlen(r), &out, &counts),
			     0);
		i = 5;
		CHECK_EQ_INT(copy_csv_fields(out.data, out.len, &i, ';', '\'', '\\', "NULL", f, 3),
			     3);
		CHECK_STREQ((char *)f[0].p, "it's ****@*******.***");
		CHECK(f[1].null);
		for (int k = 0; k < 3; k++)
			val_free(&f[k]);
	}
	/* a quoted field still open at the end of the message */
	out.len = 0;
	CHECK_EQ_INT(mask_copydata(me, cp, 3, &opt, (const uint8_t *)"\"a,b\n", 5, &out, &counts),
		     -1);
	CHECK_EQ_INT(out.len, 0);
	buf_free(&out);
	mask_engine_free(me);
}

static void test_copy_binary_roundtrip(void)
{
	struct mask_policy *mp = malloc(sizeof(*mp));
	struct mask_engine *me;
	struct mask_colplan cp[3] = {
	    {.rule = 0, .type_oid = 23},
	    {.rule = MASK_RULE_NONE, .type_oid = 25},
	    {.rule = 0, .type_oid = 1042},
	};
	struct mask_copy opt = {.format = 2};
	struct buf in = {0}, out = {0};
	struct mask_counts counts = {0};
	const uint8_t *p;
	size_t n, off;

	policy_default(mp);
	mp->nrules = 1;
	mp->rules[0].style = MASK_REDACT;
	me = engine(mp);
	free(mp);
	if (!me)
		return;
	/* first message: signature, flags, extension area (4 bytes), one tuple */
	buf_append(&in, "PGCOPY\n\377\r\n\0", 11);
	put_be32(&in, 0);
	put_be32(&in, 4);
	buf_append(&in, "ext!", 4);
	put_be16(&in, 3);
	put_be32(&in, 4);
	buf_append(&in, "\0\0\x30\x39", 4);
	put_be32(&in, 21);
	buf_append(&in, "mail bob@example.com.", 21);
	put_be32(&in, UINT32_MAX);
	CHECK_EQ_INT(mask_copydata(me, cp, 3, &opt, in.data, in.len, &out, &counts), 0);
	CHECK_EQ_INT(opt.header_done, 1);
	p = out.data + 5;
	n = out.len - 5;
	CHECK(out.len > 5 && be32(out.data + 1) == out.len - 1);
	CHECK(n >= 23 && !memcmp(p, in.data, 23));
	off = 23;
	if (n >= off + 2 + 4 + 4 + 4) {
		CHECK_EQ_INT(p[off] << 8 | p[off + 1], 3);
		off += 2;
		CHECK_EQ_INT(be32(p + off), 4);
		CHECK_EQ_INT(be32(p + off + 4), 0);
		off += 8;
		CHECK_EQ_INT(be32(p + off), 21);
		CHECK(n >= off + 4 + 21 && !memcmp(p + off + 4, "mail ***@*******.***.", 21));
		off += 4 + 21;
		CHECK_EQ_INT(be32(p + off), UINT32_MAX);
		off += 4;
		CHECK_EQ_INT(off, n);
	}
	/* the trailer alone */
	out.len = 0;
	CHECK_EQ_INT(mask_copydata(me, cp, 3, &opt, (const uint8_t *)"\xff\xff", 2, &out, &counts),
		     0);
	CHECK(out.len == 7 && !memcmp(out.data, "d\0\0\0\6\xff\xff", 7));
	/* malformed: bad signature, a tuple of 2 fields, bytes after the trailer */
	{
		struct mask_copy fresh = {.format = 2};

		out.len = 0;
		CHECK_EQ_INT(mask_copydata(me, cp, 3, &fresh, (const uint8_t *)"PGCOPX\n\377\r\n\0",
					   11, &out, &counts),
			     -1);
		CHECK_EQ_INT(mask_copydata(me, cp, 3, &opt, (const uint8_t *)"\0\2\0\0\0\0\0\0\0\0",
					   10, &out, &counts),
			     -1);
		CHECK_EQ_INT(
		    mask_copydata(me, cp, 3, &opt, (const uint8_t *)"\xff\xff\0", 3, &out, &counts),
		    -1);
		CHECK_EQ_INT(out.len, 0);
	}
	buf_free(&in);
	buf_free(&out);
	mask_engine_free(me);
}

static void test_counts_json_values(void)
{
	struct mask_colplan cp[4] = {{0}};
	uint64_t cols[4] = {2, 0, 3, 1};
	struct mask_counts c = {.ncols = 4, .cols = cols};
	struct buf out = {0};
	char s[512];

	snprintf(cp[0].label, sizeof(cp[0].label), "patients.ssn");
	snprintf(cp[1].label, sizeof(cp[1].label), "patients.name");
	snprintf(cp[2].label, sizeof(cp[2].label), "patients.ssn");
	snprintf(cp[3].label, sizeof(cp[3].label), "a\"b");
	c.det[DET_EMAIL] = 4;
	mask_counts_json(cp, &c, &out);
	snprintf(s, sizeof(s), "%.*s", (int)out.len, out.data ? (char *)out.data : "");
	CHECK_STREQ(s,
		    "{\"columns\":{\"patients.ssn\":5,\"a\\\"b\":1},\"detectors\":{\"email\":4}}");
	buf_free(&out);
	/* nothing masked: nothing appended */
	memset(cols, 0, sizeof(cols));
	memset(c.det, 0, sizeof(c.det));
	mask_counts_json(cp, &c, &out);
	CHECK_EQ_INT(out.len, 0);
	buf_free(&out);
}

/* Every detector output inside JSON stays JSON: strings, escapes and numbers. */
static void test_json_stays_json(void)
{
	static const char *docs[] = {
	    "{\"note\": \"call 555-123-4567 or mail jane.doe@example.com\"}",
	    "{\"card\": 4111111111111111, \"n\": 1}",
	    "[4111111111111111]",
	    "{\"s\": \"line\\njane@example.com\\t\"}",
	    "{\"s\": \"\\u0041jane@example.com\"}",
	    "{\"ip\": \"10.0.0.1\", \"mrn\": \"MRN-12345678\"}",
	    "{\"jane@example.com\": true}",
	    "{\"deep\": [{\"x\": [\"123-45-6789\", 4111111111111111e0]}]}",
	};
	for (int s = 0; s < 4; s++) {
		static const enum mask_style st[] = {MASK_PARTIAL, MASK_REDACT, MASK_HASH,
						     MASK_FORMAT_PRESERVING};
		struct mask_policy *mp = malloc(sizeof(*mp));
		struct mask_engine *me;

		policy_default(mp);
		mp->detector_style = st[s];
		me = engine(mp);
		free(mp);
		if (!me)
			return;
		for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
			for (int jb = 0; jb < 3; jb++) {
				struct val got;
				char in[512];
				size_t n;
				struct json_object *o;

				/* json text, jsonb text, jsonb binary (version byte) */
				n = (size_t)snprintf(in, sizeof(in), "%s%s", jb == 2 ? "\1" : "",
						     docs[i]);
				unit_where("%s %s %d", mask_style_name(st[s]), docs[i], jb);
				CHECK_EQ_INT(mask_one(me, MASK_RULE_NONE, jb ? 3802 : 114, jb == 2,
						      in, n, &got),
					     0);
				if (!got.p)
					continue;
				CHECK(memcmp(got.p, in, n) || got.n != n);
				o = json_tokener_parse((char *)got.p + (jb == 2));
				CHECK(o != NULL);
				json_object_put(o);
				CHECK(!strstr((char *)got.p, "jane@example.com"));
				CHECK(!strstr((char *)got.p, "4111111111111111"));
				CHECK(!strstr((char *)got.p, "MRN-12345678"));
				val_free(&got);
			}
		}
		mask_engine_free(me);
	}
}

/* Rows whose masked values are far longer or shorter than the originals, many columns. */
static void test_datarow_wide(void)
{
	enum { N = 300 };
	struct mask_policy *mp = malloc(sizeof(*mp));
	struct mask_engine *me;
	struct mask_colplan *cp = calloc(N, sizeof(*cp));
	struct val *in = calloc(N, sizeof(*in)), *got = calloc(N, sizeof(*got));
	struct buf body = {0}, out = {0};
	struct mask_counts counts = {0};

	policy_default(mp);
	mp->nrules = 1;
	mp->rules[0].style = MASK_HASH;
	me = engine(mp);
	free(mp);
	if (!me)
		goto cleanup;
	for (int i = 0; i < N; i++) {
		char v[64];

		cp[i].rule = i % 3 ? MASK_RULE_NONE : 0;
		cp[i].type_oid = 25;
		snprintf(v, sizeof(v), i % 5 ? "v%d" : "tell %d@example.com now", i);
		val_set(&in[i], v, strlen(v));
	}
	row_body(&body, in, N);
	CHECK_EQ_INT(mask_datarow(me, cp, N, body.data, body.len, &out, &counts), 0);
	CHECK_EQ_INT(parse_datarow(out.data, out.len, N, got), 0);
	for (int i = 0; i < N; i++) {
		if (i % 3 == 0)
			CHECK(got[i].n == 34 && !memcmp(got[i].p, "h:", 2));
		else if (i % 5 == 0)
			CHECK(got[i].p && strstr((char *)got[i].p, "@*******.***"));
		else
			CHECK(val_eq(&got[i], &in[i]));
	}
cleanup:
	for (int i = 0; i < N; i++) {
		val_free(&in[i]);
		val_free(&got[i]);
	}
	free(in);
	free(got);
	free(cp);
	buf_free(&body);
	buf_free(&out);
	mask_engine_free(me);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s CASES_DIR\n", argv[0]);
		return 2;
	}
	run_cases_dir(argv[1]);
	UNIT_RUN(test_names);
	UNIT_RUN(test_context_from_name);
	UNIT_RUN(test_engine_errors);
	UNIT_RUN(test_hash_is_hmac_sha256);
	UNIT_RUN(test_hash_text_binary_agree);
	UNIT_RUN(test_hash_deterministic);
	UNIT_RUN(test_datarow_lengths);
	UNIT_RUN(test_datarow_fast_path);
	UNIT_RUN(test_datarow_malformed);
	UNIT_RUN(test_datarow_wide);
	UNIT_RUN(test_unmaskable);
	UNIT_RUN(test_binary_arrays);
	UNIT_RUN(test_copy_text_roundtrip);
	UNIT_RUN(test_copy_csv_roundtrip);
	UNIT_RUN(test_copy_binary_roundtrip);
	UNIT_RUN(test_counts_json_values);
	UNIT_RUN(test_json_stays_json);
	mask_thread_release();
	return unit_report();
}
