/* Masking in the daemon (see mask_live.h): engine lifecycle, key, and per-result column plans. */
#include "mask_live.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"

#define TEXT_OID 25

static struct masking *g_cur;

static int load_key(const char *path, int make, uint8_t key[32], char *err, size_t errn)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

	if (fd >= 0) {
		uint8_t extra;
		ssize_t n = read(fd, key, 32);

		/* a file of exactly 32 bytes: anything else is a mistake worth refusing */
		if (n == 32 && read(fd, &extra, 1) == 0) {
			close(fd);
			return 0;
		}
		close(fd);
		snprintf(err, errn, "%s: the masking key must be exactly 32 bytes", path);
		return -EINVAL;
	}
	if (errno != ENOENT || !make) {
		snprintf(err, errn, "cannot read the masking key %s: %s", path, strerror(errno));
		return -errno;
	}
	if (RAND_bytes(key, 32) != 1) {
		snprintf(err, errn, "cannot make a masking key: no randomness");
		return -EIO;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0400);
	if (fd < 0 || write(fd, key, 32) != 32 || fsync(fd)) {
		snprintf(err, errn, "cannot write the masking key %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -EIO;
	}
	close(fd);
	log_info("generated the masking key %s (mode 0400): hashed values are stable while it "
		 "stays",
		 path);
	return 0;
}

int masking_read_key(const struct mask_policy *mp, const char *state_dir, uint8_t key[32],
		     char *err, size_t errn)
{
	char path[600];

	if (mp->hmac_key_file[0])
		snprintf(path, sizeof(path), "%s", mp->hmac_key_file);
	else
		snprintf(path, sizeof(path), "%s/mask.key", state_dir);
	return load_key(path, !mp->hmac_key_file[0], key, err, errn);
}

int masking_install(const struct mask_policy *mp, const uint8_t key[32], char *err, size_t errn)
{
	static uint64_t gens;
	struct masking *m;
	int r;

	if (!mp->enabled) {
		masking_put(g_cur);
		g_cur = NULL;
		return 0;
	}
	m = calloc(1, sizeof(*m));
	if (!m) {
		snprintf(err, errn, "out of memory");
		return -ENOMEM;
	}
	m->refs = 1;
	m->gen = ++gens;
	m->mp = *mp;
	r = mask_engine_new(&m->mp, key, &m->me, err, errn);
	if (r) {
		free(m);
		return -EINVAL;
	}
	masking_put(g_cur);
	g_cur = m;
	return 0;
}

int masking_load(const struct mask_policy *mp, const char *state_dir, char *err, size_t errn)
{
	uint8_t key[32];
	int r;

	if (!mp->enabled)
		return masking_install(mp, NULL, err, errn);
	r = masking_read_key(mp, state_dir, key, err, errn);
	if (!r)
		r = masking_install(mp, key, err, errn);
	explicit_bzero(key, sizeof(key));
	return r;
}

void masking_stop(void)
{
	masking_put(g_cur);
	g_cur = NULL;
}

struct masking *masking_get(void)
{
	if (g_cur)
		g_cur->refs++;
	return g_cur;
}

int masking_enabled(void)
{
	return g_cur != NULL;
}

void masking_put(struct masking *m)
{
	if (!m || --m->refs > 0)
		return;
	mask_engine_free(m->me);
	free(m);
}

/* ---- statement plans ---- */

struct mplan *mplan_build(const struct masking *m, const struct catalog *cat, const char *sql,
			  size_t len, const char (*shadow)[64], int nshadow)
{
	struct mplan *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->refs = 1;
	maskplan_build_ex(sql, len, cat, &m->mp, shadow, nshadow, &p->p);
	return p;
}

struct mplan *mplan_unknown(void)
{
	struct mplan *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->refs = 1;
	p->p.returns_rows = 1;
	p->p.all_unknown = 1;
	return p;
}

struct mplan *mplan_ref(struct mplan *p)
{
	if (p)
		p->refs++;
	return p;
}

void mplan_put(struct mplan *p)
{
	if (!p || --p->refs > 0)
		return;
	maskplan_free(&p->p);
	free(p);
}

/* ---- result plans ---- */

static void set_label(struct mask_colplan *c, const char *table, const char *column)
{
	snprintf(c->label, sizeof(c->label), "%s.%s", table, column);
}

/* The stronger of two column verdicts: unknown and rules beat none; between rules, the
 * policy's order of strength (null > redact > hash > format_preserving > partial). */
