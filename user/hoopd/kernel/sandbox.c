/*
 * The engine worker's sandbox: once it holds every descriptor it needs, a worker drops to an
 * unprivileged uid with no capabilities, no way back (no_new_privs, bounding set empty, setuid
 * killed), not dumpable, and a seccomp filter that kills the process on any system call outside
 * one allowlist (sandbox_rules below). The worker reads the agent's and the database's bytes,
 * the input most likely to find a memory-safety bug; with this in place such a bug gets a
 * process that can read and write the descriptors it already holds and nothing else: no new
 * socket, no open of a path, no exec, no ptrace, bpf, setns, mount or namespace.
 */
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/sched.h>
#include <pwd.h>
#include <stdarg.h>
#include <sched.h>
#include <seccomp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifdef SANDBOX_SANITIZER
#include <sanitizer/common_interface_defs.h>
#include <sanitizer/lsan_interface.h>

/* Set once the process is sandboxed (sanitizer builds only). */
static volatile int sb_entered;

/*
 * LeakSanitizer's check at exit stops the world with a ptrace()ing clone and reads
 * /proc/self/task: both killed in the sandbox, so a sandboxed process's exit would die of SIGSYS.
 * LSan asks this hook (its documented opt-out, <sanitizer/lsan_interface.h>) before it starts;
 * a sandboxed process answers "off", the broker and every other process keep their leak check.
 */
int __lsan_is_turned_off(void)
{
	return sb_entered;
}
#endif

#define SB_ARG_NONE 0xff
#define SB_SELF_PID 0x1u /* the rule's value is the caller's pid, known only at run time */

/* One allowed system call, with at most one condition: (argument & mask) == value. */
struct sb_rule {
	int nr;
	unsigned need; /* 0: every sandboxed process; SANDBOX_ALLOW_CONNECT: only with that flag */
	uint8_t arg;   /* SB_ARG_NONE: no condition */
	uint8_t special;
	uint64_t mask, value;
};

#define ALLOW(name)                                                                                \
	{                                                                                          \
		SCMP_SYS(name), 0, SB_ARG_NONE, 0, 0, 0                                            \
	}
#define ALLOW_IF(name, a, m, v)                                                                    \
	{                                                                                          \
		SCMP_SYS(name), 0, a, 0, m, v                                                      \
	}
#define ALLOW_CONNECT(name)                                                                        \
	{                                                                                          \
		SCMP_SYS(name), SANDBOX_ALLOW_CONNECT, SB_ARG_NONE, 0, 0, 0                        \
	}
#define ALLOW_CONNECT_IF(name, a, m, v)                                                            \
	{                                                                                          \
		SCMP_SYS(name), SANDBOX_ALLOW_CONNECT, a, 0, m, v                                  \
	}
#define INT_ARG 0xffffffffull /* int arguments: the register's upper half is not defined */

/* A thread may be made, nothing else: no fork, no new namespace. */
#define SB_CLONE_MASK                                                                              \
	(CLONE_THREAD | CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC |              \
	 CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET)

/*
 * The allowlist, the one place that says what a sandboxed process may call. Anything not here
 * kills the process (SIGSYS). In particular killed: socket, socketpair, connect, bind, listen,
 * accept, accept4 (a worker gets accepted agent sockets and their dialled upstream sockets
 * from the broker over its Unix socket, so it makes and accepts none), open, openat, openat2,
 * creat, execve, execveat, fork, vfork, clone without CLONE_THREAD, ptrace, process_vm_*,
 * bpf, setns, unshare, mount, chroot, pivot_root, kill, keyctl, perf_event_open, io_uring_*,
 * the setuid/setgid family, prctl beyond thread names, fcntl beyond flags (F_SETOWN), capset.
 */
