/* sandbox.c: what an engine worker calls once, single-threaded and holding every descriptor it
 * will ever need, to give up all privilege for good (docs/architecture.md, "The worker's
 * sandbox"). */
#ifndef HOOPD_SANDBOX_H
#define HOOPD_SANDBOX_H

#include <stddef.h>
#include <sys/types.h>

/* Sanitizer builds (make SANITIZE=..., which defines HOOP_SANITIZE): the few calls a
 * sanitizer's report makes fail instead of killing, LeakSanitizer's exit check is off in a
 * sandboxed process, and the symbolizer is readied before the filter (sandbox.c). */
#if defined(__SANITIZE_ADDRESS__) || defined(HOOP_SANITIZE)
#define SANDBOX_SANITIZER 1
#endif

/* The unprivileged identity a worker becomes: the user's uid and primary gid; supplementary
 * groups are never kept. */
struct sandbox_id {
	uid_t uid;
	gid_t gid;
	char name[64];
};

/* The catalog loader's process: it dials databases (socket(AF_INET/AF_INET6), connect, poll,
 * getsockname/getpeername) but never sees agent bytes. No engine worker may set it. */
#define SANDBOX_ALLOW_CONNECT 0x1u
/* ...and it reads files by name: libpq opens the CA it is given and looks for client
 * certificates at the paths it is told (which do not exist). Opening for reading only
 * (O_RDONLY, no O_CREAT, O_TRUNC or O_APPEND), stat and access by path; with the process's
 * unprivileged uid, that is what any user may read. No engine worker may set it. */
#define SANDBOX_ALLOW_READ 0x2u

/*
 * Resolves the worker's user (getpwnam_r): uid and primary gid. Returns 0; -ENOENT when there is
 * no such user, -EPERM when it is uid 0 or its group gid 0 (a worker must not be root), another
 * negative errno when the user database cannot be read; err then says which and why.
 */
int sandbox_user(const char *name, struct sandbox_id *id, char *err, size_t n);

/*
 * Gives up privilege for good, in this order: chdir("/"); every capability out of the bounding
 * set (up to the running kernel's last, /proc/sys/kernel/cap_last_cap); setgroups(0),
 * setresgid, setresuid to id (real, effective and saved); the ambient set cleared and the
 * effective, permitted and inheritable sets zeroed; a check that setresuid(0) now fails;
 * no_new_privs; not dumpable; then the seccomp filter (default: kill the process; sandbox.c
 * lists what it allows and why). The bounding set is dropped before the uid change because
 * dropping needs CAP_SETPCAP, which the uid change takes away.
 *
 * The caller must be single-threaded (capabilities and the filter are per thread; -EBUSY
 * otherwise) and root, or hold CAP_SETUID, CAP_SETGID and CAP_SETPCAP. Returns 0, or a negative
 * errno with err naming the step that failed; the caller must then exit, since a worker that
 * cannot sandbox itself must not run. Anything the process opens lazily (time zone, locale,
 * OpenSSL's configuration, the resolver) must be loaded before: after this call, opening a path
 * kills the process.
 */
int sandbox_enter(const struct sandbox_id *id, unsigned flags, char *err, size_t n);

#endif
