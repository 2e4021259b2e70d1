/* Unit tests for the engine worker's sandbox (kernel/sandbox.c), as root: each forbidden system
 * call, made by a child that entered the sandbox, kills it with SIGSYS; a child that entered does
 * an engine's real work (epoll, pipes, descriptors over SCM_RIGHTS, big allocations, threads,
 * clocks, randomness) and exits 0; /proc/PID/status of a sandboxed child shows no capability,
 * no_new_privs, seccomp filter mode and the unprivileged ids; the catalog loader's flag lets a
 * child dial a loopback listener. The worker's user is `nobody`, which Debian always has. */
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "sandbox.h"

#define WORKER_USER "nobody"

static struct sandbox_id g_id;

/* Made before the child enters (the worker's descriptors), used after. */
static int g_sock = -1, g_pipe[2] = {-1, -1};
static pid_t g_ppid; /* getppid is not allowed in the sandbox */

/* Forks a child that runs before(), enters the sandbox with flags, runs after() and exits with
 * its result. Exit 100: the sandbox could not be entered; 101: before() failed. Returns the
 * child's wait status (-1 if fork or wait failed). */
static int sandboxed(int (*before)(void), int (*after)(void), unsigned flags)
{
	int st;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		char err[256];

		g_ppid = getppid();
		if (before && before())
			_exit(101);
		if (sandbox_enter(&g_id, flags, err, sizeof(err))) {
			fprintf(stderr, "child: %s\n", err);
			_exit(100);
		}
		_exit(after());
	}
	if (waitpid(pid, &st, 0) != pid)
		return -1;
	return st;
}

static void check_killed(const char *what, int st)
{
	unit_where("%s", what);
	if (!(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS))
		unit_fail(__FILE__, __LINE__, "want death by SIGSYS, got %s %d",
			  WIFSIGNALED(st) ? "signal" : "exit status",
			  WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
	unit_where("%s", "");
}

static void check_exit0(const char *what, int st)
{
	unit_where("%s", what);
	if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0))
		unit_fail(__FILE__, __LINE__, "want exit 0, got %s %d",
			  WIFSIGNALED(st) ? "signal" : "exit status",
			  WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
	unit_where("%s", "");
}

/* ---- the forbidden calls: each returns only if the call was let through ---- */

static int make_sock(void)
{
	g_sock = socket(AF_INET, SOCK_STREAM, 0);
	return g_sock < 0;
}

static int call_socket(void)
{
	socket(AF_INET, SOCK_STREAM, 0);
	return 1;
}

static int call_socket_netlink(void)
{
	socket(AF_NETLINK, SOCK_RAW, 0);
	return 1;
}

static int call_socketpair(void)
{
	int sv[2];

	socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
	return 1;
}

static int call_connect(void)
{
	struct sockaddr_in a = {
	    .sin_family = AF_INET, .sin_port = htons(9), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};

	connect(g_sock, (struct sockaddr *)&a, sizeof(a));
	return 1;
}

/* TCP Fast Open connects: sendto/sendmsg with MSG_FASTOPEN on a socket made before entering
 * (as a worker holds its sessions' upstream sockets) would be a connect in disguise. */
static int call_sendto_fastopen(void)
{
	struct sockaddr_in a = {
	    .sin_family = AF_INET, .sin_port = htons(9), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};

	sendto(g_sock, "x", 1, MSG_FASTOPEN, (struct sockaddr *)&a, sizeof(a));
	return 1;
}

static int call_sendmsg_fastopen(void)
{
	struct sockaddr_in a = {
	    .sin_family = AF_INET, .sin_port = htons(9), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct iovec iov = {.iov_base = "x", .iov_len = 1};
	struct msghdr m = {.msg_name = &a, .msg_namelen = sizeof(a), .msg_iov = &iov, .msg_iovlen = 1};

	sendmsg(g_sock, &m, MSG_FASTOPEN);
	return 1;
}

static int call_bind_listen(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};

	bind(g_sock, (struct sockaddr *)&a, sizeof(a));
	return 1;
}

static int call_accept(void)
{
	accept4(g_sock, NULL, NULL, 0);
	return 1;
}