static const struct sb_rule sandbox_rules[] = {
    /* The event loop. */
    ALLOW(epoll_create1),
    ALLOW(epoll_ctl),
    ALLOW(epoll_wait),
    ALLOW(epoll_pwait),
    ALLOW(eventfd2),
    ALLOW(timerfd_create),
    ALLOW(timerfd_settime),
    ALLOW(timerfd_gettime),
    ALLOW(signalfd4),
    ALLOW(pipe2),
    /* A wait on one descriptor: the catalog threads read a loader's answer by a deadline,
     * the audit channel's last records go at a stop. */
    ALLOW(poll),
    ALLOW(ppoll),

    /* Bytes on descriptors it holds: sessions (handed over with SCM_RIGHTS on recvmsg), the
     * broker's socket, audit segments. OpenSSL's socket BIO uses recvfrom/sendto. */
    ALLOW(read),
    ALLOW(write),
    ALLOW(readv),
    ALLOW(writev),
    ALLOW(recvfrom),
    ALLOW(recvmsg),
    /* Never MSG_FASTOPEN: on a TCP socket it connects (again, to any address it names), from
     * the namespace the socket was made in: a connect in disguise. */
    ALLOW_IF(sendto, 3, MSG_FASTOPEN, 0),
    ALLOW_IF(sendmsg, 2, MSG_FASTOPEN, 0),
    ALLOW(close),
    ALLOW(shutdown),
    ALLOW(getsockopt),
    ALLOW(setsockopt),
    ALLOW(getsockname),
    ALLOW(getpeername),
    /* Descriptor and status flags, and a close-on-exec copy; not F_SETOWN/F_SETSIG, with which
     * a worker could aim SIGIO at another process of its uid (another worker). */
    ALLOW_IF(fcntl, 1, INT_ARG, F_GETFD),
    ALLOW_IF(fcntl, 1, INT_ARG, F_SETFD),
    ALLOW_IF(fcntl, 1, INT_ARG, F_GETFL),
    ALLOW_IF(fcntl, 1, INT_ARG, F_SETFL),
    ALLOW_IF(fcntl, 1, INT_ARG, F_DUPFD_CLOEXEC),
    ALLOW(lseek),
    /* Unread bytes on a socket; any other ioctl (terminals, network devices) is killed. */
    ALLOW_IF(ioctl, 1, INT_ARG, FIONREAD),

    /* Audit segments passed as descriptors: durability (group commit) and their size. glibc's
     * fstat is newfstatat(fd, "", AT_EMPTY_PATH); without AT_EMPTY_PATH it would be a path
     * lookup. (With it and a non-empty path it still is one: a compromised worker can learn a
     * path's metadata, never its content or a descriptor.) */
    ALLOW(fsync),
    ALLOW(fdatasync),
    ALLOW(fstat),
    ALLOW_IF(newfstatat, 3, AT_EMPTY_PATH, AT_EMPTY_PATH),

    /* Memory: malloc, thread stacks, Hyperscan's scratch. Never executable: nothing the engine
     * runs generates code, so a mapping made executable is an exploit's. */
    ALLOW_IF(mmap, 2, PROT_EXEC, 0),
    ALLOW_IF(mprotect, 2, PROT_EXEC, 0),
    ALLOW(munmap),
    ALLOW(mremap),
    ALLOW(madvise),
    ALLOW(brk),

    /* Threads (the audit fsync and compression threads, the catalog pool): glibc's
     * pthread_create and its locks. clone only with CLONE_THREAD and no namespace flag;
     * clone3 fails with ENOSYS (sandbox_errors) and glibc falls back to clone. */
    ALLOW_IF(clone, 0, SB_CLONE_MASK, CLONE_THREAD),
    ALLOW(futex),
    ALLOW(set_robust_list),
    ALLOW(rseq),
    ALLOW(sched_yield),
    ALLOW(exit),
    ALLOW(exit_group),
    /* pthread_getattr_np (a thread's own stack; the sanitizers ask it for every thread). */
    ALLOW(sched_getaffinity),
    /* Thread names (pthread_setname_np on itself). */
    ALLOW_IF(prctl, 0, INT_ARG, PR_SET_NAME),
    ALLOW_IF(prctl, 0, INT_ARG, PR_GET_NAME),

    /* Time, randomness (OpenSSL's DRBG seeds from getrandom), who am I. */
    ALLOW(clock_gettime),
    ALLOW(clock_getres),
    ALLOW(clock_nanosleep),
    ALLOW(nanosleep),
    ALLOW(gettimeofday),
    ALLOW(getrandom),
    ALLOW(getpid),
    ALLOW(gettid),
    ALLOW(getuid),
    ALLOW(geteuid),
    ALLOW(getgid),
    ALLOW(getegid),
    /* Physical memory: glibc's qsort sizes its buffer by it, OpenSSL's first init asks. */
    ALLOW(sysinfo),

    /* Signals: handlers, masks, the alternate stack; abort() and pthread_kill signal this
     * process's own threads (tgkill with our pid; any other process is killed). */
    ALLOW(rt_sigaction),
    ALLOW(rt_sigprocmask),
    ALLOW(rt_sigreturn),
    ALLOW(sigaltstack),
    ALLOW(restart_syscall),
    {SCMP_SYS(tgkill), 0, 0, SB_SELF_PID, INT_ARG, 0},

    /* Limits, read only (glibc and the sanitizers size stacks with them). */
    ALLOW(getrlimit),
    ALLOW_IF(prlimit64, 2, ~0ull, 0),

    /* SANDBOX_ALLOW_CONNECT, the catalog loader's process: libpq dials an IPv4 or IPv6
     * address (hostaddr, no resolver) and waits with poll. */
    ALLOW_CONNECT_IF(socket, 0, INT_ARG, AF_INET),
    ALLOW_CONNECT_IF(socket, 0, INT_ARG, AF_INET6),
    ALLOW_CONNECT(connect),

    /* SANDBOX_ALLOW_READ, the catalog loader's process too: files by name, for reading. */
    {SCMP_SYS(openat), SANDBOX_ALLOW_READ, 2, 0, O_ACCMODE | O_CREAT | O_TRUNC | O_APPEND,
     O_RDONLY},
    {SCMP_SYS(newfstatat), SANDBOX_ALLOW_READ, SB_ARG_NONE, 0, 0, 0},
    {SCMP_SYS(faccessat), SANDBOX_ALLOW_READ, SB_ARG_NONE, 0, 0, 0},
    {SCMP_SYS(faccessat2), SANDBOX_ALLOW_READ, SB_ARG_NONE, 0, 0, 0},
    {SCMP_SYS(access), SANDBOX_ALLOW_READ, SB_ARG_NONE, 0, 0, 0},
    {SCMP_SYS(stat), SANDBOX_ALLOW_READ, SB_ARG_NONE, 0, 0, 0},
    {SCMP_SYS(readlink), SANDBOX_ALLOW_READ, SB_ARG_NONE, 0, 0, 0},
    /* the CA hoopd sends, as a file libpq can name (/proc/self/fd/N of a memfd) */
    {SCMP_SYS(memfd_create), SANDBOX_ALLOW_READ, SB_ARG_NONE, 0, 0, 0},
};

