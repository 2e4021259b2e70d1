/*
 * MySQL's result rows (user/hoopd/engines/mysql/myrow.c): column definitions, length-encoded
 * integers, and the text and binary row codecs, over bytes a real MariaDB 10.11 sent
 * (SELECT * FROM t, one column of each type, in both protocols) and rows built here at the
 * edges of the formats. The binary codec must read each value as the text protocol's text of
 * the same row, write it back byte for byte, and refuse what a type cannot hold; masking goes
 * through mask_rows as the engine's will.
 *
 * The captured bytes came from a throwaway mariadbd (mariadb-install-db, a Unix socket under
 * /tmp) driven by pymysql's raw command calls: COM_QUERY and COM_STMT_PREPARE/EXECUTE of
 *   CREATE TABLE t (id INT PRIMARY KEY, ti TINYINT, tu TINYINT UNSIGNED, si SMALLINT,
 *     su SMALLINT UNSIGNED, mi MEDIUMINT, mu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED,
 *     bi BIGINT, bu BIGINT UNSIGNED, y YEAR, f FLOAT, d DOUBLE, de DECIMAL(10,2), dt DATE,
 *     dtm DATETIME, dtm6 DATETIME(6), ts TIMESTAMP NULL, tm TIME, tm3 TIME(3), vc VARCHAR(64),
 *     ch CHAR(10), tx TEXT, bl BLOB, vb VARBINARY(16), j JSON, e ENUM('a','b'),
 *     st SET('x','y'), bt BIT(8)) CHARSET utf8mb4
 * with rows 1 (extremes: -128, 255, ..., -838:59:59, '25:00:00.5', an email, an SSN in JSON),
 * 2 (all NULL but id) and 3 (zeros, zero dates, '-00:00:01.5', empty strings).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "harness.h"
#include "hex.h"
#include "mask.h"
#include "myrow.h"
#include "rowcodec.h"

static const uint8_t KEY[32] = {3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3,
				2, 3, 8, 4, 6, 2, 6, 4, 3, 3, 8, 3, 2, 7, 9, 5};

enum { NCOLS = 30, MAXCOLS = 64 };

/* Column indexes of t. */
enum {
	C_ID,
	C_TI,
	C_TU,
	C_SI,
	C_SU,
	C_MI,
	C_MU,
	C_I,
	C_IU,
	C_BI,
	C_BU,
	C_Y,
	C_F,
	C_D,
	C_DE,
	C_DT,
	C_DTM,
	C_DTM6,
	C_TS,
	C_TM,
	C_TM3,
	C_VC,
	C_CH,
	C_TX,
	C_BL,
	C_VB,
	C_J,
	C_E,
	C_ST,
	C_BT
};

static const char *const NAMES[NCOLS] = {
    "id", "ti",	 "tu",	 "si", "su", "mi",  "mu", "i",	"iu", "bi", "bu", "y", "f", "d",  "de",
    "dt", "dtm", "dtm6", "ts", "tm", "tm3", "vc", "ch", "tx", "bl", "vb", "j", "e", "st", "bt"};

/* ---- what MariaDB sent (payloads, no packet headers) ---- */

static const char *const T_DEFS[NCOLS] = {
    /* id */ "0364656604686f6f70017401740269640269640c3f000b000000030350000000",
    /* ti */ "0364656604686f6f70017401740274690274690c3f0004000000010000000000",
    /* tu */ "0364656604686f6f70017401740274750274750c3f0003000000012000000000",
    /* si */ "0364656604686f6f70017401740273690273690c3f0006000000020000000000",
    /* su */ "0364656604686f6f70017401740273750273750c3f0005000000022000000000",
    /* mi */ "0364656604686f6f7001740174026d69026d690c3f0009000000090000000000",
    /* mu */ "0364656604686f6f7001740174026d75026d750c3f0008000000092000000000",
    /* i */ "0364656604686f6f7001740174016901690c3f000b000000030000000000",
    /* iu */ "0364656604686f6f70017401740269750269750c3f000a000000032000000000",
    /* bi */ "0364656604686f6f70017401740262690262690c3f0014000000080000000000",
    /* bu */ "0364656604686f6f70017401740262750262750c3f0014000000082000000000",
    /* y */ "0364656604686f6f7001740174017901790c3f00040000000d6000000000",
    /* f */ "0364656604686f6f7001740174016601660c3f000c0000000400001f0000",
    /* d */ "0364656604686f6f7001740174016401640c3f00160000000500001f0000",
    /* de */ "0364656604686f6f70017401740264650264650c3f000c000000f60000020000",
    /* dt */ "0364656604686f6f70017401740264740264740c3f000a0000000a8000000000",
    /* dtm */ "0364656604686f6f70017401740364746d0364746d0c3f00130000000c8000000000",
    /* dtm6 */ "0364656604686f6f70017401740464746d360464746d360c3f001a0000000c8000060000",
    /* ts */ "0364656604686f6f70017401740274730274730c3f001300000007a000000000",
    /* tm */ "0364656604686f6f700174017402746d02746d0c3f000a0000000b8000000000",
    /* tm3 */ "0364656604686f6f700174017403746d3303746d330c3f000e0000000b8000030000",
    /* vc */ "0364656604686f6f70017401740276630276630c2d0000010000fd0000000000",
    /* ch */ "0364656604686f6f70017401740263680263680c2d0028000000fe0000000000",
    /* tx */ "0364656604686f6f70017401740274780274780c2d00fcff0300fc1000000000",
    /* bl */ "0364656604686f6f700174017402626c02626c0c3f00ffff0000fc9000000000",
    /* vb */ "0364656604686f6f70017401740276620276620c3f0010000000fd8000000000",
    /* j */ "0364656604686f6f7001740174016a016a0c2d00fffffffffc9000000000",
    /* e */ "0364656604686f6f7001740174016501650c2d0004000000fe0001000000",
    /* st */ "0364656604686f6f70017401740273740273740c2d000c000000fe0008000000",
    /* bt */ "0364656604686f6f70017401740262740262740c3f0008000000102000000000",
};
static const char *const TEXT_ROWS[3] = {
    "0131042d31323803323535062d3332373638053635353335082d38333838363038083136373737323135"
    "0b2d323134373438333634380a34323934393637323935142d3932323333373230333638353437373538"
    "3038143138343436373434303733373039353531363135043230323403312e35052d322e32350c2d3132"
    "3334353637382e39300a313937302d30312d303213323032342d30322d32392031333a34353a30361a32"
    "3032342d30322d32392031333a34353a30362e30303031323313323030312d30322d30332030343a3035"
    "3a30360a2d3833383a35393a35390c32353a30303a30302e353030084a616e6520526f65036162631d77"
    "7269746520746f206a616e652e646f65406578616d706c652e636f6d0300ff1003414243167b2273736e"
    "223a20223132332d34352d36373839227d016203782c7901a5",
    "0132fbfbfbfbfbfbfbfbfbfbfbfbfbfbfbfbfbfbfbfbfbfbfbfbfbfbfbfbfb",
    "0133013001300130013001300130013001300130013004303030300130013004302e30300a303030302d"
    "30302d303013303030302d30302d30302030303a30303a30301a323032342d30312d30312030303a3030"
    "3a30302e303030303030fb0830303a30303a30300d2d30303a30303a30312e3530300000000000025b5d"
    "0161000100",
};
static const char *const BIN_ROWS[3] = {
    "00000000000100000080ff0080ffff000080ffffffff0000000080ffffffff0000000000000080ffffff"
    "ffffffffffe8070000c03f00000000000002c00c2d31323334353637382e393004b207010207e807021d"
    "0d2d060be807021d0d2d067b00000007d1070203040506080122000000163b3b0c000100000001000020"
    "a10700084a616e6520526f65036162631d777269746520746f206a616e652e646f65406578616d706c65"
    "2e636f6d0300ff1003414243167b2273736e223a20223132332d34352d36373839227d016203782c7901"
    "a5",
    "00f8ffffff02000000",
    "000000100003000000000000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000004302e3030000004e8070101000c010000000000000120"
    "a107000000000000025b5d0161000100",
};
static const char ALIAS_DEF[] =
    "03646566000000c861616161616161616161616161616161616161616161616161616161616161616161"
    "616161616161616161616161616161616161616161616161616161616161616161616161616161616161"
    "616161616161616161616161616161616161616161616161616161616161616161616161616161616161"
    "616161616161616161616161616161616161616161616161616161616161616161616161616161616161"
    "61616161616161616161616161616161616161616161616161616161616161616161616161616161000c"
    "3f0001000000038100000000";
static const char NAME_DEF[] = "0364656600000005c3b1616d65000c2d0004000000fd0100270000";

/* ---- helpers ---- */

/* hex into b (replacing what it held); spaces between bytes are skipped */
static void unhex(const char *h, struct buf *b)
{
	b->off = b->len = 0;
	for (size_t i = 0; h[i];) {
		uint8_t x;

		if (h[i] == ' ') {
			i++;
			continue;
		}
		if (!h[i + 1])
			break;
		x = (uint8_t)(hex_digit(h[i]) << 4 | hex_digit(h[i + 1]));
		buf_append(b, &x, 1);
		i += 2;
	}
}

static void real_cols(struct mycol *c)
{
	struct buf b = {0};

	for (int i = 0; i < NCOLS; i++) {
		unhex(T_DEFS[i], &b);
		if (mycol_parse(b.data, b.len, &c[i]))
			unit_fail(__FILE__, __LINE__, "definition of %s does not parse", NAMES[i]);
	}
	buf_free(&b);
}

