/* Statement facts and plans by shape: see stmtcache.h. */
#include "stmtcache.h"

#include <stdlib.h>
#include <string.h>

#include "mask_live.h"
#include "sqlfacts.h"

#define BUCKETS 512 /* a power of two, twice the entries */

struct entry {
	struct entry *next;	    /* hash chain */
	struct entry *prev, *newer; /* LRU: prev is older */
	uint64_t hash;
	struct stmtcache_gens g;
	struct sqlfacts *facts;
	struct mplan *plan;
	size_t klen;
	char key[];
};

static struct entry *g_bucket[BUCKETS];
static struct entry *g_oldest, *g_newest;
static uint64_t g_n, g_hits, g_misses;

/* FNV-1a, 64-bit: keys are short SQL texts, and nothing here is keyed by a secret an agent
 * could collide against to any effect beyond a slower lookup. */
static uint64_t hash(const char *k, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)k[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static void lru_unlink(struct entry *e)
{
	if (e->prev)
		e->prev->newer = e->newer;
	else
		g_oldest = e->newer;
	if (e->newer)
		e->newer->prev = e->prev;
	else
		g_newest = e->prev;
	e->prev = e->newer = NULL;
}

static void lru_push(struct entry *e)
{
	e->prev = g_newest;
	e->newer = NULL;
	if (g_newest)
		g_newest->newer = e;
	else
		g_oldest = e;
	g_newest = e;
}

static void drop(struct entry *e)
{
	struct entry **pp = &g_bucket[e->hash & (BUCKETS - 1)];

	while (*pp && *pp != e)
		pp = &(*pp)->next;
	if (*pp)
		*pp = e->next;
	lru_unlink(e);
	free(e->facts);
	mplan_put(e->plan);
	free(e);
	g_n--;
}

static struct entry *find(const char *key, size_t klen, uint64_t h)
{
	for (struct entry *e = g_bucket[h & (BUCKETS - 1)]; e; e = e->next)
		if (e->hash == h && e->klen == klen && !memcmp(e->key, key, klen))
			return e;
	return NULL;
}

int stmtcache_get(const char *key, size_t klen, const struct stmtcache_gens *g,
		  struct stmtcache_hit *hit)
{
	uint64_t h = hash(key, klen);
	struct entry *e = find(key, klen, h);

	if (e && memcmp(&e->g, g, sizeof(*g))) {
		drop(e); /* made under another policy, masking or catalog */
		e = NULL;
	}
	if (!e) {
		g_misses++;
		return 0;
	}
	g_hits++;
	lru_unlink(e);
	lru_push(e);
	hit->facts = e->facts;
	hit->plan = e->plan ? mplan_ref(e->plan) : NULL;
	return 1;
}

void stmtcache_put(const char *key, size_t klen, const struct stmtcache_gens *g,
		   struct sqlfacts *facts, struct mplan *plan)
{
	uint64_t h = hash(key, klen);
	struct entry *e = find(key, klen, h);

	if (e)
		drop(e);
	while (g_n >= STMTCACHE_ENTRIES && g_oldest)
		drop(g_oldest);
	e = malloc(sizeof(*e) + klen);
	if (!e) {
		free(facts);
		return; /* not kept: the next one parses again */
	}
	memset(e, 0, sizeof(*e));
	e->hash = h;
	e->g = *g;
	e->facts = facts;
	e->plan = plan ? mplan_ref(plan) : NULL;
	e->klen = klen;
	memcpy(e->key, key, klen);
	e->next = g_bucket[h & (BUCKETS - 1)];
	g_bucket[h & (BUCKETS - 1)] = e;
	lru_push(e);
	g_n++;
}

void stmtcache_clear(void)
{
	while (g_oldest)
		drop(g_oldest);
}

void stmtcache_stats(struct stmtcache_stats *st)
{
	st->hits = g_hits;
	st->misses = g_misses;
	st->entries = g_n;
}
