/*
 * The central shipper child (docs/fleet.md): with --central or --central-dsn-file the broker runs
 * `hoopctl central ship` as a child, restarts it when it dies, stops it when hoopd stops, and
 * reads its progress file (<state dir>/central-shipped) for status and metrics. hoopd itself
 * never talks to the central database: libpq and the connection stay in that child.
 */
#ifndef HOOP_CENTRAL_CHILD_H
#define HOOP_CENTRAL_CHILD_H

#include <stdint.h>

struct jbuf;

/* Check the options and start the child (if --central or --central-dsn-file is given). 0, or
 * -1 after logging why (hoopd does not start). */
int central_start(void);
/* SIGCHLD: reap it if it exited. */
void central_reap(void);
/* Every loop round: start it again once its back-off has passed. */
void central_tick(void);
/* At exit: SIGTERM, then SIGKILL after 3 s. */
void central_stop(void);

struct central_state {
	int configured;
	int running;
	uint64_t restarts;
	uint64_t local_seq, shipped_seq, lag_records;
	int connected;
	char last_error[512];
	char updated[40];
	char node[64];
};

/* What status and the metrics show (configured 0: no central). */
void central_state(struct central_state *cs);
/* "central": {...} into a status object being built (nothing when not configured). */
void central_status_json(struct jbuf *j);

#endif
