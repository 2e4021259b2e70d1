/*
 * Messages with descriptors over a Unix socket (SCM_RIGHTS): how the broker hands an engine
 * worker the sockets of a session (issue 15's process split). Meant for SOCK_SEQPACKET, where
 * one send is one message, and the descriptors travel with it.
 */
#ifndef HOOP_FDPASS_H
#define HOOP_FDPASS_H

#include <stddef.h>
#include <sys/types.h>

/* The most descriptors one message carries. */
#define FDPASS_MAX_FDS 8

/* Send len bytes (at least 1) and nfds descriptors (0..FDPASS_MAX_FDS) as one message,
 * without blocking or SIGPIPE. 0, or -errno (-EAGAIN: the peer's queue is full; nothing was
 * sent). The descriptors stay open here: the peer gets its own copies. */
int fdpass_send(int sock, const void *msg, size_t len, const int *fds, int nfds);

/*
 * Receive one message into buf (cap bytes) and up to maxfds descriptors into fds (close-on-exec),
 * without blocking. Returns its length with *nfds set, 0 when the peer has closed, or -errno:
 * -EAGAIN (nothing waiting), -EMSGSIZE (the message or its descriptors did not fit: whatever
 * arrived of them is closed, and the message is lost; the channel's peer broke its protocol).
 */
ssize_t fdpass_recv(int sock, void *buf, size_t cap, int *fds, int maxfds, int *nfds);

#endif
