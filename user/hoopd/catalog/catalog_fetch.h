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

#include <stddef.h>
#include <sys/types.h>

#include <stdint.h>

#include "catalog.h"

/* A catalog shared by sessions (refcounted on the event loop's thread). */
struct catbox {
	struct catalog *cat; /* NULL: the load failed; masking then fails closed */
	int refs;
	char error[256];
};

int catalog_fetch_init(void);
void catalog_fetch_stop(void);

/* Where a catalog is read: the server the agent dialled, as the loader needs it to dial. */
struct cat_dest {
	uint64_t netns_ino; /* the agent's network namespace (entries are per namespace) */
	int agent_only;	    /* the address exists only there: never read (the agent's to fake) */
	uint8_t family;	    /* HOOP_AF_* */
	uint8_t addr[16];
	uint16_t port; /* network order */
	char dst[64];  /* "addr:port", for entries and log lines */
	/* The policy target whose TLS settings (upstream_tls, ca_file, tls_server_name) the
	 * connection uses, looked up at each load so that a new policy applies. */
	int target_id;
};

/* One party waiting for a first load (the relay's, in each session): ready is called once,
 * on the event loop's thread, when the load is done or the wait deadline passes. The loader
 * keeps its waiters on the entry they wait for; entry is the loader's (NULL: not waiting). */
struct cat_waiter {
	void (*ready)(struct cat_waiter *w);
	void *entry;
	struct cat_waiter *next;
};

/* The catalog of database at d: 0 with *out set (a reference: catbox_put it; NULL when there
 * is none to be had, e.g. the first load outlived the wait deadline), or 1 while the first load
 * runs: w is then on its list until ready or catalog_unwait. */
int catalog_get(const struct cat_dest *d, const char *db_user, const char *database,
		struct cat_waiter *w, struct catbox **out);
/* w waits no more (its session ended). */
void catalog_unwait(struct cat_waiter *w);
void catbox_put(struct catbox *b);
/* A statement named a relation the catalog of database at dst lacks: reload soon (at most once
 * a second). */
void catalog_reload(const char *dst, const char *database);
/* Periodic refresh; drop entries nobody used for a while. */
void catalog_tick(void);
/* A new policy: every catalog is re-read (the catalog user may have changed). */
void catalog_policy_changed(void);

/*
 * The process split (docs/architecture.md). An engine worker may not start processes nor read
 * files: its loader threads ask the broker instead (catalog_remote), which checks the
 * destination against its own policy, spawns the loader, sends it the job (CA, password: the
 * broker reads them) and hands the worker the loader's socket, from which the worker reads
 * and checks the answer as before. The broker never reads a loader's answer.
 */
struct catalog_remote_req {
	uint32_t target_id;
	char hostaddr[48], port[8], dbname[128], user[64];
};
/* In a worker: how its threads get a loader's socket with the job sent (0 and *fd, or -1 with
 * err). Set before catalog_fetch_init. */
extern int (*catalog_remote)(const struct catalog_remote_req *r, int *fd, char *err,
			     size_t errn);
/* In the broker: spawn a loader for r, send it the job; 0 with its socket and pid (kill it
 * after CATALOG_REMOTE_MS, reap it by pid), or -1 with err. */
#define CATALOG_REMOTE_MS 25000
int catalog_spawn_for(const struct catalog_remote_req *r, int *fd, pid_t *pid, char *err,
		      size_t errn);

#endif