/* Calls that fail with an errno instead of killing: what a caller handles, where a kill would
 * lose more than the call gives. */
struct sb_error {
	int nr;
	int err;
	uint8_t arg; /* SB_ARG_NONE: always */
	uint64_t mask, value;
};

static const struct sb_error sandbox_errors[] = {
    /* clone3 passes its flags in memory, which a filter cannot read: glibc then uses clone. */
    {SCMP_SYS(clone3), ENOSYS, SB_ARG_NONE, 0, 0},
    /* isatty(): stdio asks it of a stream's first write, the sanitizers of every report line.
     * "Not a terminal" is a fine answer; a kill for it is not. */
    {SCMP_SYS(ioctl), ENOTTY, 1, INT_ARG, TCGETS},
#ifdef SANDBOX_SANITIZER
    /* Sanitizer builds only: a report reads /proc/self/exe, /proc/self/cmdline and environ
     * (with the legacy open call, which glibc never makes). Failing them still prints the
     * report; killing would lose it. openat still kills, and nothing here opens a file. */
    {SCMP_SYS(open), EACCES, SB_ARG_NONE, 0, 0},
    {SCMP_SYS(readlink), EACCES, SB_ARG_NONE, 0, 0},
#endif
};

static int sb_fail(char *err, size_t n, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int sb_fail(char *err, size_t n, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, n, fmt, ap);
	va_end(ap);
	return rc;
}