static int call_openat_new(void)
{
	openat(AT_FDCWD, "/tmp/hoop-sandbox-test-new", O_CREAT | O_WRONLY, 0600);
	return 1;
}

static int call_open_proc1(void)
{
	open("/proc/1/status", O_RDONLY);
	return 1;
}

#ifdef SYS_open
__attribute__((unused)) static int call_sys_open(void)
{
	syscall(SYS_open, "/etc/passwd", O_RDONLY);
	return 1;
}

/* Sanitizer builds: the legacy open (the sanitizers' own, glibc never makes it) fails. */
__attribute__((unused)) static int sys_open_fails(void)
{
	return syscall(SYS_open, "/etc/passwd", O_RDONLY) == -1 && errno == EACCES ? 0 : 1;
}
#endif

static int call_openat2(void)
{
	syscall(SYS_openat2, AT_FDCWD, "/etc/passwd", NULL, 0);
	return 1;
}

static int call_execve(void)
{
	char *argv[] = {"/bin/true", NULL};

	execve("/bin/true", argv, NULL);
	return 1;
}

static int call_bpf(void)
{
	union bpf_attr attr;

	memset(&attr, 0, sizeof(attr));
	syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof(attr));
	return 1;
}

static int call_setns(void)
{
	setns(0, CLONE_NEWNET);
	return 1;
}

static int call_ptrace(void)
{
	ptrace(PTRACE_TRACEME, 0, NULL, NULL);
	return 1;
}

static int call_unshare(void)
{
	unshare(CLONE_NEWUSER);
	return 1;
}

static int call_mount(void)
{
	mount("none", "/tmp", "tmpfs", 0, NULL);
	return 1;
}

static int call_setuid0(void)
{
	setuid(0);
	return 1;
}

static int call_setresuid0(void)
{
	setresuid(0, 0, 0);
	return 1;
}

static int call_fork(void)
{
	pid_t p = fork();

	if (p == 0)
		_exit(0);
	return 1;
}

static int call_clone_newns_thread(void)
{
	/* A thread flag does not make a namespace flag acceptable. */
	syscall(SYS_clone, CLONE_THREAD | CLONE_SIGHAND | CLONE_VM | CLONE_NEWNET, 0, 0, 0, 0);
	return 1;
}

static int call_kill_parent(void)
{
	kill(g_ppid, 0);
	return 1;
}

static int call_tgkill_parent(void)
{
	syscall(SYS_tgkill, g_ppid, g_ppid, 0);
	return 1;
}

static int call_mmap_exec(void)
{
	mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return 1;
}

static int call_mprotect_exec(void)
{
	void *p = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return 2;
	mprotect(p, 4096, PROT_READ | PROT_EXEC);
	return 1;
}

static int call_ioctl_tty(void)
{
	struct winsize ws;

	ioctl(0, TIOCGWINSZ, &ws);
	return 1;
}

static int call_fcntl_setown(void)
{
	int p[2];

	if (pipe2(p, 0))
		return 2;
	fcntl(p[0], F_SETOWN, g_ppid);
	return 1;
}

static int call_prctl_caps(void)
{
	prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
	return 1;
}

static int call_prlimit_set(void)
{
	struct rlimit r = {1 << 20, 1 << 20};

	prlimit(0, RLIMIT_NOFILE, &r, NULL);
	return 1;
}

static int call_process_vm(void)
{
	syscall(SYS_process_vm_readv, g_ppid, NULL, 0, NULL, 0, 0);
	return 1;
}

static int call_keyctl(void)
{
	syscall(SYS_keyctl, 0, 0, 0, 0, 0);
	return 1;
}

static int call_perf_event_open(void)
{
	syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0);
	return 1;
}

static int call_io_uring(void)
{
	syscall(SYS_io_uring_setup, 1, NULL);
	return 1;
}

static int call_chroot(void)
{
	chroot("/tmp");
	return 1;
}

static int call_pivot_root(void)
{
	syscall(SYS_pivot_root, "/tmp", "/tmp");
	return 1;
}

static int call_x32(void)
{
	/* x86_64's x32 ABI: the same numbers with bit 30 set, other rules in older filters. */
	syscall(0x40000000 | SYS_getpid);
	return 1;
}

