/*
 * Private to the policy loader (policy.c, policy_yaml.c): the file being read, errors at a node's
 * place, and the key tables every section of the file is read by. Nothing else includes this.
 */
#ifndef HOOP_POLICY_INT_H
#define HOOP_POLICY_INT_H

#include <stddef.h>
#include <stdint.h>
#include <yaml.h>

#include "policy.h"

struct pctx {
	const char *path;
	const unsigned char *text; /* the whole file, for positions libyaml gives as offsets */
	size_t len;
	yaml_document_t *doc;
	char *err;
	size_t errn;
};

/* "FILE:LINE:COL: what" (or "FILE: what" without a mark) into c->err; returns -EINVAL. */
int pol_fail_at(struct pctx *c, const yaml_mark_t *m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define fail(c, n, ...) pol_fail_at(c, (n) ? &(n)->start_mark : NULL, __VA_ARGS__)

/* Text from the file inside a message: at most SHOW_MAX bytes (cut between characters, then
 * "..."), control bytes as \xNN, so one bad value can neither flood nor split a log line. */
#define SHOW_MAX 64
#define SHOW_BUF (4 * SHOW_MAX + 4)

const char *pol_show(const char *s, char buf[SHOW_BUF]);
/* The text of a scalar node, or NULL for anything else. */
const char *pol_scalar(yaml_node_t *n);
int pol_decimal(const char *s, unsigned max, unsigned *out);
/* Index of key in names (NULL-terminated), or -1. */
int pol_key_index(const char *key, const char *const *names);
/* A list of words (or one word) into l; lower-cased when fold is set. */
int pol_list(struct pctx *c, yaml_node_t *v, const char *what, struct policy_list *l, int fold);

/* ---- sections as key tables ---- */

/*
 * Every mapping of the file (the top level, a target, a rule and its match and when, masking
 * and its columns, audit, approvals, catalog, limits) is read by pol_section over a table of
 * its keys (policy.c), the way PgBouncer's bouncer_params[] and Redis's static_configs[] are: a
 * key's name, the type of its value, where it goes in the section's struct, its bounds, and the
 * message when the value is wrong. The message is a format given (key, field size) in that
 * order; it may use neither, the key, or both.
 */
enum pkey_type {
	PK_STR,	     /* text into char[size]; PK_NONEMPTY, PK_ABSPATH */
	PK_LIST,     /* struct policy_list; PK_FOLD lower-cases */
	PK_BOOL,     /* int: true or false */
	PK_UINT,     /* plain decimal from min to max into a 4- or 8-byte unsigned field */
	PK_BYTES,    /* a byte count (KiB, MiB, GiB) from min to max, likewise */
	PK_DURATION, /* int64_t seconds; PK_NONZERO */
	PK_ENUM,     /* one of names[] into an int-sized field: values[i], or i */
	PK_SECTION,  /* a mapping read by sub into the field (off 0: the same struct) */
	PK_FN,	     /* anything else: fn reads v into the section's struct */
};

enum { PK_NONEMPTY = 1, PK_ABSPATH = 2, PK_FOLD = 4, PK_NONZERO = 8 };

struct psection;

struct pkey {
	const char *name;
	enum pkey_type type;
	size_t off, size;
	uint64_t min, max;
	int flags;
	const char *const *names;
	const int *values;
	const char *msg;
	const struct psection *sub;
	int (*fn)(struct pctx *c, yaml_node_t *v, void *obj);
};

#define PSECTION_MAX_KEYS 12

struct psection {
	const char *name;	 /* in "unknown NAME key" */
	const char *not_mapping; /* the message when the value is not a mapping */
	const struct pkey *keys;
	int nkeys;
	int words_only; /* a key that is not a scalar: "NAME keys must be plain words" */
	int scalars;	/* every value is a scalar: "NAME.KEY must be a single value" */
	void (*init)(void *obj, const yaml_node_t *n);
	/* after the keys: what they imply together; seen[i] is keys[i]'s key node or NULL */
	int (*done)(struct pctx *c, yaml_node_t *n, void *obj, yaml_node_t *const *seen);
};

/* Table rows: KSTR("name", struct policy_target, name, PK_NONEMPTY, "message"), ... */
/* clang-format off */
#define FIELD(T, f) .off = offsetof(T, f), .size = sizeof(((T *)0)->f)
#define KSTR(k, T, f, fl, m) { .name = k, .type = PK_STR, FIELD(T, f), .flags = fl, .msg = m }
#define KLIST(k, T, f, fl) { .name = k, .type = PK_LIST, FIELD(T, f), .flags = fl }
#define KBOOL(k, T, f) { .name = k, .type = PK_BOOL, FIELD(T, f) }
#define KUINT(k, T, f, lo, hi, m) \
	{ .name = k, .type = PK_UINT, FIELD(T, f), .min = lo, .max = hi, .msg = m }
#define KBYTES(k, T, f, lo, hi, m) \
	{ .name = k, .type = PK_BYTES, FIELD(T, f), .min = lo, .max = hi, .msg = m }
#define KDUR(k, T, f, fl, m) { .name = k, .type = PK_DURATION, FIELD(T, f), .flags = fl, .msg = m }
#define KENUM(k, T, f, nm, vals, m) \
	{ .name = k, .type = PK_ENUM, FIELD(T, f), .names = nm, .values = vals, .msg = m }
#define KSUB(k, T, f, s) { .name = k, .type = PK_SECTION, FIELD(T, f), .sub = s }
#define KSAME(k, s) { .name = k, .type = PK_SECTION, .sub = s }
#define KFN(k, f) { .name = k, .type = PK_FN, .fn = f }
/* clang-format on */
#define NKEYS(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* A mapping read by its key table into obj: 0, or -EINVAL with the place of the first error. */
int pol_section(struct pctx *c, yaml_node_t *n, const struct psection *s, void *obj);

/* A list of mappings, each read by sub into the next element of an array (elem bytes each, at
 * most max of them, *n counting them); used_twice set: no two may have the same name (a char
 * array at name_off in the element). */
struct pseq {
	const char *not_list; /* the message when the value is not a list */
	const struct psection *sub;
	size_t elem;
	int max;
	const char *too_many; /* format given max */
	size_t name_off;
	const char *used_twice; /* format given the name */
};

int pol_seq(struct pctx *c, yaml_node_t *v, const struct pseq *s, void *array, int *n);

/* Reads c->path (one regular file of at most 1 MiB) and loads its one YAML document into doc:
 * 0 (the caller deletes doc), or a negative errno with c->err set. */
int pol_read_doc(struct pctx *c, yaml_document_t *doc);
/* A scalar that holds a NUL ("\0") anywhere in the document: -EINVAL at its place. */
int pol_check_no_nul(struct pctx *c);

#endif
