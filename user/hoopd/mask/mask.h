/*
 * PHI masking of result values: the policy's masking section, the value-level engine (column
 * styles, content detectors, type-valid encodings in text and binary formats) and mask_rows,
 * which masks the cells a row codec (rowcodec.h) splits a result message into. Which result
 * column derives from which masked column is maskplan.h's job; how an engine's rows are laid
 * out is its codec's (PostgreSQL's: pgrow.h). This module only applies a per-column plan to
 * cell values. It never parses SQL and never reads a wire format.
 */
#ifndef HOOP_MASK_H
#define HOOP_MASK_H

#include <stddef.h>
#include <stdint.h>

struct buf;
struct row_codec;

enum mask_style {
	MASK_REDACT = 0,	 /* a fixed, type-valid placeholder */
	MASK_PARTIAL,		 /* keep the first/last N characters, the rest '*' */
	MASK_HASH,		 /* keyed HMAC-SHA-256, deterministic: joins and GROUP BY still work */
	MASK_NULL,		 /* SQL NULL */
	MASK_FORMAT_PRESERVING,	 /* same length and character classes, keyed and deterministic */
	MASK_STYLE_COUNT
};

enum mask_detector {
	DET_US_SSN = 0, /* area/group/serial validity; bare 9 digits only with column context */
	DET_EMAIL,
	DET_PHONE,	 /* NANP and E.164 */
	DET_CREDIT_CARD, /* Luhn */
	DET_MRN,	 /* the policy's mrn_pattern */
	DET_DOB,	 /* dates, only with column context (a birth-date column) */
	DET_IPV4,
	DET_COUNT
};

#define MASK_MAX_RULES 256
#define MASK_NAME 64

/* masking.columns[i]: "[schema.]table.column", each part a glob (fnmatch); no schema = any. */
struct mask_column_rule {
	char schema[MASK_NAME]; /* "" = any schema */
	char table[MASK_NAME];
	char column[MASK_NAME];
	enum mask_style style;
	int keep_first, keep_last; /* partial */
	int free_text;		   /* free text that may embed identifiers: the column itself goes
				    * through the detectors, and anything computed from it (reverse(),
				    * encode(), string_agg()...) is redacted, since detectors cannot see
				    * through a transformation; style is redact */
	int line;		   /* where it is in the policy file */
};

enum mask_unmaskable {
	UNMASKABLE_WITHHOLD = 0, /* fail the statement: the agent gets an error, not the rows */
	UNMASKABLE_NULL,	 /* send SQL NULL in place of the value */
};

struct mask_policy {
	int enabled; /* the policy has a masking section */
	struct mask_column_rule rules[MASK_MAX_RULES];
	int nrules;
	unsigned detectors;	/* 1 << enum mask_detector; default all */
	char mrn_pattern[256];	/* Hyperscan/PCRE syntax; default "MRN-[0-9]{8}" */
	char hmac_key_file[512]; /* "" = <state>/mask.key, made on first start (0400) */
	enum mask_unmaskable on_unmaskable;
	/* style for values whose provenance cannot be established (table OID 0 and no plan):
	 * redact by default; MASK_NULL is allowed; anything needing the original is not. */
	enum mask_style unknown_style;
	/* style applied to a detector's match inside a text value: partial (keep last 4 of the
	 * digits) by default, or redact/hash/format_preserving */
	enum mask_style detector_style;
};

const char *mask_style_name(enum mask_style s);
int mask_style_from_name(const char *name); /* -1 if unknown */
const char *mask_detector_name(enum mask_detector d);
int mask_detector_from_name(const char *name); /* -1 if unknown */

/* Column context from a column name (the source column's, or the result's): bits of
 * 1 << DET_DOB (birth date: dob, birth_date, date_of_birth, birthdate...) and 1 << DET_US_SSN
 * (ssn, social_security...: bare 9-digit numbers there are SSNs). */
unsigned mask_context_from_name(const char *column);

/* ---- the engine ---- */

struct mask_engine; /* compiled detectors, the key, settings: immutable, shared by sessions */

/* Build from the policy; key is the 32-byte HMAC key. 0, or -1 with err filled (e.g. a bad
 * mrn_pattern, with what Hyperscan said). */
