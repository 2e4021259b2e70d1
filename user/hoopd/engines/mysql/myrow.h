/*
 * MySQL's result rows as row codecs (rowcodec.h), and the pieces of the protocol they stand on:
 * length-encoded integers and strings, and Protocol::ColumnDefinition41. Text rows (COM_QUERY)
 * and binary rows (COM_STMT_EXECUTE, COM_STMT_FETCH) are split strictly into cells, masking
 * (mask.h) decides each cell, and a changed row is written again with its lengths, NULL bitmap
 * and binary values recomputed; a row nothing touches is copied once, as it came.
 *
 * Each codec sees ONE row packet's payload, without the 4-byte packet header: the engine
 * joins a row sent over 16 MB continuation packets into one payload first, and writes the
 * header(s) of what the codec appended itself (splitting it again when it is 16 MB or more).
 * So begin and end write nothing: out receives the rewritten payload only.
 *
 * Pure functions over their arguments: no engine state, nothing kept across calls but what the
 * caller's struct myrow_cols holds.
 */
#ifndef HOOP_MYROW_H
#define HOOP_MYROW_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "mask.h"
#include "rowcodec.h"

/* Column types (include/field_types.h enum enum_field_types); values are the wire's. */
enum my_type {
	MY_TYPE_DECIMAL = 0,
	MY_TYPE_TINY = 1,
	MY_TYPE_SHORT = 2,
	MY_TYPE_LONG = 3,
	MY_TYPE_FLOAT = 4,
	MY_TYPE_DOUBLE = 5,
	MY_TYPE_NULL = 6,
	MY_TYPE_TIMESTAMP = 7,
	MY_TYPE_LONGLONG = 8,
	MY_TYPE_INT24 = 9,
	MY_TYPE_DATE = 10,
	MY_TYPE_TIME = 11,
	MY_TYPE_DATETIME = 12,
	MY_TYPE_YEAR = 13,
	MY_TYPE_NEWDATE = 14,
	MY_TYPE_VARCHAR = 15,
	MY_TYPE_BIT = 16,
	MY_TYPE_TIMESTAMP2 = 17, /* the *2 types are the server's own; sent as their base type */
	MY_TYPE_DATETIME2 = 18,
	MY_TYPE_TIME2 = 19,
	MY_TYPE_JSON = 245, /* MySQL's; MariaDB's JSON is a LONGTEXT (BLOB) */
	MY_TYPE_NEWDECIMAL = 246,
	MY_TYPE_ENUM = 247,
	MY_TYPE_SET = 248,
	MY_TYPE_TINY_BLOB = 249,
	MY_TYPE_MEDIUM_BLOB = 250,
	MY_TYPE_LONG_BLOB = 251,
	MY_TYPE_BLOB = 252,
	MY_TYPE_VAR_STRING = 253,
	MY_TYPE_STRING = 254,
	MY_TYPE_GEOMETRY = 255,
};

/* Column flags that change how a value is read. */
#define MY_FLAG_UNSIGNED 0x0020
#define MY_FLAG_ZEROFILL 0x0040 /* text integers are zero-padded to the column's length */
#define MY_FLAG_BINARY	 0x0080

#define MY_CHARSET_BINARY 63 /* BINARY, VARBINARY, BLOB, BIT, GEOMETRY, numbers */

/*
 * Name bounds, in bytes with the NUL. Schema, table and column names are at most 64
 * characters (256 bytes in utf8mb4); the aliases a query gives (the column's name, the
 * table's) up to 256 characters in MySQL (MariaDB sends at most 255 bytes of them). A name
 * longer than its bound makes the definition malformed.
 */
#define MYCOL_NAME  (64 * 4 + 1)
#define MYCOL_ALIAS (256 * 4 + 1)