int sandbox_user(const char *name, struct sandbox_id *id, char *err, size_t n)
{
	struct passwd pw, *res = NULL;
	char buf[4096];
	int rc;

	if (!name || !*name || strlen(name) >= sizeof(id->name))
		return sb_fail(err, n, -EINVAL, "worker user: a name of 1 to %zu bytes is needed",
			       sizeof(id->name) - 1);
	rc = getpwnam_r(name, &pw, buf, sizeof(buf), &res);
	if (rc)
		return sb_fail(err, n, -rc, "worker user %s: cannot read the user database: %s",
			       name, strerror(rc));
	if (!res)
		return sb_fail(err, n, -ENOENT,
			       "worker user %s: no such user (create a system user for hoopd's "
			       "workers, or name one with --user)",
			       name);
	if (pw.pw_uid == 0 || pw.pw_gid == 0)
		return sb_fail(err, n, -EPERM,
			       "worker user %s: uid %u gid %u: a worker must not run as root", name,
			       (unsigned)pw.pw_uid, (unsigned)pw.pw_gid);
	id->uid = pw.pw_uid;
	id->gid = pw.pw_gid;
	snprintf(id->name, sizeof(id->name), "%s", name);
	return 0;
}

/* Capabilities and the seccomp filter are per thread: a second thread would keep both. */
static int sb_threads(void)
{
	char line[256];
	int threads = -1;
	FILE *f = fopen("/proc/self/status", "re");

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Threads: %d", &threads) == 1)
			break;
	fclose(f);
	return threads;
}

/* The running kernel's last capability; a kernel newer than our headers has more. */
static int sb_cap_last(void)
{
	int last = -1;
	FILE *f = fopen("/proc/sys/kernel/cap_last_cap", "re");

	if (f) {
		if (fscanf(f, "%d", &last) != 1)
			last = -1;
		fclose(f);
	}
	return last >= 0 ? last : CAP_LAST_CAP;
}

static int sb_load(unsigned flags, char *err, size_t n)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	pid_t self = getpid();
	int rc;

	if (!ctx)
		return sb_fail(err, n, -ENOMEM, "sandbox: seccomp_init failed");
	/* Another architecture's system call numbers (int 0x80 on x86_64) mean other calls. */
	rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
	if (rc) {
		sb_fail(err, n, rc, "sandbox: seccomp bad-arch action: %s", strerror(-rc));
		goto cleanup;
	}
	for (size_t i = 0; i < sizeof(sandbox_rules) / sizeof(sandbox_rules[0]); i++) {
		const struct sb_rule *r = &sandbox_rules[i];
		uint64_t v = r->special == SB_SELF_PID ? (uint64_t)self : r->value;

		if (r->need & ~flags)
			continue;
		if (r->arg == SB_ARG_NONE)
			rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, r->nr, 0);
		else
			rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, r->nr, 1,
					      SCMP_CMP(r->arg, SCMP_CMP_MASKED_EQ, r->mask, v));
		if (rc) {
			char *nm = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, r->nr);

			sb_fail(err, n, rc, "sandbox: seccomp rule for %s: %s", nm ? nm : "?",
				strerror(-rc));
			free(nm);
			goto cleanup;
		}
	}
	for (size_t i = 0; i < sizeof(sandbox_errors) / sizeof(sandbox_errors[0]); i++) {
		const struct sb_error *e = &sandbox_errors[i];

		if (e->arg == SB_ARG_NONE)
			rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(e->err), e->nr, 0);
		else
			rc = seccomp_rule_add(
			    ctx, SCMP_ACT_ERRNO(e->err), e->nr, 1,
			    SCMP_CMP(e->arg, SCMP_CMP_MASKED_EQ, e->mask, e->value));
		if (rc) {
			sb_fail(err, n, rc, "sandbox: seccomp error rule %zu: %s", i,
				strerror(-rc));
			goto cleanup;
		}
	}
	rc = seccomp_load(ctx);
	if (rc)
		sb_fail(err, n, rc, "sandbox: loading the seccomp filter: %s", strerror(-rc));
