/* relay.c: accepted agent connections and their upstream legs. */
#ifndef HOOPD_RELAY_H
#define HOOPD_RELAY_H

struct listener;
struct jbuf;

void relay_accept(struct listener *ln, int fd);
void relay_reap(void);
void relay_close_all(void);
void relay_release_synced(void); /* audit records synced: waiting sessions may forward */
int relay_waiting_sync(void);	 /* how many sessions wait for records to be durable */

/* The process split (docs/architecture.md). In the broker, relay_handoff takes each accepted
 * session (identity read, cgroup cap checked, upstream dialled) to an engine worker: 0 when
 * it went (the broker keeps counting it against cgu and its namespace until the worker says it
 * ended: relay_remote_end). In a worker, relay_adopt runs a session the broker handed over,
 * and relay_on_end says when one ends. */
struct session;
struct agent;
struct cg_use;
extern int (*relay_handoff)(const struct session *s, struct cg_use *cgu);
extern void (*relay_on_end)(const struct session *s);
void relay_remote_end(struct cg_use *cgu, struct listener *ln);
void relay_adopt(const struct agent *a, int afd, int sfd, int accel, int connecting);
/* For `hoopctl status`: this process's connections, as a JSON array, and the "limits" object
 * with the counters st (the broker's, summed over the workers). */
void relay_status_conns(struct jbuf *j);
struct hoopd_stats;
void relay_status_limits(struct jbuf *j, const struct hoopd_stats *st);

#endif
