/* epoll event loop. Level-triggered: a callback that leaves data unread is called again. */
#include "loop.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

static int g_epfd = -1;
static volatile int g_stop;

int loop_init(void)
{
	g_epfd = epoll_create1(EPOLL_CLOEXEC);
	return g_epfd < 0 ? -errno : 0;
}

int loop_add(struct loop_watch *w, int fd, uint32_t events, loop_cb cb)
{
	struct epoll_event ev = {.events = events, .data.ptr = w};

	w->fd = fd;
	w->events = events;
	w->cb = cb;
	return epoll_ctl(g_epfd, EPOLL_CTL_ADD, fd, &ev) ? -errno : 0;
}

int loop_mod(struct loop_watch *w, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = w};

	if (w->events == events)
		return 0;
	w->events = events;
	return epoll_ctl(g_epfd, EPOLL_CTL_MOD, w->fd, &ev) ? -errno : 0;
}

void loop_del(struct loop_watch *w)
{
	if (w->fd >= 0)
		epoll_ctl(g_epfd, EPOLL_CTL_DEL, w->fd, NULL);
}

void loop_stop(void)
{
	g_stop = 1;
}

int loop_run(int timeout_ms, void (*tick)(void))
{
	struct epoll_event evs[256];

	g_stop = 0; /* a second run (hoopd's stop waits for its workers in one) */
	while (!g_stop) {
		int n = epoll_wait(g_epfd, evs, 256, timeout_ms);

		if (n < 0) {
			if (errno == EINTR) {
				if (tick)
					tick();
				continue;
			}
			return -errno;
		}
		for (int i = 0; i < n; i++) {
			struct loop_watch *w = evs[i].data.ptr;

			w->cb(w, evs[i].events);
		}
		if (tick)
			tick();
	}
	return 0;
}
