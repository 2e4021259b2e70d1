/*
 * fdpass (user/common/fdpass.c): messages with descriptors over SOCK_SEQPACKET, the way the
 * broker will hand a worker a session's sockets. What arrives is what was sent, or nothing:
 * a message or descriptor set that does not fit is refused whole and leaks no descriptor.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fdpass.h"
#include "harness.h"

static int open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1; /* the directory's own */
}

static void pair(int sv[2])
{
	CHECK(!socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv));
}

static void test_message_and_descriptors_arrive(void)
{
	int sv[2], p[2], fds[FDPASS_MAX_FDS], n = -1;
	char buf[64], c = 0;
	ssize_t r;

	pair(sv);
	CHECK(!pipe(p));
	CHECK_EQ_INT(fdpass_send(sv[0], "session", 7, p, 2), 0);
	r = fdpass_recv(sv[1], buf, sizeof(buf), fds, FDPASS_MAX_FDS, &n);
	CHECK_EQ_INT((int)r, 7);
	CHECK(!memcmp(buf, "session", 7));
	CHECK_EQ_INT(n, 2);
	/* the copies are the same pipe: written through the received end, read from ours */
	CHECK_EQ_INT((int)write(fds[1], "x", 1), 1);
	CHECK_EQ_INT((int)read(p[0], &c, 1), 1);
	CHECK_EQ_INT(c, 'x');
	CHECK(fcntl(fds[0], F_GETFD) & FD_CLOEXEC);
	CHECK(fcntl(fds[1], F_GETFD) & FD_CLOEXEC);
	close(fds[0]);
	close(fds[1]);
	close(p[0]);
	close(p[1]);
	close(sv[0]);
	close(sv[1]);
}

static void test_one_send_is_one_message(void)
{
	int sv[2], fds[2], n;
	char buf[64];

	pair(sv);
	CHECK_EQ_INT(fdpass_send(sv[0], "one", 3, NULL, 0), 0);
	CHECK_EQ_INT(fdpass_send(sv[0], "two!", 4, NULL, 0), 0);
	CHECK_EQ_INT((int)fdpass_recv(sv[1], buf, sizeof(buf), fds, 2, &n), 3);
	CHECK_EQ_INT(n, 0);
	CHECK_EQ_INT((int)fdpass_recv(sv[1], buf, sizeof(buf), fds, 2, &n), 4);
	CHECK(!memcmp(buf, "two!", 4));
	CHECK_EQ_INT((int)fdpass_recv(sv[1], buf, sizeof(buf), fds, 2, &n), -EAGAIN);
	close(sv[0]);
	CHECK_EQ_INT((int)fdpass_recv(sv[1], buf, sizeof(buf), fds, 2, &n), 0);
	close(sv[1]);
}

static void test_what_does_not_fit_is_refused_without_leaks(void)
{
	int sv[2], p[2], three[3], fds[FDPASS_MAX_FDS], n, before;
	char big[100] = {0}, buf[10];

	pair(sv);
	CHECK(!pipe(p));
	before = open_fds();
	/* a message longer than the buffer: refused, its descriptors closed */
	CHECK_EQ_INT(fdpass_send(sv[0], big, sizeof(big), p, 2), 0);
	CHECK_EQ_INT((int)fdpass_recv(sv[1], buf, sizeof(buf), fds, FDPASS_MAX_FDS, &n),
		     -EMSGSIZE);
	CHECK_EQ_INT(n, 0);
	CHECK_EQ_INT(open_fds(), before);
	/* more descriptors than the receiver takes: the same */
	three[0] = p[0];
	three[1] = p[1];
	three[2] = p[0];
	CHECK_EQ_INT(fdpass_send(sv[0], "x", 1, three, 3), 0);
	CHECK_EQ_INT((int)fdpass_recv(sv[1], buf, sizeof(buf), fds, 2, &n), -EMSGSIZE);
	CHECK_EQ_INT(n, 0);
	CHECK_EQ_INT(open_fds(), before);
	/* the channel goes on: the next message is whole */
	CHECK_EQ_INT(fdpass_send(sv[0], "ok", 2, p, 1), 0);
	CHECK_EQ_INT((int)fdpass_recv(sv[1], buf, sizeof(buf), fds, 2, &n), 2);
	CHECK_EQ_INT(n, 1);
	close(fds[0]);
	close(p[0]);
	close(p[1]);
	close(sv[0]);
	close(sv[1]);
}

static void test_bad_arguments_and_a_full_peer(void)
{
	int sv[2], fds[FDPASS_MAX_FDS + 1] = {0}, sent = 0, r;
	char msg[512] = {0};

	pair(sv);
	CHECK_EQ_INT(fdpass_send(sv[0], "x", 0, NULL, 0), -EINVAL);
	CHECK_EQ_INT(fdpass_send(sv[0], "x", 1, fds, FDPASS_MAX_FDS + 1), -EINVAL);
	/* nobody reads: the sender is told, never blocked */
	while ((r = fdpass_send(sv[0], msg, sizeof(msg), NULL, 0)) == 0 && sent < 1000000)
		sent++;
	CHECK_EQ_INT(r, -EAGAIN);
	CHECK(sent > 0);
	close(sv[0]);
	close(sv[1]);
}

int main(void)
{
	UNIT_RUN(test_message_and_descriptors_arrive);
	UNIT_RUN(test_one_send_is_one_message);
	UNIT_RUN(test_what_does_not_fit_is_refused_without_leaks);
	UNIT_RUN(test_bad_arguments_and_a_full_peer);
	return unit_report();
}