struct forbidden {
	const char *what;
	int (*before)(void);
	int (*call)(void);
	unsigned flags;
};

static const struct forbidden forbidden[] = {
    {"socket", NULL, call_socket, 0},
    {"socketpair", NULL, call_socketpair, 0},
    {"socket(AF_NETLINK) with SANDBOX_ALLOW_CONNECT", NULL, call_socket_netlink,
     SANDBOX_ALLOW_CONNECT},
    {"connect on a socket made before entering", make_sock, call_connect, 0},
    {"sendto(MSG_FASTOPEN), a connect in disguise", make_sock, call_sendto_fastopen, 0},
    {"sendmsg(MSG_FASTOPEN)", make_sock, call_sendmsg_fastopen, 0},
    {"bind", make_sock, call_bind_listen, 0},
    {"accept4", make_sock, call_accept, 0},
    {"openat of a new path", NULL, call_openat_new, 0},
    {"open of /proc/1/status", NULL, call_open_proc1, 0},
#if defined(SYS_open) && !defined(SANDBOX_SANITIZER)
    {"the open system call", NULL, call_sys_open, 0},
#endif
    {"openat2", NULL, call_openat2, 0},
    {"execve", NULL, call_execve, 0},
    {"bpf", NULL, call_bpf, 0},
    {"setns", NULL, call_setns, 0},
    {"ptrace", NULL, call_ptrace, 0},
    {"unshare", NULL, call_unshare, 0},
    {"mount", NULL, call_mount, 0},
    {"setuid(0)", NULL, call_setuid0, 0},
    {"setresuid(0)", NULL, call_setresuid0, 0},
    {"fork", NULL, call_fork, 0},
    {"clone of a thread in a new namespace", NULL, call_clone_newns_thread, 0},
    {"kill of another process", NULL, call_kill_parent, 0},
    {"tgkill of another process", NULL, call_tgkill_parent, 0},
    {"mmap PROT_EXEC", NULL, call_mmap_exec, 0},
    {"mprotect PROT_EXEC", NULL, call_mprotect_exec, 0},
    {"ioctl other than FIONREAD", NULL, call_ioctl_tty, 0},
    {"fcntl(F_SETOWN)", NULL, call_fcntl_setown, 0},
    {"prctl other than thread names", NULL, call_prctl_caps, 0},
    {"prlimit64 that sets a limit", NULL, call_prlimit_set, 0},
    {"process_vm_readv", NULL, call_process_vm, 0},
    {"keyctl", NULL, call_keyctl, 0},
    {"perf_event_open", NULL, call_perf_event_open, 0},
    {"io_uring_setup", NULL, call_io_uring, 0},
    {"chroot", NULL, call_chroot, 0},
    {"pivot_root", NULL, call_pivot_root, 0},
    {"an x32 system call", NULL, call_x32, 0},
};

static void test_forbidden_calls_kill(void)
{
	for (size_t i = 0; i < sizeof(forbidden) / sizeof(forbidden[0]); i++) {
		const struct forbidden *f = &forbidden[i];

		check_killed(f->what, sandboxed(f->before, f->call, f->flags));
	}
#if defined(SYS_open) && defined(SANDBOX_SANITIZER)
	check_exit0("the open system call fails (sanitizer build)",
		    sandboxed(NULL, sys_open_fails, 0));
#endif
}

/* ---- the allowed set: a worker's real work ---- */

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static int g_turn;

static void *worker_thread(void *arg)
{
	pthread_setname_np(pthread_self(), "sandbox-test");
	pthread_mutex_lock(&g_mu);
	while (g_turn != 1)
		pthread_cond_wait(&g_cv, &g_mu);
	g_turn = 2;
	pthread_cond_signal(&g_cv);
	pthread_mutex_unlock(&g_mu);
	return arg;
}