/* One Protocol::ColumnDefinition41, as mycol_parse read it. */
struct mycol {
	char catalog[MYCOL_NAME]; /* always "def" */
	char schema[MYCOL_NAME];
	char table[MYCOL_ALIAS]; /* the table's alias in the query, or its name */
	char org_table[MYCOL_NAME];
	char name[MYCOL_ALIAS]; /* the column's alias, or its name, or the expression's text */
	char org_name[MYCOL_NAME];
	uint16_t charset; /* collation id; 63: binary */
	uint32_t length;  /* display length */
	uint8_t type;	  /* enum my_type */
	uint16_t flags;	  /* MY_FLAG_* and the rest (NOT_NULL, PRI_KEY, BLOB, ENUM, SET...) */
	uint8_t decimals; /* fractional digits: DECIMAL's scale, a temporal type's precision */
};

/*
 * A ColumnDefinition41 payload (no packet header) into c: six length-encoded strings
 * (catalog, schema, table, org_table, name, org_name), the length 0x0c of the fixed fields,
 * charset u16, length u32, type u8, flags u16, decimals u8, two filler bytes, and nothing
 * after (COM_FIELD_LIST's default values are not read; MariaDB's extended type info is not
 * negotiated, so its extra string is refused). 0, or -1 when malformed: a field that overruns,
 * bytes after the end, a name with a NUL or longer than its bound, a fixed length other than
 * 0x0c.
 */
int mycol_parse(const uint8_t *p, size_t len, struct mycol *c);

/*
 * The PostgreSQL type (masking's vocabulary, mask_colplan.type_oid) whose text form is the
 * column's: each MySQL integer type maps to the smallest PostgreSQL integer that holds all of
 * its values, so every value reads; a masked value must still fit the MySQL type, or the
 * codec refuses it (unmaskable). 0 for types masking cannot produce a valid value of (BIT,
 * GEOMETRY, an unknown type): a rule on them is unmaskable, except null.
 *
 *	MySQL type                                    PostgreSQL            OID
 *	TINY, YEAR                                    int2                  21
 *	SHORT                                         int2 (UNSIGNED: int4) 21 / 23
 *	INT24                                         int4                  23
 *	LONG                                          int4 (UNSIGNED: int8) 23 / 20
 *	LONGLONG                                      int8 (UNSIGNED: numeric) 20 / 1700
 *	FLOAT                                         float4                700
 *	DOUBLE                                        float8                701
 *	DECIMAL, NEWDECIMAL                           numeric               1700
 *	DATE, NEWDATE                                 date                  1082
 *	DATETIME, TIMESTAMP (and *2)                  timestamp             1114
 *	TIME (and TIME2)                              time                  1083
 *	VARCHAR, VAR_STRING, STRING, ENUM, SET,       text                  25
 *	  TINY/MEDIUM/LONG/BLOB (binary ones too), NULL
 *	JSON                                          json                  114
 *	BIT, GEOMETRY, anything else                  none                  0
 *
 * time, not interval: masking writes a time of day ("00:00:00", a keyed "HH:MM:SS"), which is
 * a valid MySQL TIME, where interval's text ("12 days") is not. Binary strings and BLOBs are
 * text: their masked values ("***", "h:<hex>") are bytes like any other, and the detectors
 * read them (an SSN in a BLOB is found).
 */
uint32_t mycol_pg_type(const struct mycol *c);

/*
 * A length-encoded integer at p[*off..len): < 0xfb itself, 0xfc + 2 bytes, 0xfd + 3, 0xfe + 8
 * (little-endian); *off moves past it. 0, or -1 when it overruns or starts with 0xfb (NULL in
 * a row, not an integer) or 0xff (an error packet's marker).
 */
int my_lenenc_int(const uint8_t *p, size_t len, size_t *off, uint64_t *v);
/* v in the shortest length-encoded form, appended to out. 0 or -1 (no memory). */
int my_put_lenenc_int(struct buf *out, uint64_t v);
/* s[0..n) as a length-encoded string. 0 or -1 (no memory). */
int my_put_lenenc_str(struct buf *out, const void *s, size_t n);

/* A result's column definitions, for the codecs that read by type: the caller's, and it must
 * outlive the codec. */