/* A cell as split, copied. */
struct cellv {
	int null;
	size_t len;
	uint8_t *p;
};

static void free_cells(struct cellv *v, int n)
{
	for (int i = 0; i < n; i++) {
		free(v[i].p);
		v[i].p = NULL;
	}
}

/* The cells codec c splits p[0..n) into (split's return: 1, or -1; -2 when begin failed).
 * Checks what every split must give: begin writes nothing, one row per payload, the whole
 * payload is the row, and the cells lie in one buffer in column order. */
static int split_row(struct row_codec *c, const uint8_t *p, size_t n, int ncols, struct cellv *v)
{
	struct row_cell cells[MAXCOLS];
	struct buf scratch = {0}, hdr = {0};
	struct row r = {.ncols = ncols, .cells = cells, .scratch = &scratch};
	size_t off = 99;
	int rc;

	memset(v, 0, (size_t)ncols * sizeof(*v));
	if (c->ops->begin(c, p, n, &off, &hdr)) {
		rc = -2;
		goto out;
	}
	CHECK_EQ_INT(hdr.len, 0);
	CHECK_EQ_INT(off, 0);
	rc = c->ops->split(c, p, n, &off, &r);
	if (rc != 1)
		goto out;
	CHECK_EQ_INT(r.start, 0);
	CHECK_EQ_INT(r.end, n);
	CHECK_EQ_INT(off, n);
	for (int k = 0, prev_end = 0; k < ncols; k++) {
		v[k].null = cells[k].len < 0;
		if (v[k].null)
			continue;
		v[k].len = (size_t)cells[k].len;
		v[k].p = malloc(v[k].len + 1);
		if (v[k].len)
			memcpy(v[k].p, cells[k].p, v[k].len);
		v[k].p[v[k].len] = '\0';
		CHECK(cells[k].p >= r.base + prev_end);
		prev_end = (int)(cells[k].p - r.base) + cells[k].len;
	}
	CHECK_EQ_INT(c->ops->split(c, p, n, &off, &r), 0);
out:
	buf_free(&scratch);
	buf_free(&hdr);
	return rc;
}

/* put_row over the row codec c splits p into, with outs and vals; its return. */
static int put_row(struct row_codec *c, const uint8_t *p, size_t n, int ncols,
		   const struct row_out *outs, const uint8_t *vals, struct buf *out, char *why,
		   size_t whyn)
{
	struct row_cell cells[MAXCOLS];
	struct buf scratch = {0}, hdr = {0};
	struct row r = {
	    .ncols = ncols, .cells = cells, .scratch = &scratch, .why = why, .whyn = whyn};
	size_t off;
	int rc = -2;

	if (!c->ops->begin(c, p, n, &off, &hdr) && c->ops->split(c, p, n, &off, &r) == 1) {
		r.outs = outs;
		r.vals = vals;
		rc = c->ops->put_row(c, p, &r, out);
	}
	buf_free(&scratch);
	buf_free(&hdr);
	return rc;
}

static int cell_is(const struct cellv *v, const char *s)
{
	return !v->null && v->len == strlen(s) && !memcmp(v->p, s, v->len);
}

static int cells_equal(const struct cellv *a, const struct cellv *b)
{
	return a->null == b->null && (a->null || (a->len == b->len && !memcmp(a->p, b->p, a->len)));
}

/* The binary cell b says what the text cell t does: the same, or (a masked time of day
 * written back into a column with fractional digits) t with that many zeros after a point. */
static int same_value(const struct cellv *b, const struct cellv *t, int decimals)
{
	if (cells_equal(b, t))
		return 1;
	if (b->null || t->null || decimals < 1 || decimals > 6 ||
	    b->len != t->len + 1 + (size_t)decimals || memcmp(b->p, t->p, t->len) ||
	    b->p[t->len] != '.')
		return 0;
	for (size_t i = t->len + 1; i < b->len; i++)
		if (b->p[i] != '0')
			return 0;
	return 1;
}

/* rule i is style i (redact, partial 1/2, hash, null, format_preserving) */
enum { R_REDACT = 0, R_PARTIAL, R_HASH, R_NULL, R_FP };

static struct mask_engine *engine(unsigned dets, enum mask_unmaskable on_unmaskable)
{
	struct mask_policy *mp = calloc(1, sizeof(*mp));
	struct mask_engine *me = NULL;
	char err[256];

	mp->enabled = 1;
	mp->detectors = dets;
	mp->unknown_style = MASK_REDACT;
	mp->detector_style = MASK_PARTIAL;
	mp->on_unmaskable = on_unmaskable;
	mp->nrules = MASK_STYLE_COUNT;
	for (int i = 0; i < MASK_STYLE_COUNT; i++) {
		mp->rules[i].style = (enum mask_style)i;
		mp->rules[i].keep_first = 1;
		mp->rules[i].keep_last = 2;
	}
	if (mask_engine_new(mp, KEY, &me, err, sizeof(err)))
		unit_fail(__FILE__, __LINE__, "mask_engine_new: %s", err);
	free(mp);
	return me;
}

#define ALL_DETECTORS ((1u << DET_COUNT) - 1)

/* No rule on any column; each column's type as the engine maps it. */
static void plans(struct mask_colplan *cp, const struct mycol *cols, int n)
{
	memset(cp, 0, (size_t)n * sizeof(*cp));
	for (int i = 0; i < n; i++) {
		cp[i].rule = MASK_RULE_NONE;
		cp[i].type_oid = mycol_pg_type(&cols[i]);
		snprintf(cp[i].label, sizeof(cp[i].label), "t.%s", cols[i].org_name);
	}
}

/* A column of a type, by hand. */
static struct mycol col_of(uint8_t type, uint16_t flags, uint32_t length, uint8_t decimals)
{
	struct mycol c;

	memset(&c, 0, sizeof(c));
	strcpy(c.catalog, "def");
	strcpy(c.name, "c");
	strcpy(c.org_name, "c");
	c.type = type;
	c.flags = flags;
	c.length = length;
	c.decimals = decimals;
	c.charset = 63;
	return c;
}

/* ---- column definitions ---- */

static void test_coldefs_from_mariadb(void)
{
	static const uint32_t want_pg[NCOLS] = {
	    23,	  21,	21,   21,   23,	  23,	23, 23, 20, 20, 1700, 21, 700, 701, 1700,
	    1082, 1114, 1114, 1114, 1083, 1083, 25, 25, 25, 25, 25,   25, 25,  25,  0,
	};
	struct mycol *c = calloc(NCOLS, sizeof(*c));
	struct mycol a;
	struct buf b = {0};

	real_cols(c);
	CHECK_STREQ(c[C_ID].catalog, "def");
	CHECK_STREQ(c[C_ID].schema, "hoop");
	CHECK_STREQ(c[C_ID].table, "t");
	CHECK_STREQ(c[C_ID].org_table, "t");
	CHECK_STREQ(c[C_ID].name, "id");
	CHECK_STREQ(c[C_ID].org_name, "id");
	CHECK_EQ_INT(c[C_ID].charset, 63);
	CHECK_EQ_INT(c[C_ID].length, 11);
	CHECK_EQ_INT(c[C_ID].type, MY_TYPE_LONG);
	CHECK_EQ_INT(c[C_ID].flags, 0x5003); /* NOT_NULL PRI_KEY PART_KEY NUM */
	CHECK_EQ_INT(c[C_ID].decimals, 0);
	CHECK_EQ_INT(c[C_TU].flags & MY_FLAG_UNSIGNED, MY_FLAG_UNSIGNED);
	CHECK_EQ_INT(c[C_MI].type, MY_TYPE_INT24);
	CHECK_EQ_INT(c[C_Y].type, MY_TYPE_YEAR);
	CHECK_EQ_INT(c[C_Y].flags, MY_FLAG_UNSIGNED | MY_FLAG_ZEROFILL);
	CHECK_EQ_INT(c[C_DE].type, MY_TYPE_NEWDECIMAL);
	CHECK_EQ_INT(c[C_DE].decimals, 2);
	CHECK_EQ_INT(c[C_DTM6].type, MY_TYPE_DATETIME);
	CHECK_EQ_INT(c[C_DTM6].decimals, 6);
	CHECK_EQ_INT(c[C_TM3].decimals, 3);
	CHECK_EQ_INT(c[C_VC].type, MY_TYPE_VAR_STRING);
	CHECK_EQ_INT(c[C_VC].charset, 45); /* utf8mb4_general_ci */
	CHECK_EQ_INT(c[C_VC].length, 256);
	CHECK_EQ_INT(c[C_TX].length, 262140);
	CHECK_EQ_INT(c[C_J].type, MY_TYPE_BLOB); /* MariaDB's JSON is a LONGTEXT */
	CHECK_EQ_INT(c[C_J].length, 4294967295u);
	CHECK_EQ_INT(c[C_E].type, MY_TYPE_STRING);
	CHECK_EQ_INT(c[C_E].flags, 0x100); /* ENUM */
	CHECK_EQ_INT(c[C_BT].type, MY_TYPE_BIT);
	for (int i = 0; i < NCOLS; i++) {
		unit_where("column %s", NAMES[i]);
		CHECK_STREQ(c[i].org_name, NAMES[i]);
		CHECK_EQ_INT(mycol_pg_type(&c[i]), want_pg[i]);
	}
	unit_where("%s", "");

	/* an alias of 200 characters, an expression's column (no table) */
	unhex(ALIAS_DEF, &b);
	CHECK_EQ_INT(mycol_parse(b.data, b.len, &a), 0);
	CHECK_EQ_INT(strlen(a.name), 200);
	CHECK(strspn(a.name, "a") == 200);
	CHECK_STREQ(a.schema, "");
	CHECK_STREQ(a.org_name, "");
	CHECK_EQ_INT(a.type, MY_TYPE_LONG);
	unhex(NAME_DEF, &b);
	CHECK_EQ_INT(mycol_parse(b.data, b.len, &a), 0);
	CHECK_STREQ(a.name, "\xc3\xb1"
			    "ame");
	CHECK_EQ_INT(a.decimals, 39);

	/* types MariaDB did not send here */
	a = col_of(MY_TYPE_LONGLONG, MY_FLAG_UNSIGNED, 20, 0);
	CHECK_EQ_INT(mycol_pg_type(&a), 1700);
	a = col_of(MY_TYPE_JSON, 0, 0, 0);
	CHECK_EQ_INT(mycol_pg_type(&a), 114);
	a = col_of(MY_TYPE_GEOMETRY, 0, 0, 0);
	CHECK_EQ_INT(mycol_pg_type(&a), 0);
	a = col_of(MY_TYPE_NEWDATE, 0, 0, 0);
	CHECK_EQ_INT(mycol_pg_type(&a), 1082);
	a = col_of(MY_TYPE_TIMESTAMP2, 0, 0, 0);
	CHECK_EQ_INT(mycol_pg_type(&a), 1114);
	a = col_of(20, 0, 0, 0); /* MySQL's TYPED_ARRAY: not a column type */
	CHECK_EQ_INT(mycol_pg_type(&a), 0);
	buf_free(&b);
	free(c);
}