/* Receives one descriptor over a Unix socket (how a worker gets its sessions). */
static int recv_fd(int sock)
{
	char b;
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = {&b, 1};
	struct msghdr m = {
	    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
	struct cmsghdr *c;
	int fd;

	if (recvmsg(sock, &m, 0) != 1)
		return -1;
	c = CMSG_FIRSTHDR(&m);
	if (!c || c->cmsg_type != SCM_RIGHTS)
		return -1;
	memcpy(&fd, CMSG_DATA(c), sizeof(fd));
	return fd;
}

static int send_fd(int sock, int fd)
{
	char b = 'f';
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = {&b, 1};
	struct msghdr m = {
	    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);

	memset(cbuf, 0, sizeof(cbuf));
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(fd));
	return sendmsg(sock, &m, 0) == 1 ? 0 : -1;
}

/* The pipe whose write end the parent (the broker) hands the child over their socketpair. */
static int g_session[2] = {-1, -1};

static int allowed_work(void)
{
	struct epoll_event ev = {.events = EPOLLIN}, out;
	struct timespec ts;
	struct stat st;
	uint64_t one = 1;
	pthread_t th;
	char b[16];
	char *big;
	int ep, fd, efd, tfd, n;

	/* epoll on a pipe made before entering, and a pipe made after */
	if (pipe2(g_pipe, O_CLOEXEC))
		return 10;
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, g_pipe[0], &ev))
		return 11;
	if (write(g_pipe[1], "x", 1) != 1 || epoll_wait(ep, &out, 1, 1000) != 1 ||
	    read(g_pipe[0], b, 1) != 1 || b[0] != 'x')
		return 12;
	if (ioctl(g_pipe[0], FIONREAD, &n) || n != 0)
		return 13;
	if (fstat(g_pipe[0], &st) || !S_ISFIFO(st.st_mode))
		return 14;
	/* the flags a worker sets on its descriptors, and a close-on-exec copy */
	n = fcntl(g_pipe[0], F_GETFL);
	if (n < 0 || fcntl(g_pipe[0], F_SETFL, n | O_NONBLOCK) || fcntl(g_pipe[0], F_GETFD) < 0 ||
	    fcntl(g_pipe[0], F_SETFD, FD_CLOEXEC))
		return 16;
	fd = fcntl(g_pipe[0], F_DUPFD_CLOEXEC, 0);
	if (fd < 0 || close(fd))
		return 17;
	/* isatty answers "no" (ENOTTY) rather than killing */
	if (isatty(g_pipe[0]) || errno != ENOTTY)
		return 15;

	/* a session's descriptor, sent by the broker after we entered: write through it */
	fd = recv_fd(g_sock);
	if (fd < 0 || write(fd, "hello", 5) != 5 || close(fd))
		return 20;
	/* and one back (an eventfd made in here) */
	efd = eventfd(0, EFD_CLOEXEC);
	if (efd < 0 || write(efd, &one, sizeof(one)) != sizeof(one) || send_fd(g_sock, efd))
		return 21;

	/* large blocks: mmap, mremap, munmap under malloc */
	big = malloc(64 << 20);
	if (!big)
		return 30;
	memset(big, 'a', 64 << 20);
	big = realloc(big, 128 << 20);
	if (!big || big[(64 << 20) - 1] != 'a')
		return 31;
	free(big);

	/* a thread, a mutex and a condition variable */
	if (pthread_create(&th, NULL, worker_thread, NULL))
		return 40;
	pthread_mutex_lock(&g_mu);
	g_turn = 1;
	pthread_cond_signal(&g_cv);
	while (g_turn != 2)
		pthread_cond_wait(&g_cv, &g_mu);
	pthread_mutex_unlock(&g_mu);
	if (pthread_join(th, NULL))
		return 41;

	/* clocks, timers, randomness */
	if (clock_gettime(CLOCK_MONOTONIC, &ts) || clock_gettime(CLOCK_REALTIME, &ts))
		return 50;
	ts = (struct timespec){0, 1000};
	if (nanosleep(&ts, NULL))
		return 51;
	tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
	if (tfd < 0 || close(tfd))
		return 52;
	if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
		return 53;
	{
		/* qsort of a large array asks for the physical memory (sysinfo) */
		struct sysinfo si;

		if (sysinfo(&si))
			return 55;
	}
	/* clone3 answers ENOSYS (glibc then uses clone, which the filter can read) */
	if (syscall(SYS_clone3, NULL, 0) != -1 || errno != ENOSYS)
		return 54;
	return 0;
}

