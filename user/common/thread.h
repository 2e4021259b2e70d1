/* Worker threads of the daemon. */
#ifndef HOOP_THREAD_H
#define HOOP_THREAD_H

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>

/*
 * Start fn on a thread of its own that takes no signals (SIGTERM and friends belong to the
 * event loop's signalfd, which only sees signals blocked in every thread), named name for
 * ps -L, top -H and perf (at most 15 characters). 0, or the error pthread_create returned.
 */
struct thread_start_arg {
	void *(*fn)(void *);
	char name[16];
};

/* The thread names itself (a sandboxed engine worker may not open /proc/self/task/N/comm,
 * which naming another thread takes). */
static inline void *thread_trampoline(void *p)
{
	struct thread_start_arg a = *(struct thread_start_arg *)p;

	free(p);
	prctl(PR_SET_NAME, a.name);
	return a.fn(NULL);
}

static inline int thread_start(pthread_t *t, void *(*fn)(void *), const char *name)
{
	struct thread_start_arg *a = malloc(sizeof(*a));
	sigset_t all, old;
	int r;

	if (!a)
		return ENOMEM;
	a->fn = fn;
	snprintf(a->name, sizeof(a->name), "%s", name);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = pthread_create(t, NULL, thread_trampoline, a);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r)
		free(a);
	return r;
}

/*
 * A worker: threads that sleep on cv until their owner hands them work or stops them. The
 * owner keeps the work beside it, guarded by mu, and wakes a thread with worker_wake; a thread
 * waits while there is no work and !stop, and returns once it sees stop with nothing it must
 * still do. One thread (the audit trail's compressor and syncer) or a pool of up to
 * WORKER_MAX, each started with worker_start (the catalog fetcher's shape: it writes its
 * stop eventfd between worker_stop_begin and worker_join, so that running jobs give up).
 */
#define WORKER_MAX 8

struct worker {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stop; /* under mu */
	int nthreads;
	pthread_t tid[WORKER_MAX];
};

#define WORKER_INIT {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER}

/* One more thread running fn (thread_start's rules). 0, or an errno. */
static inline int worker_start(struct worker *w, void *(*fn)(void *), const char *name)
{
	int r;

	if (w->nthreads == WORKER_MAX)
		return EAGAIN;
	if (!w->nthreads)
		w->stop = 0;
	r = thread_start(&w->tid[w->nthreads], fn, name);
	if (!r)
		w->nthreads++;
	return r;
}

/* There is work: wake a waiting thread (mu held). */
static inline void worker_wake(struct worker *w)
{
	pthread_cond_signal(&w->cv);
}

/* Tell every thread to stop (mu held). */
static inline void worker_stop_begin(struct worker *w)
{
	w->stop = 1;
	pthread_cond_broadcast(&w->cv);
}

/* Wait for every thread to return (mu not held). */
static inline void worker_join(struct worker *w)
{
	for (int i = 0; i < w->nthreads; i++)
		pthread_join(w->tid[i], NULL);
	w->nthreads = 0;
}

static inline void worker_stop(struct worker *w)
{
	if (!w->nthreads)
		return;
	pthread_mutex_lock(&w->mu);
	worker_stop_begin(w);
	pthread_mutex_unlock(&w->mu);
	worker_join(w);
}

#endif
