/*
 * The row codec interface: how one engine's result rows are split into cells for masking and
 * written again from the masked cells. Masking (mask.h mask_rows) owns the values and the
 * detectors and never reads a wire format; a codec owns one format's framing and cell encoding
 * and never decides what to mask. A codec includes this header, buf.h and mask.h (for
 * mask_rows and its own options); never mask_int.h.
 *
 * mask_rows drives a codec over one message:
 *
 *	begin(msg)                         the message's header (and a signature) into out
 *	while split(msg, &off, &row) == 1  one row's cells
 *		masking fills row.outs
 *		unchanged: the row's raw bytes msg[row.start..row.end) are copied as they came
 *		changed:   put_row(row) writes it again
 *	end(msg, off)                      a trailer, the message's length fixed up
 *
 * and on any failure (a malformed message, -1; a value that cannot be masked, 1) drops all it
 * wrote: what cannot be masked is not sent, not even in part.
 *
 * Cells: each cell's bytes are what masking reads as a value of its column's type in the cell
 * format (row_codec.cell_format, or each column's own mask_colplan.format). A cell points into
 * the message itself when its bytes are the value already (PostgreSQL DataRow, binary COPY,
 * MySQL text rows), or into row.scratch when the codec had to decode it (COPY text escapes,
 * CSV quotes). The detectors scan all cells of a row in one pass over
 * row.base[first cell .. last cell's end), so cells must lie in one buffer (row.base), in
 * column order, not overlapping, and bytes between them must not join two cells' text into one
 * identifier: a length field or a separator byte between cells is enough.
 *
 * PostgreSQL's codecs are pgrow.h; MySQL's are myrow.h, two more. Each sees one row packet's
 * payload: the engine joins a row sent over 16 MB continuation packets first and writes the
 * 4-byte packet header(s) of what the codec appended itself, so their begin and end write
 * nothing.
 *  - text rows (COM_QUERY): each cell a length-encoded string or 0xFB for NULL. split reads the
 *    lengths and points cells into the payload (the length prefix separates them); cell_format
 *    0 (every value is its text); put_row writes the new length-encoded strings.
 *  - binary rows (COM_STMT_EXECUTE, COM_STMT_FETCH): 0x00, a NULL bitmap offset by 2 bits, then
 *    each non-NULL value in its type's binary form. split takes NULLs from the bitmap; string,
 *    decimal, JSON and BLOB values are length-encoded text; integers, floats, dates and times
 *    are fixed little-endian or length-prefixed structs that masking does not know: the codec
 *    decodes them to their text into row.scratch (and copies the row's strings there too, all
 *    cells in one buffer) and presents the row with cell_format 0 and column types mapped to
 *    the PostgreSQL type of the same text (masking's types are PostgreSQL's OIDs:
 *    mycol_pg_type); put_row encodes a masked value back into the binary form (NULL: set its
 *    bitmap bit), and a masked value it cannot encode in the type is unmaskable: put_row
 *    returns 1.
 */
#ifndef HOOP_ROWCODEC_H
#define HOOP_ROWCODEC_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* One cell of a row, as split. */
struct row_cell {
	const uint8_t *p;	   /* the value's bytes, in row.base */
	int32_t len;		   /* -1: NULL */
	uint32_t raw_off, raw_len; /* the codec's own: where the cell was on the wire */
};

/* What masking made of a cell. */
enum row_out_kind { ROW_KEEP = 0, ROW_NULL, ROW_NEW };

struct row_out {
	uint8_t kind; /* enum row_out_kind */
	uint32_t off; /* ROW_NEW: the new value is row.vals[off..off+len) */
	int32_t len;
};

/* One row between split and put_row. */
struct row {
	int ncols;
	struct row_cell *cells;	    /* [ncols]: split fills them */
	const struct row_out *outs; /* [ncols]: masking's verdict per cell, for put_row */
	const uint8_t *vals;	    /* the new values outs point into */
	const uint8_t *base;	    /* split: the buffer every cells[i].p points into */
	size_t start, end;	    /* split: the row as it came is msg[start..end) */
	size_t mark;		    /* split, for put_row: the codec's own (where a line ends) */
	struct buf *scratch;	    /* split: room for decoded cells, empty at each split */
	char *why;		    /* put_row: why a row cannot be sent (when it returns 1) */
	size_t whyn;
};

struct row_codec;

struct row_codec_ops {
	const char *name;
	/* The message's header into out, and where its first row starts (*off). 0, or -1 when
	 * the message is malformed. */
	int (*begin)(struct row_codec *c, const uint8_t *msg, size_t len, size_t *off,
		     struct buf *out);
	/* The next row of msg[*off..len) into r (cells, base, start, end, mark); *off moves past
	 * it. 1: a row; 0: no more rows (what is left is end's); -1: malformed (a cell that
	 * overruns, the wrong number of cells, a row cut short). */
	int (*split)(struct row_codec *c, const uint8_t *msg, size_t len, size_t *off,
		     struct row *r);
	/* A changed row into out, from its cells (ROW_KEEP: the cell as it came, ROW_NULL, or
	 * ROW_NEW from r->vals). 0, 1 (it cannot be written validly: r->why says why) or -1. */
	int (*put_row)(struct row_codec *c, const uint8_t *msg, const struct row *r,
		       struct buf *out);
	/* What follows the last row (msg[off..len)) and the header fixed up; out[start..) is the
	 * message written since begin. 0, 1 (it cannot be sent: why says) or -1. */
	int (*end)(struct row_codec *c, const uint8_t *msg, size_t len, size_t off, size_t start,
		   struct buf *out, char *why, size_t whyn);
};

/* One result's codec: its operations and their state. */
struct row_codec {
	const struct row_codec_ops *ops;
	int cell_format; /* -1: each column's own (mask_colplan.format); 0 text; 1 binary */
	void *state;	 /* the codec's, across one result's messages (a struct mask_copy) */
};

#endif