static void test_allowed_work(void)
{
	int sv[2], st;
	pid_t pid;
	char b[8] = {0};

	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	CHECK(pipe2(g_session, O_CLOEXEC) == 0);
	fflush(NULL);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		char err[256];

		close(sv[0]);
		close(g_session[0]);
		close(g_session[1]);
		g_sock = sv[1];
		if (sandbox_enter(&g_id, 0, err, sizeof(err))) {
			fprintf(stderr, "child: %s\n", err);
			_exit(100);
		}
		/* exit(), not _exit: atexit handlers and stdio flushing run sandboxed too */
		exit(allowed_work());
	}
	close(sv[1]);
	CHECK(send_fd(sv[0], g_session[1]) == 0);
	close(g_session[1]);
	CHECK(read(g_session[0], b, 5) == 5);
	CHECK_STREQ(b, "hello");
	{
		int efd = recv_fd(sv[0]);
		uint64_t v = 0;

		CHECK(efd >= 0);
		CHECK(read(efd, &v, sizeof(v)) == sizeof(v));
		CHECK_EQ_INT(v, 1);
		close(efd);
	}
	CHECK(waitpid(pid, &st, 0) == pid);
	check_exit0("allowed work", st);
	close(sv[0]);
	close(g_session[0]);
}

/* ---- what the kernel says about a sandboxed process ---- */

static int wait_for_parent(void)
{
	char b;

	/* parked on a pipe while the parent reads our /proc/PID/status */
	return read(g_pipe[0], &b, 1) == 1 ? 0 : 1;
}

static void status_line(const char *status, const char *key, char *out, size_t n)
{
	const char *p = strstr(status, key);
	size_t len;

	out[0] = '\0';
	if (!p)
		return;
	p += strlen(key);
	while (*p == ' ' || *p == '\t')
		p++;
	len = strcspn(p, "\n");
	snprintf(out, n, "%.*s", (int)len, p);
}

static void test_proc_status(void)
{
	int go[2], ready[2], st;
	char path[64], status[8192], v[128], want[128];
	pid_t pid;
	ssize_t len;
	int fd;

	CHECK(pipe(go) == 0 && pipe(ready) == 0);
	fflush(NULL);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		char err[256];

		close(go[1]);
		close(ready[0]);
		g_pipe[0] = go[0];
		if (sandbox_enter(&g_id, 0, err, sizeof(err))) {
			fprintf(stderr, "child: %s\n", err);
			_exit(100);
		}
		if (write(ready[1], "r", 1) != 1)
			_exit(2);
		_exit(wait_for_parent());
	}
	close(go[0]);
	close(ready[1]);
	CHECK(read(ready[0], v, 1) == 1);
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	fd = open(path, O_RDONLY);
	CHECK(fd >= 0);
	len = fd >= 0 ? read(fd, status, sizeof(status) - 1) : -1;
	CHECK(len > 0);
	status[len > 0 ? len : 0] = '\0';
	if (fd >= 0)
		close(fd);
	const char *zero_keys[] = {"CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"};
	for (size_t i = 0; i < sizeof(zero_keys) / sizeof(zero_keys[0]); i++) {
		status_line(status, zero_keys[i], v, sizeof(v));
		unit_where("%s", zero_keys[i]);
		CHECK_STREQ(v, "0000000000000000");
	}
	unit_where("%s", "");
	status_line(status, "NoNewPrivs:", v, sizeof(v));
	CHECK_STREQ(v, "1");
	status_line(status, "Seccomp:", v, sizeof(v));
	CHECK_STREQ(v, "2");
	snprintf(want, sizeof(want), "%u\t%u\t%u\t%u", (unsigned)g_id.uid, (unsigned)g_id.uid,
		 (unsigned)g_id.uid, (unsigned)g_id.uid);
	status_line(status, "Uid:", v, sizeof(v));
	CHECK_STREQ(v, want);
	snprintf(want, sizeof(want), "%u\t%u\t%u\t%u", (unsigned)g_id.gid, (unsigned)g_id.gid,
		 (unsigned)g_id.gid, (unsigned)g_id.gid);
	status_line(status, "Gid:", v, sizeof(v));
	CHECK_STREQ(v, want);
	status_line(status, "Groups:", v, sizeof(v));
	CHECK_STREQ(v, "");
	CHECK(write(go[1], "g", 1) == 1);
	CHECK(waitpid(pid, &st, 0) == pid);
	check_exit0("parked child", st);
	close(go[1]);
	close(ready[0]);
}