static int style_rank(const struct mask_policy *mp, int rule)
{
	static const int rank[MASK_STYLE_COUNT] = {
	    [MASK_NULL] = 5, [MASK_REDACT] = 4, [MASK_HASH] = 3,
	    [MASK_FORMAT_PRESERVING] = 2, [MASK_PARTIAL] = 1};

	if (rule == MASK_RULE_NONE || rule == MASK_RULE_FREE)
		return 0; /* free text is the detectors' when it is the column itself */
	if (rule == MASK_RULE_UNKNOWN)
		return 4; /* unknown_style is redact or null */
	return rule >= 0 && rule < mp->nrules ? rank[mp->rules[rule].style] : 4;
}

/* The catalog's type of "table.column" (an unqualified table: every schema's must agree). */
static uint32_t source_type(const struct catalog *cat, const char *source)
{
	char t[CAT_NAME * 2 + 2];
	const struct cat_rel *rels[8];
	const char *dot;
	uint32_t type = 0;
	int n;

	if (!cat || !(dot = strrchr(source, '.')) || (size_t)(dot - source) >= sizeof(t))
		return 0;
	memcpy(t, source, (size_t)(dot - source));
	t[dot - source] = 0;
	n = cat_rels_by_name(cat, NULL, t, rels, 8);
	for (int i = 0; i < n && i < 8; i++) {
		const struct cat_col *c = cat_col_by_name(rels[i], dot + 1);

		if (!c || (type && c->type_oid != type))
			return 0;
		type = c->type_oid;
	}
	return type;
}

/* Room for n column plans and their counts. */
static int result_alloc(struct mask_result *r, int n)
{
	memset(r, 0, sizeof(*r));
	r->cols = calloc((size_t)(n ? n : 1), sizeof(*r->cols));
	r->counts.cols = calloc((size_t)(n ? n : 1), sizeof(*r->counts.cols));
	if (!r->cols || !r->counts.cols) {
		mask_result_free(r);
		return -ENOMEM;
	}
	r->ncols = n;
	r->counts.ncols = n;
	return 0;
}

/* What a column's rule means for a value: free text (a free_text rule, or a text column no
 * rule names: MASK_RULE_FREE) is the detectors' when it is the column itself and redacted when
 * computed from it; a computed value of a keyed, deterministic style
 * (hash, format_preserving) is redacted, or it would be an oracle (CASE WHEN false THEN email
 * ELSE 'guess' END hashes the guess like an email). */
static int effective_rule(const struct mask_policy *mp, int rule, int derived)
{
	if (rule == MASK_RULE_FREE)
		return derived ? MASK_RULE_UNKNOWN : MASK_RULE_NONE;
	if (rule < 0 || rule >= mp->nrules)
		return rule;
	if (mp->rules[rule].free_text)
		return derived ? MASK_RULE_UNKNOWN : MASK_RULE_NONE;
	if (derived && (mp->rules[rule].style == MASK_HASH ||
			mp->rules[rule].style == MASK_FORMAT_PRESERVING))
		return MASK_RULE_UNKNOWN;
	return rule;
}

/* A relation column's rule, kept: working it out plans the relation's columns (a view's whole
 * definition), and the same few columns come back in every result. Direct-mapped, keyed by
 * the catalog and engine it was worked out under; the loop thread's. */
struct relcol_memo {
	uint64_t cat_gen, mask_gen;
	uint32_t oid;
	int16_t attnum;
	int rule, derived;
};
static struct relcol_memo g_relcol[1024];

static int relcol_rule(const struct masking *m, const struct catalog *cat,
		       const struct cat_rel *rel, int16_t attnum, int *derived)
{
	uint64_t cg = cat_gen(cat);
	struct relcol_memo *e = &g_relcol[(rel->oid * 31u + (uint16_t)attnum + cg * 7u) &
					  (sizeof(g_relcol) / sizeof(g_relcol[0]) - 1)];

	if (e->cat_gen == cg && e->mask_gen == m->gen && e->oid == rel->oid &&
	    e->attnum == attnum && cg && m->gen) {
		*derived = e->derived;
		return e->rule;
	}
	e->rule = maskplan_relcol(cat, &m->mp, rel, attnum, &e->derived);
	e->cat_gen = cg;
	e->mask_gen = m->gen;
	e->oid = rel->oid;
	e->attnum = attnum;
	*derived = e->derived;
	return e->rule;
}

/* A column's type as masking knows types (PostgreSQL's OIDs, see mask_colplan): another
 * engine's by its class, as the PostgreSQL type whose text reads the same (0: none, so a
 * masked value of it is unmaskable and the detectors pass it by). */