struct myrow_cols {
	int ncols;
	const struct mycol *cols;
};

/*
 * Text rows: per column a length-encoded string, or 0xfb for NULL; exactly ncols of them and
 * nothing after. Cells point into the payload (their length prefixes separate them);
 * cell_format 0. A masked cell is written as a new length-encoded string. myrow_text reads no
 * type: any masked text is written. myrow_text_codec with the result's columns (NULL: as
 * myrow_text) also refuses (put_row 1, unmaskable) a masked value the column's type could not
 * hold: an integer out of its range or not an integer, a date that is not one... the same
 * test the binary codec's encoding makes.
 */
extern const struct row_codec myrow_text;
void myrow_text_codec(struct row_codec *c, const struct myrow_cols *cols);

/*
 * Binary rows: 0x00, a NULL bitmap of (ncols + 7 + 2) / 8 bytes whose first two bits are
 * unused, then each non-NULL value in its column's binary form (cols says the types): TINY 1
 * byte, SHORT and YEAR 2, LONG and INT24 4, LONGLONG 8, FLOAT 4, DOUBLE 8, little-endian and
 * signed unless UNSIGNED; DATE, DATETIME and TIMESTAMP a length 0, 4, 7 or 11 and that many
 * bytes of fields, TIME a length 0, 8 or 12; every other type a length-encoded string.
 * Malformed: a value that overruns, bytes after the last, a bitmap bit set beyond the
 * columns or in the two unused bits, a field out of its range (month 13, minute 60, a TIME
 * past 838 hours, an INT24 past 24 bits, a YEAR past 9999, a float that is not finite), a
 * non-NULL value of type NULL or of a type not above.
 *
 * split presents every value as its text (cell_format 0): numbers, dates and times as the
 * server's text protocol writes them (integers in decimal, zero-filled to the column's length
 * under ZEROFILL; floats in the shortest decimal that reads back the same; 'YYYY-MM-DD',
 * 'YYYY-MM-DD HH:MM:SS[.f]', '[-]HH:MM:SS[.f]' with days folded into the hours and as many
 * fractional digits as the column's decimals, 6 when it says none but the value has them).
 * Those are decoded into row.scratch; since masking needs all of a row's cells in one buffer,
 * a row with any of them has its strings copied there too (NUL between cells); a row of
 * strings and NULLs only points into the payload.
 *
 * put_row writes masked strings as length-encoded strings, NULL as its bitmap bit, and parses
 * a masked number, date or time back into its column's binary form; one it cannot (not a
 * number, out of the type's range, not a date) makes the row unmaskable (1, r->why set).
 */
void myrow_bin_codec(struct row_codec *c, const struct myrow_cols *cols);

/* The largest payload a codec writes: MySQL's largest max_allowed_packet (1 GiB). A masked row
 * longer than that is unmaskable. */
#define MYROW_MAX_PAYLOAD (1u << 30)

/*
 * Rewrite one text row payload by the plan, appending the new payload (no packet header) to
 * out: mask_rows with myrow_text (no type checks; the engine, which has the columns, uses
 * myrow_text_codec). Returns 0; 1 when a value cannot be masked validly and
 * mp->on_unmaskable is withhold (nothing appended; counts->why says which); -1 on a
 * malformed row or no memory. A row whose cell count differs from ncols is malformed.
 */
int mask_mytextrow(const struct mask_engine *me, const struct mask_colplan *cols, int ncols,
		   const uint8_t *payload, size_t len, struct buf *out, struct mask_counts *counts);

/* The same for one binary row payload of a result whose column definitions are coldefs[ncols].
 * Same returns as mask_mytextrow; also 1 when a masked value cannot be written in its
 * column's binary type. */
int mask_mybinrow(const struct mask_engine *me, const struct mask_colplan *cols, int ncols,
		  const struct mycol *coldefs, const uint8_t *payload, size_t len, struct buf *out,
		  struct mask_counts *counts);

#endif
