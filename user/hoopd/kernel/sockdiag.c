/*
 * Connections an agent cgroup opened before it was attached. Only new connects are redirected,
 * so `hoopctl attach` lists the cgroup's established TCP connections to targeted destinations
 * (NETLINK_SOCK_DIAG through libnl, in every network namespace the cgroup's processes use) and,
 * with --reset-existing, ends them with SOCK_DESTROY so the agent reconnects through hoopd.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cgroup.h"
#include "daemon.h"
#include "sockdiag.h"
#include "policy.h"
#include "log.h"

#define MAX_IDS 4096
#define MAX_NS 256

struct scan {
	uint64_t ids[MAX_IDS];
	int nids;
	uint64_t ns_ino[MAX_NS];
	int ns_pid[MAX_NS];
	int nns;
	/* per dump */
	struct inet_diag_msg found[1024];
	int nfound;
};

static int add_id(uint64_t id, void *arg)
{
	struct scan *s = arg;

	if (s->nids < MAX_IDS)
		s->ids[s->nids++] = id;
	return 0;
}

static int add_ns(int pid, void *arg)
{
	struct scan *s = arg;
	char p[64];
	struct stat st;

	snprintf(p, sizeof(p), "/proc/%d/ns/net", pid);
	if (stat(p, &st))
		return 0;
	for (int i = 0; i < s->nns; i++)
		if (s->ns_ino[i] == st.st_ino)
			return 0;
	if (s->nns < MAX_NS) {
		s->ns_ino[s->nns] = st.st_ino;
		s->ns_pid[s->nns++] = pid;
	}
	return 0;
}

static int on_msg(struct nl_msg *msg, void *arg)
{
	struct scan *s = arg;
	struct nlmsghdr *nlh = nlmsg_hdr(msg);
	struct inet_diag_msg *d = nlmsg_data(nlh);
	struct nlattr *tb[INET_DIAG_MAX + 1];
	uint64_t cgid;
	int ok = 0, fam;
	uint8_t addr[16] = {0};

	if (nlh->nlmsg_type != SOCK_DIAG_BY_FAMILY)
		return NL_SKIP;
	if (nlmsg_parse(nlh, sizeof(*d), tb, INET_DIAG_MAX, NULL) < 0 || !tb[INET_DIAG_CGROUP_ID])
		return NL_SKIP;
	cgid = nla_get_u64(tb[INET_DIAG_CGROUP_ID]);
	for (int i = 0; i < s->nids && !ok; i++)
		ok = s->ids[i] == cgid;
	if (!ok)
		return NL_SKIP;
	fam = d->idiag_family;
	if (fam == AF_INET6 && IN6_IS_ADDR_V4MAPPED((struct in6_addr *)d->id.idiag_dst)) {
		fam = AF_INET;
		memcpy(addr, (uint8_t *)d->id.idiag_dst + 12, 4);
	} else {
		memcpy(addr, d->id.idiag_dst, fam == AF_INET ? 4 : 16);
	}
	if (policy_match(hoopd.pol, fam == AF_INET ? HOOP_AF_INET : HOOP_AF_INET6, addr,
			 ntohs(d->id.idiag_dport)) < 0)
		return NL_SKIP;
	if (s->nfound < (int)(sizeof(s->found) / sizeof(s->found[0])))
		s->found[s->nfound++] = *d;
	return NL_OK;
}

static int dump(struct nl_sock *sk, int family, struct scan *s)
{
	struct inet_diag_req_v2 req = {
		.sdiag_family = (uint8_t)family,
		.sdiag_protocol = IPPROTO_TCP,
		.idiag_states = (1 << 1) | (1 << 2) | (1 << 8), /* ESTABLISHED, SYN_SENT, CLOSE_WAIT */
	};
	int r;

	r = nl_send_simple(sk, SOCK_DIAG_BY_FAMILY, NLM_F_DUMP, &req, sizeof(req));
	if (r < 0)
		return r;
	nl_socket_modify_cb(sk, NL_CB_VALID, NL_CB_CUSTOM, on_msg, s);
	return nl_recvmsgs_default(sk);
}

