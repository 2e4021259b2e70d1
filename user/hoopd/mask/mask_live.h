/*
 * Masking in the daemon: the running policy's masking engine (rebuilt on reload, refcounted so a
 * statement finishes under the engine it started with), the HMAC key, and the per-result column
 * plans that join what the server says of each column (coldesc.h: the table and column it
 * comes from, type, format) with what the statement's parse tree says (maskplan.h). Engines
 * call this with their columns and their row codec (rowcodec.h); it never reads wire bytes.
 */
#ifndef HOOP_MASKING_H
#define HOOP_MASKING_H

#include "catalog.h"
#include "coldesc.h"
#include "mask.h"
#include "maskplan.h"
#include "rowcodec.h"

struct policy;

struct masking {
	int refs;
	uint64_t gen; /* unique to this engine (stmtcache.h keys on it) */
	struct mask_policy mp;
	struct mask_engine *me;
};

/* Build the masking of a policy's masking section mp (key from mp->hmac_key_file or
 * <state>/mask.key, made on first use). On failure the running masking stays and err says why.
 * It takes the section, not the policy, so that masking stays below the policy loader. */
int masking_load(const struct mask_policy *mp, const char *state_dir, char *err, size_t errn);
/* masking_load's two halves: the broker reads the key (making it on first use), an engine
 * worker, which opens no file, is sent it and installs the engine with it. */
int masking_read_key(const struct mask_policy *mp, const char *state_dir, uint8_t key[32],
		     char *err, size_t errn);
int masking_install(const struct mask_policy *mp, const uint8_t key[32], char *err, size_t errn);
void masking_stop(void);
/* The running masking with a reference, or NULL when the policy masks nothing. */
struct masking *masking_get(void);
void masking_put(struct masking *m);
/* Does the running policy mask anything? */
int masking_enabled(void);

/* A statement's provenance plan, shared (prepared statements, portals, cursors). */
struct mplan {
	int refs;
	struct maskplan p;
};
/* shadow: names of relations the session made (maskplan_build_ex). */
struct mplan *mplan_build(const struct masking *m, const struct catalog *cat, const char *sql,
			  size_t len, const char (*shadow)[64], int nshadow);
/* A plan whose every column is unknown (no provenance: fail closed). */
struct mplan *mplan_unknown(void);
struct mplan *mplan_ref(struct mplan *p);
void mplan_put(struct mplan *p);

/* One result being masked. */
struct mask_result {
	struct mask_colplan *cols;
	int ncols;
	struct mask_counts counts;
	struct row_codec codec; /* how its messages are laid out (ops NULL: none yet) */
	int copy;
	struct mask_copy copy_opts;
	uint32_t unknown_oid; /* a table OID the catalog does not know (it may be stale) */
};

/* Plans for a row result from its columns c[0..n) and the statement's plan (NULL: none); its
 * rows are read with codec (copied: a stateless one, or one whose state outlives r). 0, or
 * -ENOMEM. */
int masking_plan_rows(struct mask_result *r, const struct masking *m, const struct catalog *cat,
		      const struct maskplan *sql, const struct col_desc *c, int n,
		      const struct row_codec *codec);
/* PostgreSQL's COPY TO STDOUT: plans from CopyOutResponse's formats and the statement's plan,
 * with r->copy_opts from the statement; the caller then sets r->codec to its COPY codec over
 * r->copy_opts. 0; -EINVAL when the plan does not describe this COPY (the caller withholds). */
int masking_plan_copy(struct mask_result *r, const struct masking *m, const struct catalog *cat,
		      const struct maskplan *sql, int overall_format, const int16_t *formats,
		      int n);
/* One message of the result through its codec and plans into out: mask_rows' returns (1: the
 * result must be withheld, r->counts.why says why). */
int masking_rows(struct mask_result *r, const struct masking *m, const uint8_t *msg, size_t len,
		 struct buf *out);
void mask_result_free(struct mask_result *r);
/* The detectors over one piece of text (an error message): appends the masked text to out. */
int masking_text(const struct masking *m, const char *s, size_t n, struct buf *out);
/* The counts as a JSON object for the complete record, or NULL when nothing was masked
 * (malloc'd). */
char *mask_result_json(const struct mask_result *r);

#endif