/* A definition with names of these lengths (lengths written by hand, not by myrow.c). */
static void def_with(struct buf *b, size_t schema, size_t table, size_t name, size_t org_name)
{
	size_t lens[6] = {3, schema, table, 1, name, org_name};

	b->off = b->len = 0;
	for (int i = 0; i < 6; i++) {
		uint8_t h[3] = {0xfc, (uint8_t)lens[i], (uint8_t)(lens[i] >> 8)};

		if (lens[i] < 251)
			buf_append(b, h + 1, 1);
		else
			buf_append(b, h, 3);
		for (size_t k = 0; k < lens[i]; k++)
			buf_append(b, "x", 1);
	}
	buf_append(b, "\x0c\x3f\x00\x0b\x00\x00\x00\x03\x00\x00\x00\x00\x00", 13);
}

static void test_coldef_malformed(void)
{
	struct mycol *c = calloc(1, sizeof(*c));
	struct buf b = {0}, d = {0};

	unhex(T_DEFS[C_DTM6], &b);
	CHECK_EQ_INT(mycol_parse(b.data, b.len, c), 0);
	/* cut anywhere */
	for (size_t n = 0; n < b.len; n++) {
		unit_where("cut at %zu", n);
		CHECK_EQ_INT(mycol_parse(b.data, n, c), -1);
	}
	unit_where("%s", "");
	/* a byte after the filler (COM_FIELD_LIST's default value would be one) */
	buf_append(&b, "\x00", 1);
	CHECK_EQ_INT(mycol_parse(b.data, b.len, c), -1);
	/* a fixed part of another length */
	unhex(T_DEFS[C_ID], &b);
	b.data[b.len - 13] = 0x0d;
	buf_append(&b, "\x00", 1);
	CHECK_EQ_INT(mycol_parse(b.data, b.len, c), -1);
	/* MariaDB's extended type info (a string of type/value pairs before the fixed part) */
	unhex("0364656604686f6f70017401740162016206000"
	      "46a736f6e0c2d00fffffffffc9000000000",
	      &b);
	CHECK_EQ_INT(mycol_parse(b.data, b.len, c), -1);
	unhex("0364656604686f6f7001740174016201620c2d00fffffffffc9000000000", &b);
	CHECK_EQ_INT(mycol_parse(b.data, b.len, c), 0);
	/* a NUL inside a name; a name whose length is NULL's or an error's marker */
	unhex(T_DEFS[C_ID], &b);
	b.data[10] = 0; /* the table's "t" */
	CHECK_EQ_INT(mycol_parse(b.data, b.len, c), -1);
	unhex(T_DEFS[C_ID], &b);
	b.data[9] = 0xfb; /* the table's length */
	CHECK_EQ_INT(mycol_parse(b.data, b.len, c), -1);
	b.data[9] = 0xff;
	CHECK_EQ_INT(mycol_parse(b.data, b.len, c), -1);

	/* name bounds: 64 characters of utf8mb4 for names, 256 for aliases */
	def_with(&d, 256, 1024, 1024, 256);
	CHECK_EQ_INT(mycol_parse(d.data, d.len, c), 0);
	CHECK_EQ_INT(strlen(c->schema), 256);
	CHECK_EQ_INT(strlen(c->table), 1024);
	CHECK_EQ_INT(strlen(c->name), 1024);
	CHECK_EQ_INT(strlen(c->org_name), 256);
	def_with(&d, 257, 1, 1, 1);
	CHECK_EQ_INT(mycol_parse(d.data, d.len, c), -1);
	def_with(&d, 1, 1025, 1, 1);
	CHECK_EQ_INT(mycol_parse(d.data, d.len, c), -1);
	def_with(&d, 1, 1, 1025, 1);
	CHECK_EQ_INT(mycol_parse(d.data, d.len, c), -1);
	def_with(&d, 1, 1, 1, 257);
	CHECK_EQ_INT(mycol_parse(d.data, d.len, c), -1);
	buf_free(&b);
	buf_free(&d);
	free(c);
}

/* ---- length-encoded integers ---- */

static void test_lenenc(void)
{
	static const struct {
		uint64_t v;
		const char *hex;
	} cases[] = {
	    {0, "00"},
	    {250, "fa"},
	    {251, "fcfb00"},
	    {252, "fcfc00"},
	    {65535, "fcffff"},
	    {65536, "fd000001"},
	    {16777215, "fdffffff"},
	    {16777216, "fe0000000100000000"},
	    {UINT64_MAX, "feffffffffffffffff"},
	};
	struct buf got = {0}, want = {0};
	uint64_t v;
	size_t off;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		unit_where("%s", cases[i].hex);
		unhex(cases[i].hex, &want);
		got.len = 0;
		CHECK_EQ_INT(my_put_lenenc_int(&got, cases[i].v), 0);
		CHECK(got.len == want.len && !memcmp(got.data, want.data, want.len));
		/* read back from the middle of a buffer */
		got.len = 0;
		buf_append(&got, "ab", 2);
		buf_append(&got, want.data, want.len);
		off = 2;
		CHECK_EQ_INT(my_lenenc_int(got.data, got.len, &off, &v), 0);
		CHECK(v == cases[i].v);
		CHECK_EQ_INT(off, got.len);
		for (size_t n = 2; n < got.len; n++) {
			off = 2;
			CHECK_EQ_INT(my_lenenc_int(got.data, n, &off, &v), -1);
			CHECK_EQ_INT(off, 2);
		}
	}
	unit_where("%s", "");
	off = 0;
	CHECK_EQ_INT(my_lenenc_int((const uint8_t *)"\xfb", 1, &off, &v), -1);
	CHECK_EQ_INT(my_lenenc_int((const uint8_t *)"\xff\x01\x00", 3, &off, &v), -1);
	CHECK_EQ_INT(off, 0);

	/* strings: the prefix then the bytes */
	got.len = 0;
	CHECK_EQ_INT(my_put_lenenc_str(&got, "", 0), 0);
	CHECK(got.len == 1 && got.data[0] == 0);
	got.len = 0;
	{
		char s[251];

		memset(s, 'q', sizeof(s));
		CHECK_EQ_INT(my_put_lenenc_str(&got, s, sizeof(s)), 0);
		CHECK(got.len == 254 && !memcmp(got.data, "\xfc\xfb\x00", 3) &&
		      !memcmp(got.data + 3, s, sizeof(s)));
	}
	buf_free(&got);
	buf_free(&want);
}

/* ---- text rows ---- */

