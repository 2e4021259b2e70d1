/*
 * PostgreSQL's result rows as row codecs (rowcodec.h): DataRow, and CopyData of COPY TO STDOUT
 * in text, CSV and binary formats. Each message is split strictly into cells, masking (mask.h)
 * decides each cell, and a changed row is written again in the same format and options with
 * its lengths recomputed; a row nothing touches is copied once, as it came.
 */
#ifndef HOOP_PGROW_H
#define HOOP_PGROW_H

#include <stddef.h>
#include <stdint.h>

#include "mask.h"
#include "rowcodec.h"

/* DataRow (int16 count, then per column int32 length (-1 NULL) and bytes), each column in its
 * own format (mask_colplan.format, from Bind's result formats). Stateless: share it. */
extern const struct row_codec pgrow_datarow;

/* COPY TO STDOUT under the options cp (format, delimiter, quote, escape, NULL marker, header),
 * which also keep the state across a result's messages: cp must outlive the codec. PostgreSQL
 * sends whole rows per message (binary's signature rides with the first row and its trailer
 * alone): a payload that ends inside a row is malformed. */
void pgrow_copy_codec(struct row_codec *c, struct mask_copy *cp);

/*
 * Rewrite one DataRow body by the plan, appending the whole new message ('D', int32 length,
 * body) to out: mask_rows with pgrow_datarow. Returns 0; 1 when a value cannot be masked
 * validly for its type and mp->on_unmaskable is withhold (nothing appended; counts->why says
 * which); -1 on a malformed row or no memory. A row whose column count differs from ncols is
 * malformed.
 */
int mask_datarow(const struct mask_engine *me, const struct mask_colplan *cols, int ncols,
		 const uint8_t *body, size_t len, struct buf *out, struct mask_counts *counts);

/* Rewrite one CopyData payload of COPY TO STDOUT, appending the whole new message ('d',
 * length, payload) to out: mask_rows with pgrow_copy_codec(cp). Same returns as
 * mask_datarow. */
int mask_copydata(const struct mask_engine *me, const struct mask_colplan *cols, int ncols,
		  struct mask_copy *cp, const uint8_t *data, size_t len, struct buf *out,
		  struct mask_counts *counts);

#endif