static uint32_t col_mask_type(const struct col_desc *c)
{
	static const uint32_t by_class[] = {
	    [COL_TEXT] = TEXT_OID,
	    [COL_JSON] = 114,
	    [COL_XML] = 142,
	    [COL_BYTES] = 17,
	    [COL_BOOL] = 16,
	    [COL_INT] = 20,
	    [COL_NUMERIC] = 1700,
	    [COL_FLOAT] = 701,
	    [COL_DATE] = 1082,
	    [COL_TIMESTAMP] = 1114,
	    [COL_TIME] = 1083,
	    [COL_INET] = 869,
	    [COL_UUID] = 2950,
	};

	if (c->engine == COL_ENGINE_PG)
		return c->type;
	return (size_t)c->cls < sizeof(by_class) / sizeof(by_class[0]) ? by_class[c->cls] : 0;
}

int masking_plan_rows(struct mask_result *r, const struct masking *m, const struct catalog *cat,
		      const struct maskplan *sql, const struct col_desc *f, int n,
		      const struct row_codec *codec)
{
	const struct mask_policy *mp = &m->mp;
	int by_position = sql && !sql->all_unknown && sql->ncols == n;

	if (result_alloc(r, n))
		return -ENOMEM;
	if (codec)
		r->codec = *codec;
	for (int i = 0; i < n; i++) {
		struct mask_colplan *c = &r->cols[i];
		int rule = MASK_RULE_UNKNOWN, derived = 0, direct = 0;
		const char *srccol = NULL;

		c->type_oid = col_mask_type(&f[i]);
		c->format = f[i].format;
		if (f[i].table_id) {
			/* The server says the value is this table's (or view's) column itself:
			 * authoritative whatever the statement called it. */
			const struct cat_rel *rel = cat ? cat_rel_by_oid(cat, f[i].table_id) : NULL;
			const struct cat_col *col = rel ? cat_col_by_attnum(rel, f[i].column_no) : NULL;

			if (col) {
				rule = relcol_rule(m, cat, rel, f[i].column_no, &derived);
				set_label(c, rel->name, col->name);
				srccol = col->name;
				direct = 1;
			} else if (f[i].table_id < 16384) {
				rule = MASK_RULE_NONE; /* a system catalog's column */
				direct = 1;
			} else {
				r->unknown_oid = f[i].table_id;
			}
		}
		if (!direct && by_position) {
			const struct maskplan_col *pc = &sql->cols[i];

			rule = pc->rule;
			derived = pc->derived;
			if (pc->source[0]) {
				snprintf(c->label, sizeof(c->label), "%s", pc->source);
				srccol = strrchr(pc->source, '.');
				srccol = srccol ? srccol + 1 : pc->source;
			}
		} else if (!direct && sql && !sql->all_unknown && sql->ncols != n && !cat) {
			rule = MASK_RULE_UNKNOWN;
		}
		if (direct && by_position && style_rank(mp, sql->cols[i].rule) > style_rank(mp, rule)) {
			/* Both views agree on nothing weaker than the stronger of them. */
			rule = sql->cols[i].rule;
			derived = sql->cols[i].derived;
		}
		if (!direct && !by_position && sql && sql->all_clean)
			rule = MASK_RULE_NONE; /* e.g. a star over system relations */
		/* a free text column of a type the detectors do not know (citext, a domain, an
		 * enum) is read as the text it is in text format; in binary it is no better than
		 * a value computed from it */
		if ((rule == MASK_RULE_FREE ||
		     (rule >= 0 && rule < mp->nrules && mp->rules[rule].free_text)) &&
		    !derived && !mask_type_detectable(c->type_oid)) {
			if (f[i].format == 0)
				c->type_oid = TEXT_OID;
			else
				derived = 1;
		}
		c->rule = effective_rule(mp, rule, derived);
		c->derived = derived;
		c->context = mask_context_from_name(f[i].name ? f[i].name : "");
		if (srccol)
			c->context |= mask_context_from_name(srccol);
		if (!c->label[0])
			snprintf(c->label, sizeof(c->label), "%s%s",
				 rule == MASK_RULE_UNKNOWN ? "?" : "", f[i].name ? f[i].name : "?");
	}
	return 0;
}