int mask_engine_new(const struct mask_policy *mp, const uint8_t key[32],
		    struct mask_engine **out, char *err, size_t errn);
void mask_engine_free(struct mask_engine *me);

/* Each thread that masks keeps a workspace (Hyperscan scratch, row buffers), made on first use
 * and kept for the next rows; this frees the calling thread's. */
void mask_thread_release(void);

/* How one result column is treated. */
#define MASK_RULE_NONE (-1)
#define MASK_RULE_UNKNOWN (-2) /* provenance unknown: mp->unknown_style */
/* A text column (or one of a type hoop does not know) that no rule names, with detectors on:
 * the column itself goes through the detectors, anything computed from it is redacted (the
 * detectors cannot read through translate(), encode(), a cast to tsvector, one character per
 * row), as with a free_text rule. A plan's verdict only: masking turns it into NONE or UNKNOWN. */
#define MASK_RULE_FREE (-3)
/* Can the detectors read a value of this type (text-like, or an array of text-like)? */
int mask_type_detectable(uint32_t type_oid);
struct mask_colplan {
	int rule;	   /* index into mp->rules, MASK_RULE_NONE, or MASK_RULE_UNKNOWN */
	int derived;	   /* computed from the masked column, not the column itself: partial and
			    * format_preserving become redact (a substr() window must not reveal
			    * what partial hides) */
	unsigned context;  /* mask_context_from_name() bits for the detectors */
	/* the value's type in masking's vocabulary, PostgreSQL's type OIDs (whose text and binary
	 * encodings mask_value.c knows): PostgreSQL's own from its columns (col_desc.type);
	 * another engine's columns by the PostgreSQL type of the same text (rowcodec.h) */
	uint32_t type_oid;
	int16_t format;	   /* the cells' format, 0 text, 1 binary (col_desc.format; COPY's) */
	char label[130];   /* "patients.ssn": counts are reported under this name */
};

struct mask_counts {
	int ncols;
	uint64_t *cols;		   /* cells masked per result column by a column rule (or by
				    * unknown_style, or NULLed as unmaskable); sized ncols by the
				    * caller; NULL: not counted */
	uint64_t det[DET_COUNT];   /* detector matches masked (whole date/inet/SSN-integer values
				    * masked by a detector count here, not in cols) */
	uint64_t withheld;	   /* values that could not be masked (withheld or sent as NULL) */
	char why[256];		   /* when withholding: which column and type, for the error */
};

/*
 * Mask one result message through its engine's row codec: every row the codec splits out of
 * msg[0..len) has its cells masked by the plan (column rules first, then the detectors on
 * every text-like value not already masked) and is written again by the codec; the whole new
 * message is appended to out. Returns 0; 1 when a value cannot be masked validly for its type
 * and mp->on_unmaskable is withhold, or the codec cannot write a masked row (nothing appended;
 * counts->why says why); -1 on a malformed message (as the codec reads it: a row whose column
 * count differs from ncols is malformed) or no memory. counts may be NULL.
 */
int mask_rows(const struct mask_engine *me, struct row_codec *codec,
	      const struct mask_colplan *cols, int ncols, const uint8_t *msg, size_t len,
	      struct buf *out, struct mask_counts *counts);

/* PostgreSQL's COPY ... TO STDOUT: the format and options the statement gave (maskplan.h
 * fills them), for its codec (pgrow.h). */
struct mask_copy {
	int format; /* 0 text, 1 csv, 2 binary */
	char delim; /* text: '\t', csv: ',' unless given */
	char quote, escape; /* csv: '"' unless given */
	char null_str[32];  /* text: "\\N", csv: "" unless given */
	int header;	    /* csv HEADER: the first line is column names */
	/* state across messages */
	int header_done;    /* text/csv: header line passed; binary: signature read */
};

/* The counts as the "masked" JSON object of the statement's complete record
 * ({"columns": {label: n}, "detectors": {name: n}}), appended to out as text; nothing appended
 * when nothing was masked. */
void mask_counts_json(const struct mask_colplan *cols, const struct mask_counts *c,
		      struct buf *out);

#endif
