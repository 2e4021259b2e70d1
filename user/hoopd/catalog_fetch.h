/*
 * Catalogs for masking, per database: hoopd reads pg_class/pg_attribute/pg_proc over a
 * connection of its own (libpq, on a small pool of worker threads, from hoopd's own network
 * namespace to the address the agent dialled; never for a destination that exists only in the
 * agent's namespace) as the policy's catalog.user, caches the result, and refreshes it every
 * catalog.refresh or sooner when a statement names a relation it does not know. Sessions wait
 * for the first load of their database's catalog, up to a deadline (then they go on without one:
 * masking fails closed); later refreshes never block.
 */
#ifndef HOOP_CATALOG_FETCH_H
#define HOOP_CATALOG_FETCH_H

#include "catalog.h"

struct session;

/* A catalog shared by sessions (refcounted on the event loop's thread). */
struct catbox {
	struct catalog *cat; /* NULL: the load failed; masking then fails closed */
	int refs;
	char error[256];
};

int catalog_fetch_init(void);
void catalog_fetch_stop(void);

/* The catalog for session s's database: 0 with *out set (a reference: catbox_put it; NULL when
 * there is none to be had, e.g. the first load outlived the wait deadline), or 1 while the first
 * load runs (s is resumed with sess_resume() when it is done or the deadline passes). */
int catalog_for(struct session *s, const char *db_user, const char *database,
		struct catbox **out);
void catbox_put(struct catbox *b);
/* A statement named a relation the catalog lacks: reload soon (at most once a second). */
void catalog_stale(struct session *s, const char *database);
/* Periodic refresh; drop entries nobody used for a while. */
void catalog_tick(void);
/* A new policy: every catalog is re-read (the catalog user may have changed). */
void catalog_policy_changed(void);

#endif
