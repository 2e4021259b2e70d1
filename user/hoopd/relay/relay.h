/* relay.c: accepted agent connections and their upstream legs. */
#ifndef HOOPD_RELAY_H
#define HOOPD_RELAY_H

struct listener;
struct jbuf;

void relay_accept(struct listener *ln, int fd);
void relay_reap(void);
void relay_status(struct jbuf *j);
void relay_close_all(void);
void relay_release_synced(void); /* audit records synced: waiting sessions may forward */
int relay_waiting_sync(void);	 /* how many sessions wait for records to be durable */

#endif
