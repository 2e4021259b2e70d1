/* Worker threads of the daemon. */
#ifndef HOOP_THREAD_H
#define HOOP_THREAD_H

#include <pthread.h>
#include <signal.h>

/*
 * Start fn on a thread of its own that takes no signals (SIGTERM and friends belong to the
 * event loop's signalfd, which only sees signals blocked in every thread), named name for
 * ps -L, top -H and perf (at most 15 characters). 0, or the error pthread_create returned.
 */
static inline int thread_start(pthread_t *t, void *(*fn)(void *), const char *name)
{
	sigset_t all, old;
	int r;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = pthread_create(t, NULL, fn, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!r)
		pthread_setname_np(*t, name);
	return r;
}

#endif