static void test_text_rows_from_mariadb(void)
{
	struct mycol *cols = calloc(NCOLS, sizeof(*cols));
	struct myrow_cols mc = {NCOLS, cols};
	struct row_codec typed, plain = myrow_text;
	struct cellv v[NCOLS];
	struct mask_engine *me = engine(0, UNMASKABLE_WITHHOLD);
	struct mask_colplan cp[NCOLS];
	struct buf in = {0}, out = {0};

	real_cols(cols);
	myrow_text_codec(&typed, &mc);
	CHECK_EQ_INT(typed.cell_format, 0);
	CHECK_EQ_INT(plain.cell_format, 0);
	plans(cp, cols, NCOLS);

	unhex(TEXT_ROWS[0], &in);
	CHECK_EQ_INT(split_row(&plain, in.data, in.len, NCOLS, v), 1);
	CHECK(cell_is(&v[C_ID], "1"));
	CHECK(cell_is(&v[C_TI], "-128"));
	CHECK(cell_is(&v[C_BU], "18446744073709551615"));
	CHECK(cell_is(&v[C_TM], "-838:59:59"));
	CHECK(cell_is(&v[C_TM3], "25:00:00.500"));
	CHECK(cell_is(&v[C_TX], "write to jane.doe@example.com"));
	CHECK(v[C_BL].len == 3 && !memcmp(v[C_BL].p, "\x00\xff\x10", 3)); /* a NUL inside */
	CHECK(v[C_BT].len == 1 && v[C_BT].p[0] == 0xa5);
	free_cells(v, NCOLS);

	unhex(TEXT_ROWS[1], &in);
	CHECK_EQ_INT(split_row(&typed, in.data, in.len, NCOLS, v), 1);
	CHECK(cell_is(&v[C_ID], "2"));
	for (int k = 1; k < NCOLS; k++)
		CHECK(v[k].null);
	free_cells(v, NCOLS);

	unhex(TEXT_ROWS[2], &in);
	CHECK_EQ_INT(split_row(&plain, in.data, in.len, NCOLS, v), 1);
	CHECK(v[C_TS].null);
	CHECK(!v[C_VC].null && v[C_VC].len == 0); /* empty, not NULL */
	CHECK(cell_is(&v[C_Y], "0000"));
	free_cells(v, NCOLS);

	/* nothing to mask: each row leaves as it came, after what out held */
	for (int r = 0; r < 3 && me; r++) {
		unhex(TEXT_ROWS[r], &in);
		out.len = 0;
		buf_append(&out, "prefix", 6);
		CHECK_EQ_INT(mask_mytextrow(me, cp, NCOLS, in.data, in.len, &out, NULL), 0);
		CHECK(out.len == 6 + in.len && !memcmp(out.data + 6, in.data, in.len));
		out.len = 0;
		CHECK_EQ_INT(mask_rows(me, &typed, cp, NCOLS, in.data, in.len, &out, NULL), 0);
		CHECK(out.len == in.len && !memcmp(out.data, in.data, in.len));
	}
	buf_free(&in);
	buf_free(&out);
	mask_engine_free(me);
	free(cols);
}

/* A text row of six cells at the length prefixes' edges: 250, 251, 252 and 65536 bytes, NULL,
 * empty (as MariaDB sent SELECT REPEAT('z', 250), ..., NULL, ''). */
static void big_row(struct buf *b)
{
	static const size_t lens[4] = {250, 251, 252, 65536};
	static const char *const pre[4] = {"\xfa", "\xfc\xfb\x00", "\xfc\xfc\x00",
					   "\xfd\x00\x00\x01"};
	static const size_t pren[4] = {1, 3, 3, 4};

	b->off = b->len = 0;
	for (int i = 0; i < 4; i++) {
		uint8_t *o;

		buf_append(b, pre[i], pren[i]);
		o = buf_reserve(b, lens[i]);
		memset(o, 'a' + i, lens[i]);
		buf_commit(b, lens[i]);
	}
	buf_append(b, "\xfb\x00", 2);
}

static void test_text_length_prefixes(void)
{
	struct mask_engine *me = engine(0, UNMASKABLE_WITHHOLD);
	struct mask_colplan cp[6];
	struct mycol cols[6];
	struct row_codec plain = myrow_text;
	struct cellv v[6];
	struct buf in = {0}, out = {0}, want = {0};
	struct row_out outs[6];

	for (int i = 0; i < 6; i++)
		cols[i] = col_of(MY_TYPE_VAR_STRING, 0, 65536, 0);
	plans(cp, cols, 6);
	big_row(&in);
	CHECK_EQ_INT(in.len, 66302); /* MariaDB's packet was that long */
	CHECK_EQ_INT(split_row(&plain, in.data, in.len, 6, v), 1);
	CHECK(v[0].len == 250 && v[0].p[0] == 'a' && v[0].p[249] == 'a');
	CHECK(v[1].len == 251 && v[1].p[250] == 'b');
	CHECK(v[2].len == 252 && v[2].p[251] == 'c');
	CHECK(v[3].len == 65536 && v[3].p[0] == 'd' && v[3].p[65535] == 'd');
	CHECK(v[4].null);
	CHECK(!v[5].null && v[5].len == 0);
	free_cells(v, 6);
	if (!me)
		goto out;

	/* partial on the 65536-byte cell: same length, the same 4-byte prefix, the rest as came */
	cp[3].rule = R_PARTIAL;
	out.len = 0;
	CHECK_EQ_INT(mask_mytextrow(me, cp, 6, in.data, in.len, &out, NULL), 0);
	CHECK_EQ_INT(out.len, in.len);
	CHECK(!memcmp(out.data, in.data, 1 + 250 + 3 + 251 + 3 + 252 + 4));
	CHECK_EQ_INT(split_row(&plain, out.data, out.len, 6, v), 1);
	CHECK(v[3].len == 65536 && v[3].p[0] == 'd' && v[3].p[1] == '*' && v[3].p[65533] == '*' &&
	      v[3].p[65534] == 'd' && v[3].p[65535] == 'd');
	CHECK(!memcmp(out.data + out.len - 2, "\xfb\x00", 2));
	free_cells(v, 6);

	/* hash on the 250-byte one shrinks its prefix' value; redact on the empty one; the NULL
	 * stays NULL whatever the rule */
	plans(cp, cols, 6);
	cp[0].rule = R_HASH;
	cp[4].rule = R_REDACT;
	cp[5].rule = R_REDACT;
	out.len = 0;
	CHECK_EQ_INT(mask_mytextrow(me, cp, 6, in.data, in.len, &out, NULL), 0);
	CHECK_EQ_INT(out.len, in.len - 250 + 34 + 3);
	CHECK(out.data[0] == 34 && !memcmp(out.data + 1, "h:", 2));
	CHECK(!memcmp(out.data + 35, in.data + 251, in.len - 251 - 1)); /* through the NULL */
	CHECK(!memcmp(out.data + out.len - 4, "\x03***", 4));

	/* new values across the prefixes' edges, written by put_row itself */
	{
		static const size_t nl[] = {250, 251, 65535, 65536, 16777216};
		static const char *const want_pre[] = {"\xfa", "\xfc\xfb\x00", "\xfc\xff\xff",
						       "\xfd\x00\x00\x01",
						       "\xfe\x00\x00\x00\x01\x00\x00\x00\x00"};
		static const size_t want_n[] = {1, 3, 3, 4, 9};
		uint8_t *val = malloc(16777216);
		char why[128];

		memset(val, 'v', 16777216);
		for (size_t t = 0; t < sizeof(nl) / sizeof(nl[0]); t++) {
			unit_where("new value of %zu bytes", nl[t]);
			for (int i = 0; i < 6; i++)
				outs[i] = (struct row_out){.kind = ROW_KEEP};
			outs[5] =
			    (struct row_out){.kind = ROW_NEW, .off = 0, .len = (int32_t)nl[t]};
			out.len = 0;
			CHECK_EQ_INT(
			    put_row(&plain, in.data, in.len, 6, outs, val, &out, why, sizeof(why)),
			    0);
			CHECK_EQ_INT(out.len, in.len - 1 + want_n[t] + nl[t]);
			CHECK(!memcmp(out.data, in.data, in.len - 1));
			CHECK(!memcmp(out.data + in.len - 1, want_pre[t], want_n[t]));
		}
		unit_where("%s", "");
		free(val);
	}
	/* and NULL in place of a value */
	for (int i = 0; i < 6; i++)
		outs[i] = (struct row_out){.kind = ROW_KEEP};
	outs[1].kind = ROW_NULL;
	out.len = 0;
	CHECK_EQ_INT(put_row(&plain, in.data, in.len, 6, outs, NULL, &out, NULL, 0), 0);
	want.len = 0;
	buf_append(&want, in.data, 251);
	buf_append(&want, "\xfb", 1);
	buf_append(&want, in.data + 251 + 254, in.len - 251 - 254);
	CHECK(out.len == want.len && !memcmp(out.data, want.data, want.len));
out:
	buf_free(&in);
	buf_free(&out);
	buf_free(&want);
	mask_engine_free(me);
}

static void test_text_malformed(void)
{
	static const struct {
		const char *hex;
		int ncols;
		int ok; /* 1: a row */
		const char *what;
	} cases[] = {
	    {"", 1, 0, "empty"},
	    {"", 0, 0, "no columns"},
	    {"fb", 1, 1, "one NULL"},
	    {"00", 1, 1, "one empty string"},
	    {"0161", 2, 0, "a cell too few"},
	    {"016101620163", 2, 0, "a cell too many"},
	    {"0161fb", 1, 0, "a byte after the last cell"},
	    {"05616263", 1, 0, "a length past the end"},
	    {"ff", 1, 0, "0xff (an error packet's marker) as a length"},
	    {"ff0100", 1, 0, "0xff with bytes after"},
	    {"fc05", 1, 0, "a cut 2-byte length"},
	    {"fd050000", 1, 0, "a 3-byte length past the end"},
	    {"fe05000000000000", 1, 0, "a cut 8-byte length"},
	    {"fe0500000000000000616263", 1, 0, "an 8-byte length past the end"},
	    {"fe0000000001000000", 1, 0, "an 8-byte length of 4 GiB"},
	    {"fe05000000000000006162636465", 1, 1, "an 8-byte length, framed"},
	    {"fc0300616263", 1, 1, "a 2-byte length of a short value, framed"},
	};
	struct mask_engine *me = engine(ALL_DETECTORS, UNMASKABLE_WITHHOLD);
	struct mask_colplan cp[2];
	struct mycol cols[2] = {col_of(MY_TYPE_STRING, 0, 1, 0), col_of(MY_TYPE_STRING, 0, 1, 0)};
	struct buf in = {0}, out = {0};
	struct cellv v[2];
	struct row_codec plain = myrow_text;

	if (!me)
		return;
	plans(cp, cols, 2);
	cp[0].rule = cp[1].rule = R_REDACT;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		unit_where("%s", cases[i].what);
		unhex(cases[i].hex, &in);
		out.len = 0;
		buf_append(&out, "prefix", 6);
		CHECK_EQ_INT(mask_mytextrow(me, cp, cases[i].ncols, in.data, in.len, &out, NULL),
			     cases[i].ok ? 0 : -1);
		if (!cases[i].ok)
			CHECK(out.len == 6 && !memcmp(out.data, "prefix", 6));
		CHECK_EQ_INT(split_row(&plain, in.data, in.len, cases[i].ncols, v),
			     cases[i].ok ? 1 : -1);
		free_cells(v, cases[i].ncols);
	}
	unit_where("%s", "");
	buf_free(&in);
	buf_free(&out);
	mask_engine_free(me);
}

