/* The event loop: epoll, one callback per registered fd. Stands alone (no daemon headers). */
#ifndef HOOP_LOOP_H
#define HOOP_LOOP_H

#include <stddef.h>
#include <stdint.h>

struct loop_watch;
typedef void (*loop_cb)(struct loop_watch *w, uint32_t events);

/* Embed this in the object that owns the fd; container_of() gets back to it. */
struct loop_watch {
	int fd;
	uint32_t events; /* EPOLLIN/EPOLLOUT currently asked for */
	loop_cb cb;
};

int loop_init(void);
int loop_add(struct loop_watch *w, int fd, uint32_t events, loop_cb cb);
int loop_mod(struct loop_watch *w, uint32_t events);
void loop_del(struct loop_watch *w);
/* Run until loop_stop(); timeout_ms bounds each wait so tick() runs periodically. */
int loop_run(int timeout_ms, void (*tick)(void));
void loop_stop(void);

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

#endif