cleanup:
	seccomp_release(ctx);
	return rc;
}

int sandbox_enter(const struct sandbox_id *id, unsigned flags, char *err, size_t n)
{
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
	int last, threads;

	if (!id || id->uid == 0 || id->gid == 0)
		return sb_fail(err, n, -EINVAL, "sandbox: refusing to run a worker as root");
	if (flags & ~(SANDBOX_ALLOW_CONNECT | SANDBOX_ALLOW_READ))
		return sb_fail(err, n, -EINVAL, "sandbox: unknown flags %#x", flags);
	threads = sb_threads();
	if (threads != 1)
		return sb_fail(err, n, -EBUSY,
			       "sandbox: must be entered single-threaded (Threads: %d): "
			       "capabilities and the filter would not cover the others",
			       threads);
	/* Read before anything is dropped: after the filter nothing can be opened. */
	last = sb_cap_last();
	if (chdir("/"))
		return sb_fail(err, n, -errno, "sandbox: chdir /: %s", strerror(errno));

	/* Needs CAP_SETPCAP, which setresuid below takes away; a capability already out of the
	 * bounding set needs no dropping (so a broker whose own set is already small can do it). */
	for (int cap = 0; cap <= last; cap++) {
		int in = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);

		if (in < 0 && errno == EINVAL)
			break; /* past the kernel's last */
		if (in == 1 && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0))
			return sb_fail(err, n, -errno,
				       "sandbox: dropping capability %d from the bounding set: %s",
				       cap, strerror(errno));
	}

	if (setgroups(0, NULL))
		return sb_fail(err, n, -errno, "sandbox: setgroups(0): %s", strerror(errno));
	if (setresgid(id->gid, id->gid, id->gid))
		return sb_fail(err, n, -errno, "sandbox: setresgid %u: %s", (unsigned)id->gid,
			       strerror(errno));
	/* All three ids non-zero: the kernel clears the permitted and effective sets. */
	if (setresuid(id->uid, id->uid, id->uid))
		return sb_fail(err, n, -errno, "sandbox: setresuid %u: %s", (unsigned)id->uid,
			       strerror(errno));
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0))
		return sb_fail(err, n, -errno, "sandbox: clearing the ambient set: %s",
			       strerror(errno));
	memset(data, 0, sizeof(data));
	if (syscall(SYS_capset, &hdr, data))
		return sb_fail(err, n, -errno, "sandbox: capset to nothing: %s", strerror(errno));
	/* Regaining root must be impossible; if it worked, we are root again and must not run. */
	if (setresuid(0, 0, 0) == 0 || errno != EPERM)
		return sb_fail(err, n, -EPERM,
			       "sandbox: setresuid(0) still succeeds after the drop");
	if (setresgid(0, 0, 0) == 0 || errno != EPERM)
		return sb_fail(err, n, -EPERM,
			       "sandbox: setresgid(0) still succeeds after the drop");

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return sb_fail(err, n, -errno, "sandbox: no_new_privs: %s", strerror(errno));
	/* No core files of agent data, no ptrace by other processes of the same uid. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0))
		return sb_fail(err, n, -errno, "sandbox: dumpable 0: %s", strerror(errno));
#ifdef SANDBOX_SANITIZER
	/* The sanitizers read /proc/self/maps and the binary's symbols when they report; this
	 * has them do it now, while opening still works. */
	__sanitizer_sandbox_on_notify(NULL);
	{
		/* and GCC's symbolizer (libbacktrace) opens the binary on first use: use it now */
		char sym[256];

		__sanitizer_symbolize_pc(__builtin_return_address(0), "%p %F %L", sym, sizeof(sym));
	}
	sb_entered = 1;
#endif
	return sb_load(flags, err, n);
}