/* ---- binary rows ---- */

/* The binary protocol's values read as the text protocol's text of the same row. */
static void test_bin_reads_as_text(void)
{
	struct mycol *cols = calloc(NCOLS, sizeof(*cols));
	struct myrow_cols mc = {NCOLS, cols};
	struct row_codec bin, text = myrow_text;
	struct cellv b[NCOLS], t[NCOLS];
	struct buf in = {0};

	real_cols(cols);
	myrow_bin_codec(&bin, &mc);
	CHECK_EQ_INT(bin.cell_format, 0);
	for (int r = 0; r < 3; r++) {
		unhex(BIN_ROWS[r], &in);
		CHECK_EQ_INT(split_row(&bin, in.data, in.len, NCOLS, b), 1);
		unhex(TEXT_ROWS[r], &in);
		CHECK_EQ_INT(split_row(&text, in.data, in.len, NCOLS, t), 1);
		for (int k = 0; k < NCOLS; k++) {
			char q1[1024], q2[1024];

			unit_where("row %d column %s", r + 1, NAMES[k]);
			if (!cells_equal(&b[k], &t[k]))
				unit_fail(
				    __FILE__, __LINE__, "binary \"%s\", text \"%s\"",
				    unit_quote(b[k].null ? "NULL" : (char *)b[k].p, q1, sizeof(q1)),
				    unit_quote(t[k].null ? "NULL" : (char *)t[k].p, q2,
					       sizeof(q2)));
		}
		free_cells(b, NCOLS);
		free_cells(t, NCOLS);
	}
	unit_where("%s", "");
	buf_free(&in);
	free(cols);
}

/* Written back unchanged, or from their own texts, MariaDB's rows come out byte for byte. */
static void test_bin_round_trip(void)
{
	struct mycol *cols = calloc(NCOLS, sizeof(*cols));
	struct myrow_cols mc = {NCOLS, cols};
	struct row_codec bin;
	struct mask_engine *me = engine(0, UNMASKABLE_WITHHOLD);
	struct mask_colplan cp[NCOLS];
	struct cellv v[NCOLS];
	struct row_out outs[NCOLS];
	struct buf in = {0}, out = {0}, vals = {0};
	char why[256];

	real_cols(cols);
	myrow_bin_codec(&bin, &mc);
	plans(cp, cols, NCOLS);
	for (int r = 0; r < 3; r++) {
		unit_where("row %d", r + 1);
		unhex(BIN_ROWS[r], &in);
		/* all kept */
		for (int k = 0; k < NCOLS; k++)
			outs[k] = (struct row_out){.kind = ROW_KEEP};
		out.len = 0;
		CHECK_EQ_INT(
		    put_row(&bin, in.data, in.len, NCOLS, outs, NULL, &out, why, sizeof(why)), 0);
		CHECK(out.len == in.len && !memcmp(out.data, in.data, in.len));
		/* all new, each its own text: the encoder is the server's */
		CHECK_EQ_INT(split_row(&bin, in.data, in.len, NCOLS, v), 1);
		vals.len = 0;
		for (int k = 0; k < NCOLS; k++) {
			if (v[k].null) {
				outs[k] = (struct row_out){.kind = ROW_NULL};
				continue;
			}
			outs[k] = (struct row_out){
			    .kind = ROW_NEW, .off = (uint32_t)vals.len, .len = (int32_t)v[k].len};
			buf_append(&vals, v[k].p, v[k].len);
			buf_append(&vals, "", 0);
		}
		out.len = 0;
		CHECK_EQ_INT(
		    put_row(&bin, in.data, in.len, NCOLS, outs, vals.data, &out, why, sizeof(why)),
		    0);
		CHECK(out.len == in.len && !memcmp(out.data, in.data, in.len));
		free_cells(v, NCOLS);
		/* a value where a NULL was: its bit cleared, the value in its place */
		if (r == 1) {
			for (int k = 0; k < NCOLS; k++)
				outs[k] = (struct row_out){.kind = ROW_KEEP};
			outs[C_TU] = (struct row_out){.kind = ROW_NEW, .off = 0, .len = 3};
			outs[C_VC] = (struct row_out){.kind = ROW_NEW, .off = 3, .len = 2};
			out.len = 0;
			CHECK_EQ_INT(put_row(&bin, in.data, in.len, NCOLS, outs,
					     (const uint8_t *)"200hi", &out, why, sizeof(why)),
				     0);
			CHECK(out.len == in.len + 1 + 3 && out.data[1] == 0xe8 &&
			      out.data[3] == 0x7f && !memcmp(out.data + 5, in.data + 5, 4) &&
			      out.data[9] == 200 && !memcmp(out.data + 10, "\x02hi", 3));
			CHECK_EQ_INT(split_row(&bin, out.data, out.len, NCOLS, v), 1);
			CHECK(cell_is(&v[C_TU], "200") && cell_is(&v[C_VC], "hi") && v[C_TI].null);
			free_cells(v, NCOLS);
		}
		/* through masking with nothing to mask: copied */
		if (me) {
			out.len = 0;
			CHECK_EQ_INT(
			    mask_mybinrow(me, cp, NCOLS, cols, in.data, in.len, &out, NULL), 0);
			CHECK(out.len == in.len && !memcmp(out.data, in.data, in.len));
		}
	}
	unit_where("%s", "");
	buf_free(&in);
	buf_free(&out);
	buf_free(&vals);
	mask_engine_free(me);
	free(cols);
}

/* Masking one string in the middle of a binary row changes that cell's bytes only; masking a
 * value to NULL sets its bitmap bit and drops its bytes. */
static void test_bin_mask_one_cell(void)
{
	struct mycol *cols = calloc(NCOLS, sizeof(*cols));
	struct mask_engine *me = engine(0, UNMASKABLE_WITHHOLD);
	struct mask_colplan cp[NCOLS];
	struct buf in = {0}, out = {0}, want = {0};
	uint64_t counted[NCOLS] = {0};
	struct mask_counts counts = {.ncols = NCOLS, .cols = counted};
	const uint8_t *at;

	if (!me)
		goto out;
	real_cols(cols);
	unhex(BIN_ROWS[0], &in);

	plans(cp, cols, NCOLS);
	cp[C_VC].rule = R_REDACT;
	CHECK_EQ_INT(mask_mybinrow(me, cp, NCOLS, cols, in.data, in.len, &out, &counts), 0);
	at = memmem(in.data, in.len, "\x08Jane Roe", 9);
	CHECK(at != NULL);
	if (at) {
		buf_append(&want, in.data, (size_t)(at - in.data));
		buf_append(&want, "\x03***", 4);
		buf_append(&want, at + 9, in.len - (size_t)(at - in.data) - 9);
		CHECK(out.len == want.len && !memcmp(out.data, want.data, want.len));
	}
	CHECK_EQ_INT(counted[C_VC], 1);

	/* i (the 8th column: bitmap bit 9, the second byte's bit 1) to NULL: its 4 bytes at
	 * 1 + 4 + 4 + 1 + 1 + 2 + 2 + 4 + 4 = 23 go */
	plans(cp, cols, NCOLS);
	cp[C_I].rule = R_NULL;
	out.len = want.len = 0;
	CHECK_EQ_INT(mask_mybinrow(me, cp, NCOLS, cols, in.data, in.len, &out, NULL), 0);
	CHECK(!memcmp(in.data + 23, "\x00\x00\x00\x80", 4)); /* -2147483648 */
	buf_append(&want, in.data, 23);
	buf_append(&want, in.data + 27, in.len - 27);
	want.data[2] |= 0x02;
	CHECK(out.len == want.len && !memcmp(out.data, want.data, want.len));

	/* every column to NULL: the header, a full bitmap but for its two unused bits */
	for (int k = 0; k < NCOLS; k++)
		cp[k].rule = R_NULL;
	out.len = 0;
	CHECK_EQ_INT(mask_mybinrow(me, cp, NCOLS, cols, in.data, in.len, &out, NULL), 0);
	CHECK(out.len == 5 && !memcmp(out.data, "\x00\xfc\xff\xff\xff", 5));
out:
	buf_free(&in);
	buf_free(&out);
	buf_free(&want);
	mask_engine_free(me);
	free(cols);
}

/* Masked numbers, dates and times go back into their binary types; what the type cannot hold
 * makes the row unmaskable, and nothing is written. */