int masking_plan_copy(struct mask_result *r, const struct masking *m, const struct catalog *cat,
		      const struct maskplan *sql, int overall_format, const int16_t *formats,
		      int n)
{
	memset(r, 0, sizeof(*r));
	if (!sql || !sql->copy || sql->all_unknown || sql->ncols != n)
		return -EINVAL;
	if (result_alloc(r, n))
		return -ENOMEM;
	r->copy = 1;
	r->copy_opts = sql->copy_opts;
	if (overall_format == 1)
		r->copy_opts.format = 2;
	for (int i = 0; i < n; i++) {
		struct mask_colplan *c = &r->cols[i];
		const struct maskplan_col *pc = &sql->cols[i];
		const char *col = strrchr(pc->source, '.');

		int derived = pc->derived;

		c->format = formats ? formats[i] : (int16_t)overall_format;
		/* Text and CSV carry every value as text; binary needs the true type, known only
		 * for a column copied as it is (else 0: unmaskable, so withheld if masked). */
		c->type_oid = pc->derived ? 0 : source_type(cat, pc->source);
		if (overall_format == 0 && !c->type_oid)
			c->type_oid = TEXT_OID;
		/* free text of a type the detectors do not know (citext, a domain): read as text
		 * in text and CSV, redacted in binary */
		if ((pc->rule == MASK_RULE_FREE || (pc->rule >= 0 && pc->rule < m->mp.nrules &&
						    m->mp.rules[pc->rule].free_text)) &&
		    !derived && !mask_type_detectable(c->type_oid)) {
			if (c->format == 0)
				c->type_oid = TEXT_OID;
			else
				derived = 1;
		}
		c->rule = effective_rule(&m->mp, pc->rule, derived);
		c->derived = derived;
		if (overall_format == 0 && c->type_oid != TEXT_OID && !pc->derived) {
			/* keep the type: masks of dates and numbers stay valid in the text */
		}
		snprintf(c->label, sizeof(c->label), "%s", pc->source[0] ? pc->source : "?");
		c->context = col ? mask_context_from_name(col + 1) : 0;
	}
	return 0;
}

/* ---- one text value: a row codec of one cell, the whole message ---- */

static int text_begin(struct row_codec *c, const uint8_t *msg, size_t len, size_t *off,
		      struct buf *out)
{
	*off = len > INT32_MAX ? 1 : 0;
	return len > INT32_MAX ? -1 : 0;
}

static int text_split(struct row_codec *c, const uint8_t *msg, size_t len, size_t *off,
		      struct row *r)
{
	if (*off)
		return 0;
	r->cells[0] = (struct row_cell){.p = msg, .len = (int32_t)len};
	r->base = msg;
	r->start = 0;
	r->end = len;
	*off = 1;
	return 1;
}

static int text_put_row(struct row_codec *c, const uint8_t *msg, const struct row *r,
			struct buf *out)
{
	const struct row_out *x = &r->outs[0];

	if (x->kind == ROW_NEW)
		return buf_append(out, r->vals + x->off, (size_t)x->len) ? -1 : 0;
	return x->kind == ROW_NULL ? 0 : -1; /* a NULL (detector style null): nothing left */
}

static int text_end(struct row_codec *c, const uint8_t *msg, size_t len, size_t off,
		    size_t start, struct buf *out, char *why, size_t whyn)
{
	return 0;
}

static const struct row_codec_ops text_ops = {
	.name = "text",
	.begin = text_begin,
	.split = text_split,
	.put_row = text_put_row,
	.end = text_end,
};

int masking_text(const struct masking *m, const char *s, size_t n, struct buf *out)
{
	/* One text column of one row through the same path as results. */
	struct mask_colplan c = {.rule = MASK_RULE_NONE, .type_oid = TEXT_OID};
	struct row_codec codec = {.ops = &text_ops, .cell_format = 0};
	uint64_t cnt = 0;
	struct mask_counts counts = {.ncols = 1, .cols = &cnt};
	int r;

	if (n > INT32_MAX)
		return -EINVAL;
	r = mask_rows(m->me, &codec, &c, 1, (const uint8_t *)s, n, out, &counts);
	return r == 0 ? 0 : r == 1 ? -EINVAL : -ENOMEM;
}

int masking_rows(struct mask_result *r, const struct masking *m, const uint8_t *msg, size_t len,
		 struct buf *out)
{
	return mask_rows(m->me, &r->codec, r->cols, r->ncols, msg, len, out, &r->counts);
}

void mask_result_free(struct mask_result *r)
{
	free(r->cols);
	free(r->counts.cols);
	memset(r, 0, sizeof(*r));
}

char *mask_result_json(const struct mask_result *r)
{
	struct buf b = {0};
	char *s;

	mask_counts_json(r->cols, &r->counts, &b);
	if (!b.len) {
		buf_free(&b);
		return NULL;
	}
	s = strndup((const char *)buf_head(&b), b.len);
	buf_free(&b);
	return s;
}
