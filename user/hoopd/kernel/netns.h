/* netns.c: one loopback listener pair per network namespace that holds agents. */
#ifndef HOOPD_NETNS_H
#define HOOPD_NETNS_H

#include <stddef.h>
#include <stdint.h>

struct listener;
struct jbuf;

/* Accepted agent connections go to on_accept (the relay's; main.c hands it over, so that the
 * listeners, a kernel-side module, need not include the relay above them). */
int netns_init(void (*on_accept)(struct listener *ln, int fd));
int netns_ensure_pid(int pid, char *err, size_t errn);
int netns_socket(struct listener *ln, int family);
/* Which namespace dials a database leg to addr (HOOP_AF_* family as AF_*, network order). */
enum netns_dial {
	NETNS_DIAL_HOOPD = 0, /* hoopd's own: the agent cannot see or touch the leg */
	NETNS_DIAL_AGENT = 1, /* the agent's: the destination exists only there */
};
enum netns_dial netns_dial_where(struct listener *ln, int family, const uint8_t *addr);
int netns_socket_dial(struct listener *ln, int family, enum netns_dial where);
const char *netns_dial_name(enum netns_dial where);
uint64_t netns_cookie(const struct listener *ln);
uint64_t netns_ino(const struct listener *ln);
/* The namespace's fd (-1: hoopd's own), for threads that must open sockets there. */
int netns_nsfd(const struct listener *ln);
void netns_close_all(void);
void netns_conn_ref(struct listener *ln, int delta);
void netns_gc(void);
void netns_resume(void);
void netns_status(struct jbuf *j);

#endif