static void test_bin_masked_values(void)
{
	struct mycol *cols = calloc(NCOLS, sizeof(*cols));
	struct myrow_cols mc = {NCOLS, cols};
	struct row_codec bin;
	struct mask_engine *me = engine(0, UNMASKABLE_WITHHOLD);
	struct mask_engine *me_null = engine(0, UNMASKABLE_NULL);
	struct mask_colplan cp[NCOLS];
	struct buf in = {0}, out = {0}, tout = {0};
	struct mask_counts counts;
	struct cellv v[NCOLS], t[NCOLS];

	if (!me || !me_null)
		goto out;
	real_cols(cols);
	myrow_bin_codec(&bin, &mc);
	unhex(BIN_ROWS[0], &in);

	/* an INT masked as if it were text: "***" is no INT */
	plans(cp, cols, NCOLS);
	cp[C_I].rule = R_REDACT;
	cp[C_I].type_oid = 25;
	buf_append(&out, "prefix", 6);
	memset(&counts, 0, sizeof(counts));
	CHECK_EQ_INT(mask_mybinrow(me, cp, NCOLS, cols, in.data, in.len, &out, &counts), 1);
	CHECK(out.len == 6 && !memcmp(out.data, "prefix", 6));
	CHECK(strstr(counts.why, "column 8") && strstr(counts.why, "INT"));
	/* sending NULL for what masking cannot mask is masking's choice; this one it could */
	memset(&counts, 0, sizeof(counts));
	CHECK_EQ_INT(mask_mybinrow(me_null, cp, NCOLS, cols, in.data, in.len, &out, &counts), 1);
	CHECK_EQ_INT(out.len, 6);

	/* redact: zeros and the epoch masking uses, in the server's shortest forms */
	plans(cp, cols, NCOLS);
	for (int k = C_ID + 1; k <= C_TM3; k++)
		cp[k].rule = R_REDACT;
	out.len = 0;
	CHECK_EQ_INT(mask_mybinrow(me, cp, NCOLS, cols, in.data, in.len, &out, NULL), 0);
	CHECK_EQ_INT(split_row(&bin, out.data, out.len, NCOLS, v), 1);
	CHECK(cell_is(&v[C_TI], "0") && cell_is(&v[C_BU], "0") && cell_is(&v[C_Y], "0000"));
	CHECK(cell_is(&v[C_F], "0") && cell_is(&v[C_D], "0") && cell_is(&v[C_DE], "0"));
	CHECK(cell_is(&v[C_DT], "1900-01-01"));
	CHECK(cell_is(&v[C_DTM], "1900-01-01 00:00:00"));
	CHECK(cell_is(&v[C_DTM6], "1900-01-01 00:00:00.000000"));
	CHECK(cell_is(&v[C_TM], "00:00:00"));
	CHECK(cell_is(&v[C_TM3], "00:00:00.000"));
	CHECK(cell_is(&v[C_VC], "Jane Roe"));
	/* DATE 1900-01-01 is 04 6c07 01 01; DATETIME the same with no time; TIME zero is 00 */
	CHECK(memmem(out.data, out.len, "\x04\x6c\x07\x01\x01\x04\x6c\x07\x01\x01", 10) != NULL);
	free_cells(v, NCOLS);

	/* hash and format-preserving: the binary row masks as the text row does */
	plans(cp, cols, NCOLS);
	cp[C_I].rule = R_FP;
	cp[C_BI].rule = R_HASH;
	cp[C_BU].rule = R_HASH;
	cp[C_Y].rule = R_FP;
	cp[C_F].rule = R_HASH;
	cp[C_D].rule = R_HASH; /* (format-preserving keeps a trailing 0 only the text shows) */
	cp[C_DE].rule = R_FP;
	cp[C_DT].rule = R_HASH;
	cp[C_DTM6].rule = R_HASH;
	cp[C_TS].rule = R_FP;
	cp[C_TM3].rule = R_HASH;
	cp[C_VC].rule = R_PARTIAL;
	out.len = 0;
	CHECK_EQ_INT(mask_mybinrow(me, cp, NCOLS, cols, in.data, in.len, &out, NULL), 0);
	unhex(TEXT_ROWS[0], &in);
	{
		struct row_codec typed;

		myrow_text_codec(&typed, &mc);
		CHECK_EQ_INT(mask_rows(me, &typed, cp, NCOLS, in.data, in.len, &tout, NULL), 0);
	}
	CHECK_EQ_INT(split_row(&bin, out.data, out.len, NCOLS, v), 1);
	{
		struct row_codec text = myrow_text;

		CHECK_EQ_INT(split_row(&text, tout.data, tout.len, NCOLS, t), 1);
	}
	for (int k = 0; k < NCOLS; k++) {
		unit_where("column %s", NAMES[k]);
		CHECK(same_value(&v[k], &t[k], cols[k].decimals));
	}
	unit_where("%s", "");
	CHECK(cell_is(&v[C_VC], "J*****oe"));
	CHECK(!cell_is(&v[C_DT], "1970-01-02") && v[C_DT].len == 10);
	CHECK(!cell_is(&v[C_I], "-2147483648") && v[C_I].len == 11 && v[C_I].p[0] == '-');
	CHECK(v[C_Y].len == 4 && !cell_is(&v[C_Y], "2024"));
	CHECK(v[C_TM3].len == 12 && !memcmp(v[C_TM3].p + 8, ".000", 4));
	free_cells(v, NCOLS);
	free_cells(t, NCOLS);

	/* TINYINT hashed: a keyed int2 is mostly past 127; both protocols refuse it alike */
	unhex(BIN_ROWS[0], &in);
	plans(cp, cols, NCOLS);
	cp[C_TI].rule = R_HASH;
	out.len = tout.len = 0;
	{
		int rb = mask_mybinrow(me, cp, NCOLS, cols, in.data, in.len, &out, NULL), rt;
		struct row_codec text = myrow_text;
		long h;

		unhex(TEXT_ROWS[0], &in);
		CHECK_EQ_INT(mask_rows(me, &text, cp, NCOLS, in.data, in.len, &tout, NULL), 0);
		CHECK_EQ_INT(split_row(&text, tout.data, tout.len, NCOLS, t), 1);
		h = strtol((char *)t[C_TI].p, NULL, 10);
		CHECK_EQ_INT(rb, h > 127 ? 1 : 0);
		{
			struct row_codec typed;

			myrow_text_codec(&typed, &mc);
			tout.len = 0;
			rt = mask_rows(me, &typed, cp, NCOLS, in.data, in.len, &tout, NULL);
			CHECK_EQ_INT(rt, rb);
		}
		free_cells(t, NCOLS);
	}
out:
	buf_free(&in);
	buf_free(&out);
	buf_free(&tout);
	mask_engine_free(me);
	mask_engine_free(me_null);
	free(cols);
}

/* The detectors read a binary row's strings (copied beside its decoded numbers): an email in
 * TEXT, an SSN in JSON. */
static void test_bin_detectors(void)
{
	struct mycol *cols = calloc(NCOLS, sizeof(*cols));
	struct myrow_cols mc = {NCOLS, cols};
	struct row_codec bin;
	struct mask_engine *me = engine(ALL_DETECTORS, UNMASKABLE_WITHHOLD);
	struct mask_colplan cp[NCOLS];
	struct buf in = {0}, out = {0};
	struct cellv v[NCOLS], w[NCOLS];
	struct mask_counts counts = {0};

	if (!me)
		goto out;
	real_cols(cols);
	myrow_bin_codec(&bin, &mc);
	plans(cp, cols, NCOLS);
	unhex(BIN_ROWS[0], &in);
	CHECK_EQ_INT(mask_mybinrow(me, cp, NCOLS, cols, in.data, in.len, &out, &counts), 0);
	CHECK(!memmem(out.data, out.len, "jane.doe", 8));
	CHECK(!memmem(out.data, out.len, "123-45", 6));
	CHECK_EQ_INT(counts.det[DET_EMAIL], 1);
	CHECK_EQ_INT(counts.det[DET_US_SSN], 1);
	CHECK_EQ_INT(split_row(&bin, in.data, in.len, NCOLS, v), 1);
	CHECK_EQ_INT(split_row(&bin, out.data, out.len, NCOLS, w), 1);
	for (int k = 0; k < NCOLS; k++) {
		unit_where("column %s", NAMES[k]);
		CHECK(cells_equal(&v[k], &w[k]) == (k != C_TX && k != C_J));
	}
	unit_where("%s", "");
	CHECK(cell_is(&w[C_TX], "write to ****.***@*******.***"));
	CHECK(cell_is(&w[C_J], "{\"ssn\": \"***-**-6789\"}"));
	free_cells(v, NCOLS);
	free_cells(w, NCOLS);
out:
	buf_free(&in);
	buf_free(&out);
	mask_engine_free(me);
	free(cols);
}

/* What each type's binary value reads as, at the forms' edges; and written back from that
 * text, the same bytes. */