static int destroy(struct nl_sock *sk, const struct inet_diag_msg *d)
{
	struct inet_diag_req_v2 req = {
		.sdiag_family = d->idiag_family,
		.sdiag_protocol = IPPROTO_TCP,
		.idiag_states = ~0u,
		.id = d->id,
	};
	int r = nl_send_simple(sk, SOCK_DESTROY, NLM_F_ACK, &req, sizeof(req));

	if (r < 0)
		return r;
	nl_socket_modify_cb(sk, NL_CB_VALID, NL_CB_DEFAULT, NULL, NULL);
	return nl_wait_for_ack(sk);
}

static void describe(struct jbuf *j, const struct inet_diag_msg *d, uint64_t ns, int reset_rc,
		     int reset)
{
	char src[INET6_ADDRSTRLEN], dst[INET6_ADDRSTRLEN], b[160];
	int af = d->idiag_family;

	inet_ntop(af, d->id.idiag_src, src, sizeof(src));
	inet_ntop(af, d->id.idiag_dst, dst, sizeof(dst));
	jb_obj_open(j);
	snprintf(b, sizeof(b), af == AF_INET ? "%s:%u" : "[%s]:%u", src, ntohs(d->id.idiag_sport));
	jb_kv_str(j, "local", b);
	snprintf(b, sizeof(b), af == AF_INET ? "%s:%u" : "[%s]:%u", dst, ntohs(d->id.idiag_dport));
	jb_kv_str(j, "remote", b);
	jb_kv_uint(j, "inode", d->idiag_inode);
	jb_kv_uint(j, "uid", d->idiag_uid);
	jb_kv_uint(j, "netns_inode", ns);
	if (reset) {
		jb_kv_bool(j, "reset", reset_rc == 0);
		if (reset_rc)
			jb_kv_str(j, "reset_error", nl_geterror(reset_rc));
	}
	jb_obj_close(j);
}

int sockdiag_existing(const char *cg_path, int reset, struct jbuf *j, int *count, char *err,
		      size_t errn)
{
	struct scan *s = calloc(1, sizeof(*s));
	int r = 0;

	if (!s)
		return -ENOMEM;
	cg_for_each_id(cg_path, add_id, s);
	cg_for_each_pid(cg_path, add_ns, s);
	*count = 0;
	jb_arr_open(j);
	for (int n = 0; n < s->nns; n++) {
		char p[64];
		int nsfd;
		struct nl_sock *sk;

		snprintf(p, sizeof(p), "/proc/%d/ns/net", s->ns_pid[n]);
		nsfd = open(p, O_RDONLY | O_CLOEXEC);
		if (nsfd < 0)
			continue;
		if (s->ns_ino[n] != hoopd.host_netns_ino && setns(nsfd, CLONE_NEWNET)) {
			snprintf(err, errn, "setns %s: %s", p, strerror(errno));
			close(nsfd);
			r = -errno;
			continue;
		}
		/* The netlink socket is bound to the namespace it is made in. */
		sk = nl_socket_alloc();
		if (sk && nl_connect(sk, NETLINK_SOCK_DIAG) == 0) {
			if (s->ns_ino[n] != hoopd.host_netns_ino)
				setns(hoopd.host_netns_fd, CLONE_NEWNET);
			s->nfound = 0;
			dump(sk, AF_INET, s);
			dump(sk, AF_INET6, s);
			for (int i = 0; i < s->nfound; i++) {
				int rc = reset ? destroy(sk, &s->found[i]) : 0;

				if (rc)
					log_warn("cannot end pre-attach connection (inode %u): %s",
						 s->found[i].idiag_inode, nl_geterror(rc));
				describe(j, &s->found[i], s->ns_ino[n], rc, reset);
				(*count)++;
			}
		} else {
			snprintf(err, errn, "cannot open NETLINK_SOCK_DIAG");
			r = -EIO;
		}
		if (s->ns_ino[n] != hoopd.host_netns_ino && setns(hoopd.host_netns_fd, CLONE_NEWNET)) {
			log_error("cannot return to hoopd's netns: %s", strerror(errno));
			abort();
		}
		nl_socket_free(sk);
		close(nsfd);
	}
	jb_arr_close(j);
	free(s);
	return r;
}
