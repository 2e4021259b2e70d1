/*
 * What hoopd worked out about a statement, kept by its shape (sqlshape.h): the policy facts
 * (sqlfacts.h, with the masking facts the rules ask for) and the masking provenance plan.
 * An agent sends the same statements over and over with other constants; with this, each shape
 * is parsed by PostgreSQL's grammar once instead of three times per statement (split, facts,
 * plan). Rules are still evaluated for every statement (they depend on the session), and the
 * record of every statement is written as before.
 *
 * An entry is used only under the policy, masking engine and catalog it was made under (their
 * generations); anything else is a miss, and the entry goes. Statements whose meaning depends
 * on the session (PREPARE/EXECUTE/DEALLOCATE, cursors, relations the session made, DDL that
 * changes the catalog) or on a constant's value (ORDER BY 2, COPY option values) are not kept:
 * the caller decides that (pg_front.c) and asks only for what it may keep.
 *
 * The loop thread's only. Bounded: STMTCACHE_ENTRIES shapes, least recently used goes first.
 */
#ifndef HOOP_STMTCACHE_H
#define HOOP_STMTCACHE_H

#include <stddef.h>
#include <stdint.h>

struct sqlfacts;
struct mplan;

#define STMTCACHE_ENTRIES 256

struct stmtcache_gens {
	uint64_t policy, masking, catalog; /* 0: none */
	uint64_t protocol;		   /* 'Q' a simple Query's statement, 'P' a Parse's text */
};

struct stmtcache_hit {
	const struct sqlfacts *facts; /* valid until the next stmtcache call */
	struct mplan *plan;	      /* a reference of the caller's (mplan_put it), or NULL */
};

/* 1 with *hit filled, or 0. */
int stmtcache_get(const char *key, size_t klen, const struct stmtcache_gens *g,
		  struct stmtcache_hit *hit);
/* Keep facts (taken over: freed with the entry) and plan (a reference is taken; may be NULL). */
void stmtcache_put(const char *key, size_t klen, const struct stmtcache_gens *g,
		   struct sqlfacts *facts, struct mplan *plan);
void stmtcache_clear(void);
/* counters for `hoopctl status` and the benchmark */
struct stmtcache_stats {
	uint64_t hits, misses, entries;
};
void stmtcache_stats(struct stmtcache_stats *st);

#endif