/* ---- the worker's user ---- */

static void test_user(void)
{
	struct sandbox_id id;
	char err[256] = "";

	CHECK_EQ_INT(sandbox_user("hoop-no-such-user", &id, err, sizeof(err)), -ENOENT);
	CHECK(strstr(err, "hoop-no-such-user") && strstr(err, "no such user"));
	CHECK_EQ_INT(sandbox_user("root", &id, err, sizeof(err)), -EPERM);
	CHECK(strstr(err, "root") && strstr(err, "must not run as root"));
	CHECK_EQ_INT(sandbox_user("", &id, err, sizeof(err)), -EINVAL);
	CHECK_EQ_INT(sandbox_user(WORKER_USER, &id, err, sizeof(err)), 0);
	CHECK(id.uid != 0 && id.gid != 0);
	CHECK_STREQ(id.name, WORKER_USER);
}

static int zero_id_refused(void)
{
	struct sandbox_id root = {0};
	char err[256];

	return sandbox_enter(&root, 0, err, sizeof(err)) == -EINVAL ? 0 : 1;
}

static void *idle(void *arg)
{
	pause();
	return arg;
}

static int second_thread(void)
{
	pthread_t th;
	char err[256];

	if (pthread_create(&th, NULL, idle, NULL))
		return 2;
	/* refused before any change: still root afterwards */
	if (sandbox_enter(&g_id, 0, err, sizeof(err)) != -EBUSY || !strstr(err, "single-threaded"))
		return 1;
	return getuid() == 0 ? 0 : 3;
}

static void test_enter_refusals(void)
{
	int st;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid == 0)
		_exit(zero_id_refused());
	CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
	check_exit0("uid 0 refused", st);
	fflush(NULL);
	pid = fork();
	if (pid == 0)
		_exit(second_thread());
	CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
	check_exit0("a second thread refused", st);
	/* An unknown flag is refused before anything changes (so this runs in the test itself). */
	{
		char err[256] = "";

		CHECK_EQ_INT(sandbox_enter(&g_id, 0x80, err, sizeof(err)), -EINVAL);
		CHECK(strstr(err, "unknown flags") != NULL);
		CHECK_EQ_INT(getuid(), 0);
	}
}

/* ---- SANDBOX_ALLOW_CONNECT: the catalog loader dials ---- */

static struct sockaddr_in g_listen_addr;

static int dial(void)
{
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (s < 0)
		return 10;
	if (connect(s, (struct sockaddr *)&g_listen_addr, sizeof(g_listen_addr)))
		return 11;
	if (write(s, "hi", 2) != 2)
		return 12;
	close(s);
	return 0;
}