static void test_bin_types(void)
{
	struct mycol cols[18] = {
	    col_of(MY_TYPE_JSON, 0, 0, 0),
	    col_of(MY_TYPE_GEOMETRY, 0, 0, 0),
	    col_of(MY_TYPE_ENUM, 0x100, 1, 0),
	    col_of(MY_TYPE_SET, 0x800, 3, 0),
	    col_of(MY_TYPE_NULL, 0, 0, 0),
	    col_of(MY_TYPE_DOUBLE, 0, 22, 31),
	    col_of(MY_TYPE_DOUBLE, 0, 22, 31),
	    col_of(MY_TYPE_FLOAT, 0, 12, 31),
	    col_of(MY_TYPE_FLOAT, 0, 12, 31),
	    col_of(MY_TYPE_TIME, 0, 10, 0),
	    col_of(MY_TYPE_TIME, 0, 17, 0),
	    col_of(MY_TYPE_TIMESTAMP, 0, 19, 0),
	    col_of(MY_TYPE_DATETIME, 0, 19, 0),
	    col_of(MY_TYPE_DATE, 0, 10, 0),
	    col_of(MY_TYPE_LONG, MY_FLAG_UNSIGNED | MY_FLAG_ZEROFILL, 8, 0),
	    col_of(MY_TYPE_LONGLONG, MY_FLAG_UNSIGNED, 20, 0),
	    col_of(MY_TYPE_INT24, 0, 9, 0),
	    col_of(MY_TYPE_DECIMAL, 0, 4, 1),
	};
	static const char *const want[18] = {
	    "{\"a\":1}",
	    "\x01\x01",
	    "b",
	    "x,y",
	    NULL,
	    "0.1",
	    "-0",
	    "0.1",
	    "3.4028235e+38",
	    "51:04:05",
	    "00:00:00.000007",
	    "2001-02-03 04:05:06.000007",
	    "2020-01-02 00:00:00",
	    "0000-00-00",
	    "00000042",
	    "18446744073709551615",
	    "-1",
	    "-1.5",
	};
	/* 18 columns: a bitmap of (18 + 9) / 8 = 3 bytes; column 4 (NULL) is bit 6 */
	static const char row[] = "00 400000"			     /* header, bitmap */
				  "07 7b2261223a317d"		     /* '{"a":1}' */
				  "02 0101"			     /* two bytes of WKB */
				  "01 62"			     /* 'b' */
				  "03 782c79"			     /* 'x,y' */
				  "9a9999999999b93f"		     /* 0.1 */
				  "0000000000000080"		     /* -0.0 */
				  "cdcccc3d"			     /* 0.1f */
				  "ffff7f7f"			     /* FLT_MAX */
				  "08 00 02000000 03 04 05"	     /* 2 days 03:04:05 */
				  "0c 00 00000000 00 00 00 07000000" /* 7 microseconds */
				  "0b d107 02 03 04 05 06 07000000" /* 2001-02-03 04:05:06.000007 */
				  "04 e407 01 02"		    /* 2020-01-02 */
				  "00"				    /* the zero date */
				  "2a000000"			    /* 42 */
				  "ffffffffffffffff"		    /* 2^64 - 1 */
				  "ffffffff"			    /* -1 */
				  "04 2d312e35";		    /* '-1.5' */
	struct myrow_cols mc = {18, cols};
	struct row_codec bin;
	struct cellv v[18];
	struct row_out outs[18];
	struct buf in = {0}, out = {0}, vals = {0};
	char why[256];

	myrow_bin_codec(&bin, &mc);
	unhex(row, &in);
	CHECK_EQ_INT(split_row(&bin, in.data, in.len, 18, v), 1);
	for (int k = 0; k < 18; k++) {
		unit_where("column %d", k + 1);
		if (!want[k])
			CHECK(v[k].null);
		else
			CHECK(cell_is(&v[k], want[k]));
		if (v[k].null) {
			outs[k] = (struct row_out){.kind = ROW_NULL};
			continue;
		}
		outs[k] = (struct row_out){
		    .kind = ROW_NEW, .off = (uint32_t)vals.len, .len = (int32_t)v[k].len};
		buf_append(&vals, v[k].p, v[k].len);
	}
	unit_where("%s", "");
	CHECK_EQ_INT(put_row(&bin, in.data, in.len, 18, outs, vals.data, &out, why, sizeof(why)),
		     0);
	CHECK(out.len == in.len && !memcmp(out.data, in.data, in.len));
	free_cells(v, 18);

	/* a DATETIME of length 7 at midnight reads the same and is written in the server's
	 * form, length 4 */
	unhex("00 400000 07 7b2261223a317d 02 0101 01 62 03 782c79 9a9999999999b93f"
	      "0000000000000080 cdcccc3d ffff7f7f 08 00 02000000 03 04 05"
	      "0c 00 00000000 00 00 00 07000000 0b d107 02 03 04 05 06 07000000"
	      "07 e407 01 02 00 00 00" /* the DATETIME, with its time */
	      "00 2a000000 ffffffffffffffff ffffffff 04 2d312e35",
	      &in);
	CHECK_EQ_INT(split_row(&bin, in.data, in.len, 18, v), 1);
	CHECK(cell_is(&v[12], "2020-01-02 00:00:00"));
	out.len = 0;
	CHECK_EQ_INT(put_row(&bin, in.data, in.len, 18, outs, vals.data, &out, why, sizeof(why)),
		     0);
	CHECK(out.len + 3 == in.len);
	free_cells(v, 18);
	buf_free(&in);
	buf_free(&out);
	buf_free(&vals);
}

/* Each masked text against each column type: what the text codec with types and the binary
 * codec accept, and refuse alike. */
static void test_masked_text_fits_type(void)
{
	static const struct {
		int col;
		const char *val;
		int ok;
		const char *back; /* the binary value reads back as: NULL, val itself */
	} cases[] = {
	    {C_TI, "127", 1, NULL},
	    {C_TI, "-128", 1, NULL},
	    {C_TI, "128", 0, NULL},
	    {C_TI, "-129", 0, NULL},
	    {C_TU, "255", 1, NULL},
	    {C_TU, "256", 0, NULL},
	    {C_TU, "-1", 0, NULL},
	    {C_SI, "-32768", 1, NULL},
	    {C_SI, "32768", 0, NULL},
	    {C_SU, "65535", 1, NULL},
	    {C_SU, "65536", 0, NULL},
	    {C_MI, "8388607", 1, NULL},
	    {C_MI, "-8388608", 1, NULL},
	    {C_MI, "8388608", 0, NULL},
	    {C_MU, "16777215", 1, NULL},
	    {C_MU, "16777216", 0, NULL},
	    {C_I, "2147483647", 1, NULL},
	    {C_I, "2147483648", 0, NULL},
	    {C_IU, "4294967295", 1, NULL},
	    {C_IU, "4294967296", 0, NULL},
	    {C_BI, "-9223372036854775808", 1, NULL},
	    {C_BI, "9223372036854775808", 0, NULL},
	    {C_BU, "18446744073709551615", 1, NULL},
	    {C_BU, "18446744073709551616", 0, NULL},
	    {C_BU, "99999999999999999999", 0, NULL},
	    {C_I, "0042", 1, "42"},
	    {C_I, "12a", 0, NULL},
	    {C_I, "", 0, NULL},
	    {C_I, "-", 0, NULL},
	    {C_I, " 1", 0, NULL},
	    {C_I, "1.0", 0, NULL},
	    {C_Y, "2155", 1, NULL},
	    {C_Y, "0", 1, "0000"},
	    {C_Y, "10000", 0, NULL},
	    {C_F, "1.5e+20", 1, NULL},
	    {C_F, "-0", 1, NULL},
	    {C_F, "1e39", 0, NULL},
	    {C_F, "NaN", 0, NULL},
	    {C_F, "Infinity", 0, NULL},
	    {C_F, "0x10", 0, NULL},
	    {C_D, "1e308", 1, "1e+308"},
	    {C_D, "1e309", 0, NULL},
	    {C_D, "e5", 0, NULL},
	    {C_DE, "-12.50", 1, NULL},
	    {C_DE, "7", 1, NULL},
	    {C_DE, "1e5", 0, NULL},
	    {C_DE, ".", 0, NULL},
	    {C_DE, "***", 0, NULL},
	    {C_DT, "1900-01-01", 1, NULL},
	    {C_DT, "0000-00-00", 1, NULL},
	    {C_DT, "1900-01-01 00:00:00", 0, NULL},
	    {C_DT, "1900-13-01", 0, NULL},
	    {C_DT, "1900-01-32", 0, NULL},
	    {C_DT, "0044-03-15 BC", 0, NULL},
	    {C_DT, "19000-01-01", 0, NULL},
	    {C_DTM, "1900-01-01 00:00:00", 1, NULL},
	    {C_DTM, "2024-02-29 13:45:06.123456", 1, NULL},
	    {C_DTM, "2024-01-01 00:30:00", 1, NULL},
	    {C_DTM, "2024-01-01 00:00:00.5", 1, "2024-01-01 00:00:00.500000"},
	    {C_DTM, "2024-02-29 13:45:06.1234567", 0, NULL},
	    {C_DTM, "2024-02-29 13:45:06.", 0, NULL},
	    {C_DTM, "2024-02-29 24:00:00", 0, NULL},
	    {C_DTM, "2024-02-29 23:60:00", 0, NULL},
	    {C_DTM, "2024-02-29", 0, NULL},
	    {C_DTM, "2024-02-29 13:45:06+00", 0, NULL},
	    {C_TS, "1970-01-01 00:00:01", 1, NULL},
	    {C_TM, "00:00:00", 1, NULL},
	    {C_TM, "00:00:01", 1, NULL},
	    {C_TM, "-0:00:00", 1, "-00:00:00"},
	    {C_TM3, "01:02:03.4", 1, "01:02:03.400"},
	    {C_TM, "-838:59:59", 1, NULL},
	    {C_TM, "838:59:59.999999", 1, NULL},
	    {C_TM, "839:00:00", 0, NULL},
	    {C_TM, "12:60:00", 0, NULL},
	    {C_TM, "12:00", 0, NULL},
	    {C_TM, "3 days", 0, NULL},
	    {C_VC, "anything at all", 1, NULL},
	    {C_BL, "", 1, NULL},
	    {C_BT, "***", 1, NULL},
	};
	struct mycol *cols = calloc(NCOLS, sizeof(*cols));
	struct myrow_cols mc = {NCOLS, cols};
	struct row_codec bin, typed, plain = myrow_text;
	struct row_out outs[NCOLS];
	struct buf bin_in = {0}, text_in = {0}, out = {0};
	char why[256];

	real_cols(cols);
	myrow_bin_codec(&bin, &mc);
	myrow_text_codec(&typed, &mc);
	unhex(BIN_ROWS[0], &bin_in);
	unhex(TEXT_ROWS[0], &text_in);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *s = cases[i].val;
		int k = cases[i].col;

		unit_where("%s = \"%s\"", NAMES[k], s);
		for (int j = 0; j < NCOLS; j++)
			outs[j] = (struct row_out){.kind = ROW_KEEP};
		outs[k] = (struct row_out){.kind = ROW_NEW, .off = 0, .len = (int32_t)strlen(s)};
		why[0] = '\0';
		out.len = 0;
		CHECK_EQ_INT(put_row(&bin, bin_in.data, bin_in.len, NCOLS, outs, (const uint8_t *)s,
				     &out, why, sizeof(why)),
			     cases[i].ok ? 0 : 1);
		if (!cases[i].ok)
			CHECK(why[0] != '\0');
		if (cases[i].ok) {
			/* and it reads back as a value of the type */
			struct cellv v[NCOLS];

			CHECK_EQ_INT(split_row(&bin, out.data, out.len, NCOLS, v), 1);
			CHECK(cell_is(&v[k], cases[i].back ? cases[i].back : s));
			free_cells(v, NCOLS);
		}
		out.len = 0;
		CHECK_EQ_INT(put_row(&typed, text_in.data, text_in.len, NCOLS, outs,
				     (const uint8_t *)s, &out, why, sizeof(why)),
			     cases[i].ok ? 0 : 1);
		out.len = 0;
		CHECK_EQ_INT(put_row(&plain, text_in.data, text_in.len, NCOLS, outs,
				     (const uint8_t *)s, &out, why, sizeof(why)),
			     0);
	}
	unit_where("%s", "");
	buf_free(&bin_in);
	buf_free(&text_in);
	buf_free(&out);
	free(cols);
}