static void test_allow_connect(void)
{
	socklen_t len = sizeof(g_listen_addr);
	int ls, c, st;
	char b[4] = {0};

	ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	g_listen_addr =
	    (struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	CHECK(ls >= 0);
	CHECK(bind(ls, (struct sockaddr *)&g_listen_addr, sizeof(g_listen_addr)) == 0);
	CHECK(listen(ls, 4) == 0);
	CHECK(getsockname(ls, (struct sockaddr *)&g_listen_addr, &len) == 0);
	st = sandboxed(NULL, dial, SANDBOX_ALLOW_CONNECT);
	check_exit0("dial with SANDBOX_ALLOW_CONNECT", st);
	c = accept(ls, NULL, NULL);
	CHECK(c >= 0);
	CHECK(c >= 0 && read(c, b, 2) == 2);
	CHECK_STREQ(b, "hi");
	if (c >= 0)
		close(c);
	/* and without the flag the same dial is killed */
	check_killed("dial without SANDBOX_ALLOW_CONNECT", sandboxed(NULL, dial, 0));
	close(ls);
}

/* ---- SANDBOX_ALLOW_READ: the catalog loader reads files by name, and writes none ---- */

static int read_by_name(void)
{
	char b[16];
	struct stat st;
	int fd = open("/etc/passwd", O_RDONLY | O_CLOEXEC), mfd;

	if (fd < 0 || read(fd, b, sizeof(b)) <= 0)
		return 20;
	close(fd);
	if (stat("/dev/null/none", &st) == 0 || errno != ENOTDIR)
		return 21; /* libpq's look for a client certificate that is not there */
	mfd = memfd_create("ca", MFD_CLOEXEC);
	if (mfd < 0 || write(mfd, "pem", 3) != 3)
		return 22;
	snprintf(b, sizeof(b), "/proc/self/fd/%d", mfd);
	fd = open(b, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || read(fd, b, 3) != 3 || memcmp(b, "pem", 3))
		return 23;
	return 0;
}

static int write_by_name(void)
{
	open("/tmp/hoop-sandbox-test-write", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	return 30;
}

static int read_write_by_name(void)
{
	open("/etc/passwd", O_RDWR | O_CLOEXEC);
	return 31;
}

static void test_allow_read(void)
{
	check_exit0("reading by name with SANDBOX_ALLOW_READ",
		    sandboxed(NULL, read_by_name, SANDBOX_ALLOW_READ));
	check_killed("O_WRONLY|O_CREAT with SANDBOX_ALLOW_READ",
		     sandboxed(NULL, write_by_name, SANDBOX_ALLOW_READ));
	check_killed("O_RDWR with SANDBOX_ALLOW_READ",
		     sandboxed(NULL, read_write_by_name, SANDBOX_ALLOW_READ));
	check_killed("reading by name without it", sandboxed(NULL, read_by_name, 0));
	unlink("/tmp/hoop-sandbox-test-write");
}

#ifdef __SANITIZE_ADDRESS__
/* ---- sanitizer builds: a report made in the sandbox is printed whole ---- */

static char *volatile g_block; /* volatile: the compiler may not drop the allocation */

static int overflow(void)
{
	volatile size_t n = 8;

	g_block = malloc(8);
	memset(g_block, 1, n + 1);
	free(g_block);
	return 0;
}

static void test_sanitizer_report(void)
{
	int err[2], st;
	static char out[65536];
	size_t len = 0;
	ssize_t r;
	pid_t pid;

	CHECK(pipe(err) == 0);
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		char e[256];

		close(err[0]);
		dup2(err[1], 2);
		if (sandbox_enter(&g_id, 0, e, sizeof(e)))
			_exit(100);
		_exit(overflow());
	}
	close(err[1]);
	while (len < sizeof(out) - 1 && (r = read(err[0], out + len, sizeof(out) - 1 - len)) > 0)
		len += (size_t)r;
	out[len] = '\0';
	close(err[0]);
	CHECK(waitpid(pid, &st, 0) == pid);
	/* ASan's own exit status, not SIGSYS: the report did not hit the filter */
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1);
	CHECK(strstr(out, "heap-buffer-overflow") != NULL);
	/* symbolized: the symbolizer was readied before the filter */
	CHECK(strstr(out, "in overflow ") != NULL && strstr(out, "test_sandbox.c:") != NULL);
	if (unit_state.test_failed)
		fprintf(stderr, "child's report:\n%s\n", out);
}
#endif

int main(void)
{
	char err[256];

	if (getuid() != 0) {
		fprintf(stderr, "test_sandbox: must run as root (it drops root in children)\n");
		printf("unit: 0 passed, 1 failed\n");
		return 1;
	}
	if (sandbox_user(WORKER_USER, &g_id, err, sizeof(err))) {
		fprintf(stderr, "test_sandbox: %s\n", err);
		printf("unit: 0 passed, 1 failed\n");
		return 1;
	}
	UNIT_RUN(test_user);
	UNIT_RUN(test_enter_refusals);
	UNIT_RUN(test_forbidden_calls_kill);
	UNIT_RUN(test_allowed_work);
	UNIT_RUN(test_proc_status);
	UNIT_RUN(test_allow_connect);
	UNIT_RUN(test_allow_read);
#ifdef __SANITIZE_ADDRESS__
	UNIT_RUN(test_sanitizer_report);
#endif
	return unit_report();
}