static void test_bin_malformed(void)
{
	static const struct {
		uint8_t type;
		uint16_t flags;
		int ncols;
		const char *hex;
		const char *what;
	} cases[] = {
	    {MY_TYPE_LONG, 0, 1, "", "empty"},
	    {MY_TYPE_LONG, 0, 1, "00", "no bitmap"},
	    {MY_TYPE_LONG, 0, 1, "010001000000", "a header other than 0x00"},
	    {MY_TYPE_LONG, 0, 1, "000101000000", "the first unused bitmap bit"},
	    {MY_TYPE_LONG, 0, 1, "000201000000", "the second unused bitmap bit"},
	    {MY_TYPE_LONG, 0, 1, "000801000000", "a bit past the last column"},
	    {MY_TYPE_LONG, 0, 7, "00fc03", "a bit past the last column, second byte"},
	    {MY_TYPE_LONG, 0, 1, "0000010000", "a cut INT"},
	    {MY_TYPE_LONG, 0, 1, "00000100000000", "a byte after the last value"},
	    {MY_TYPE_LONG, 0, 1, "000401", "NULL but a byte after"},
	    {MY_TYPE_INT24, 0, 1, "000000008000", "an INT24 past 2^23 - 1"},
	    {MY_TYPE_INT24, 0, 1, "0000ffff7fff", "an INT24 below -2^23"},
	    {MY_TYPE_INT24, MY_FLAG_UNSIGNED, 1, "000000000001", "an unsigned INT24 past 2^24 - 1"},
	    {MY_TYPE_YEAR, 0, 1, "00001027", "YEAR 10000"},
	    {MY_TYPE_DATE, 0, 1, "000005e807010100", "a DATE of length 5"},
	    {MY_TYPE_DATE, 0, 1, "000004e8070d01", "month 13"},
	    {MY_TYPE_DATE, 0, 1, "000004e8070120", "day 32"},
	    {MY_TYPE_DATE, 0, 1, "000004102701", "a cut DATE"},
	    {MY_TYPE_DATE, 0, 1, "00000410270101", "year 10000"},
	    {MY_TYPE_DATETIME, 0, 1, "000007e80701011800 00", "hour 24"},
	    {MY_TYPE_DATETIME, 0, 1, "000007e8070101173b3c", "second 60"},
	    {MY_TYPE_DATETIME, 0, 1, "00000be8070101173b3b40420f00", "a million microseconds"},
	    {MY_TYPE_TIME, 0, 1, "0000080022000000170000", "839 hours"},
	    {MY_TYPE_TIME, 0, 1, "0000080200000000000000", "a sign byte of 2"},
	    {MY_TYPE_TIME, 0, 1, "0000080000000000180000", "hour 24 of a day"},
	    {MY_TYPE_TIME, 0, 1, "000007000000000000", "a TIME of length 7"},
	    {MY_TYPE_TIME, 0, 1, "00000c000000000000000040420f00", "a million microseconds"},
	    {MY_TYPE_DOUBLE, 0, 1, "0000000000000000f87f", "NaN"},
	    {MY_TYPE_DOUBLE, 0, 1, "0000000000000000f0ff", "minus infinity"},
	    {MY_TYPE_FLOAT, 0, 1, "00000000807f", "infinity"},
	    {MY_TYPE_NULL, 0, 1, "000000", "a value of type NULL"},
	    {20, 0, 1, "00000161", "a type the protocol does not frame"},
	    {MY_TYPE_VAR_STRING, 0, 1, "0000056162", "a string past the end"},
	    {MY_TYPE_VAR_STRING, 0, 1, "0000fb", "0xfb as a string's length"},
	    {MY_TYPE_VAR_STRING, 0, 1, "0000ff", "0xff as a string's length"},
	    {MY_TYPE_NEWDECIMAL, 0, 1, "0000fc01", "a cut decimal length"},
	};
	struct mask_engine *me = engine(ALL_DETECTORS, UNMASKABLE_WITHHOLD);
	struct mycol cols[8];
	struct mask_colplan cp[8];
	struct buf in = {0}, out = {0};
	struct myrow_cols mc = {0, cols};
	struct row_codec bin;
	struct cellv v[8];

	if (!me)
		return;
	myrow_bin_codec(&bin, &mc);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char h[128];
		size_t o = 0;

		unit_where("%s", cases[i].what);
		for (const char *s = cases[i].hex; *s; s++)
			if (*s != ' ')
				h[o++] = *s;
		h[o] = '\0';
		for (int k = 0; k < 8; k++)
			cols[k] = col_of(cases[i].type, cases[i].flags, 10, 0);
		plans(cp, cols, 8);
		unhex(h, &in);
		out.len = 0;
		buf_append(&out, "prefix", 6);
		CHECK_EQ_INT(
		    mask_mybinrow(me, cp, cases[i].ncols, cols, in.data, in.len, &out, NULL), -1);
		CHECK(out.len == 6 && !memcmp(out.data, "prefix", 6));
		mc.ncols = cases[i].ncols;
		CHECK_EQ_INT(split_row(&bin, in.data, in.len, cases[i].ncols, v), -1);
	}
	unit_where("%s", "");
	/* well-formed, the same shapes pass */
	for (int k = 0; k < 8; k++)
		cols[k] = col_of(MY_TYPE_LONG, 0, 10, 0);
	plans(cp, cols, 8);
	unhex("00fc01", &in); /* 7 NULLs */
	out.len = 0;
	CHECK_EQ_INT(mask_mybinrow(me, cp, 7, cols, in.data, in.len, &out, NULL), 0);
	CHECK(out.len == 3 && !memcmp(out.data, in.data, 3));
	/* the codec's columns must be the row's */
	unhex("000001000000", &in);
	mc.ncols = 2;
	CHECK_EQ_INT(split_row(&bin, in.data, in.len, 1, v), -1);
	mc.ncols = 1;
	CHECK_EQ_INT(split_row(&bin, in.data, in.len, 1, v), 1);
	free_cells(v, 1);
	buf_free(&in);
	buf_free(&out);
	mask_engine_free(me);
}

int main(void)
{
	UNIT_RUN(test_coldefs_from_mariadb);
	UNIT_RUN(test_coldef_malformed);
	UNIT_RUN(test_lenenc);
	UNIT_RUN(test_text_rows_from_mariadb);
	UNIT_RUN(test_text_length_prefixes);
	UNIT_RUN(test_text_malformed);
	UNIT_RUN(test_bin_reads_as_text);
	UNIT_RUN(test_bin_round_trip);
	UNIT_RUN(test_bin_mask_one_cell);
	UNIT_RUN(test_bin_masked_values);
	UNIT_RUN(test_bin_detectors);
	UNIT_RUN(test_bin_types);
	UNIT_RUN(test_masked_text_fits_type);
	UNIT_RUN(test_bin_malformed);
	mask_thread_release();
	return unit_report();
}
