/*
 * Kernel feature probing. hoopd asks the running kernel, before it loads anything, for each
 * program type, map type, helper (in the program type that calls it) and attach type that
 * bpf/hoop.bpf.c uses, and for SO_NETNS_COOKIE, so that an old or oddly configured kernel is
 * refused with the missing feature's name and the kernel it needs, not with a verifier log.
 *
 * Program, map and helper probes use libbpf's probe API (libbpf 1.1). It has no attach-type
 * probe, so getpeername4/6 are probed by loading a two-instruction program with that expected
 * attach type (the kernel checks it at load time), with uname >= 5.8 as the fallback answer.
 * The cgroup bpf_link API (5.7) needs no probe of its own: getpeername (5.8) implies it.
 */
#include "probe.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <linux/bpf.h>
#include <linux/capability.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "log.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

enum probe_kind { PK_PROG, PK_MAP, PK_HELPER, PK_ATTACH, PK_SOCKOPT };

struct probe_feature {
	const char *key;   /* stable short name: the result line and HOOPD_PROBE_HIDE */
	const char *what;  /* what the operator reads */
	const char *since; /* first kernel with it (shared/reference/ebpf-redirect.md §2.3) */
	enum probe_kind kind;
	enum bpf_prog_type prog_type; /* PK_HELPER, PK_ATTACH */
	int type;		      /* map type, helper id or attach type */
	int accel;		      /* only --accel sockmap needs it */
};

static const struct probe_feature features[] = {
    {"cgroup_sock_addr", "BPF program type cgroup sock_addr (cgroup/connect4|6)", "4.17", PK_PROG,
     BPF_PROG_TYPE_CGROUP_SOCK_ADDR, 0, 0},
    {"sock_ops", "BPF program type sock_ops", "4.13", PK_PROG, BPF_PROG_TYPE_SOCK_OPS, 0, 0},
    {"lpm_trie", "BPF map type LPM trie", "4.11", PK_MAP, 0, BPF_MAP_TYPE_LPM_TRIE, 0},
    {"lru_hash", "BPF map type LRU hash", "4.10", PK_MAP, 0, BPF_MAP_TYPE_LRU_HASH, 0},
    {"sk_storage", "BPF map type socket storage (sk_storage)", "5.2", PK_MAP, 0,
     BPF_MAP_TYPE_SK_STORAGE, 0},
    {"ringbuf", "BPF map type ring buffer", "5.8", PK_MAP, 0, BPF_MAP_TYPE_RINGBUF, 0},
    {"sk_storage_get_sock_addr", "helper bpf_sk_storage_get in cgroup sock_addr programs", "5.3",
     PK_HELPER, BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_FUNC_sk_storage_get, 0},
    {"sk_storage_get_sock_ops", "helper bpf_sk_storage_get in sock_ops programs", "5.3", PK_HELPER,
     BPF_PROG_TYPE_SOCK_OPS, BPF_FUNC_sk_storage_get, 0},
    {"netns_cookie_sock_addr", "helper bpf_get_netns_cookie in cgroup sock_addr programs", "5.7",
     PK_HELPER, BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_FUNC_get_netns_cookie, 0},
    {"netns_cookie_sock_ops", "helper bpf_get_netns_cookie in sock_ops programs", "5.15", PK_HELPER,
     BPF_PROG_TYPE_SOCK_OPS, BPF_FUNC_get_netns_cookie, 0},
    {"sk_lookup_tcp_sock_addr", "helper bpf_sk_lookup_tcp in cgroup sock_addr programs", "5.0",
     PK_HELPER, BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_FUNC_sk_lookup_tcp, 0},
    {"cgroup_id_sock_addr", "helper bpf_get_current_cgroup_id in cgroup sock_addr programs", "4.18",
     PK_HELPER, BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_FUNC_get_current_cgroup_id, 0},
    {"ringbuf_sock_addr", "helper bpf_ringbuf_reserve in cgroup sock_addr programs", "5.8",
     PK_HELPER, BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_FUNC_ringbuf_reserve, 0},
    {"getpeername4", "attach type cgroup/getpeername4", "5.8", PK_ATTACH,
     BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_INET4_GETPEERNAME, 0},
    {"getpeername6", "attach type cgroup/getpeername6", "5.8", PK_ATTACH,
     BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_INET6_GETPEERNAME, 0},
    {"so_netns_cookie", "socket option SO_NETNS_COOKIE", "5.14", PK_SOCKOPT, 0, 0, 0},
    /* --accel sockmap only */
    {"sk_msg", "BPF program type sk_msg", "4.17", PK_PROG, BPF_PROG_TYPE_SK_MSG, 0, 1},
    {"sockhash", "BPF map type sockhash", "4.18", PK_MAP, 0, BPF_MAP_TYPE_SOCKHASH, 1},
    {"sock_hash_update_sock_ops", "helper bpf_sock_hash_update in sock_ops programs", "4.18",
     PK_HELPER, BPF_PROG_TYPE_SOCK_OPS, BPF_FUNC_sock_hash_update, 1},
    {"msg_redirect_hash", "helper bpf_msg_redirect_hash in sk_msg programs", "4.18", PK_HELPER,
     BPF_PROG_TYPE_SK_MSG, BPF_FUNC_msg_redirect_hash, 1},
    {"netns_cookie_sk_msg", "helper bpf_get_netns_cookie in sk_msg programs", "5.15", PK_HELPER,
     BPF_PROG_TYPE_SK_MSG, BPF_FUNC_get_netns_cookie, 1},
};

#define NFEATURES (sizeof(features) / sizeof(features[0]))

/* Is key in the comma-separated list? */
static int in_list(const char *list, const char *key)
{
	size_t kl = strlen(key);

	for (const char *p = list; p && *p;) {
		const char *e = strchr(p, ',');
		size_t l = e ? (size_t)(e - p) : strlen(p);

		if (l == kl && !strncmp(p, key, kl))
			return 1;
		p = e ? e + 1 : NULL;
	}
	return 0;
}

static int kernel_at_least(const char *release, int major, int minor)
{
	int ma = 0, mi = 0;

	if (sscanf(release, "%d.%d", &ma, &mi) != 2)
		return 0;
	return ma > major || (ma == major && mi >= minor);
}

/* Load "r0 = 1; exit" as a cgroup sock_addr program expecting attach_type. 0 or -errno. */
static int load_sock_addr(enum bpf_attach_type attach_type)
{
	struct bpf_insn insns[] = {
	    {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 1},
	    {.code = BPF_JMP | BPF_EXIT},
	};
	LIBBPF_OPTS(bpf_prog_load_opts, o, .expected_attach_type = attach_type);
	int fd = bpf_prog_load(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, "hoop_probe", "GPL", insns, 2, &o);

	if (fd < 0)
		return -errno;
	close(fd);
	return 0;
}

static int probe_sockopt(void)
{
	__u64 cookie;
	socklen_t l = sizeof(cookie);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), r = 1;

	if (fd < 0)
		return -errno;
	if (getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &l))
		r = errno == ENOPROTOOPT ? 0 : -errno;
	close(fd);
	return r;
}

/* Is cap in this process's effective set? */
static int has_cap(int cap)
{
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3] = {0};

	if (syscall(SYS_capget, &h, d))
		return 1; /* cannot tell: let the operations themselves fail */
	return !!(d[cap / 32].effective & (1u << (cap % 32)));
}

/*
 * The capabilities hoopd's work needs, checked up front: without them the programs load (or
 * not) with a verifier log, or agents are silently left without a listener. deploy/daemonset.yaml
 * grants exactly these and says why.
 */
static int check_caps(char *err, size_t errn)
{
	if (!has_cap(CAP_SYS_ADMIN)) {
		snprintf(
		    err, errn,
		    "hoopd lacks CAP_SYS_ADMIN: it enters each agent's network namespace "
		    "(setns) to listen and to dial the database there, and the verifier refuses "
		    "hoop's programs to CAP_BPF alone. Grant CAP_BPF, CAP_NET_ADMIN, "
		    "CAP_SYS_ADMIN and CAP_SYS_PTRACE (docs/deploy.md)");
		return -EPERM;
	}
	if (!has_cap(CAP_SETUID) || !has_cap(CAP_SETGID) || !has_cap(CAP_SETPCAP)) {
		snprintf(err, errn,
			 "hoopd lacks CAP_%s: its sandboxed processes (the catalog loader, which "
			 "reads masking catalogs over libpq) start as root and give it up for "
			 "--user: setgroups/setresgid (CAP_SETGID), setresuid (CAP_SETUID) and "
			 "emptying their bounding set (CAP_SETPCAP). Grant them with the others "
			 "(docs/deploy.md)",
			 !has_cap(CAP_SETUID) ? "SETUID" : !has_cap(CAP_SETGID) ? "SETGID" : "SETPCAP");
		return -EPERM;
	}
	if (!has_cap(CAP_NET_ADMIN))
		log_warn("hoopd lacks CAP_NET_ADMIN: `hoopctl attach --reset-existing` cannot end "
			 "connections that predate an attach (SOCK_DESTROY)");
	if (!has_cap(CAP_SYS_PTRACE))
		log_warn("hoopd lacks CAP_SYS_PTRACE: agents running as another user get no "
			 "listener in their network namespace (their connects are refused) and no "
			 "executable in the audit trail (/proc/PID/ns/net and /proc/PID/exe)");
	return 0;
}

/* 1 present, 0 missing, -errno when the kernel could not be asked. */
static int probe_one(const struct probe_feature *f, const char *release)
{
	int r;

	switch (f->kind) {
	case PK_PROG:
		return libbpf_probe_bpf_prog_type(f->prog_type, NULL);
	case PK_MAP:
		return libbpf_probe_bpf_map_type((enum bpf_map_type)f->type, NULL);
	case PK_HELPER:
		return libbpf_probe_bpf_helper(f->prog_type, (enum bpf_func_id)f->type, NULL);
	case PK_ATTACH:
		r = load_sock_addr((enum bpf_attach_type)f->type);
		if (r == 0)
			return 1;
		if (r == -EINVAL)
			return 0; /* the kernel does not know this expected attach type */
		/* Refused for another reason: the kernel version is the best answer left. */
		return kernel_at_least(release, 5, 8);
	case PK_SOCKOPT:
		return probe_sockopt();
	}
	return -EINVAL;
}

/* Append "what (since Linux X)" to a "; "-separated list in buf. */
static void add_missing(char *buf, size_t n, const struct probe_feature *f)
{
	size_t l = strlen(buf);

	if (l >= n)
		return;
	snprintf(buf + l, n - l, "%s%s (Linux %s+)", l ? "; " : "", f->what, f->since);
}

int probe_kernel(char *err, size_t errn, int *accel_ok)
{
	const char *hide = getenv("HOOPD_PROBE_HIDE");
	char missing[1024] = "", accel_missing[1024] = "", hidden[512] = "";
	struct utsname u;
	int nmissing = 0, r;

	*accel_ok = 0;
	if (uname(&u))
		snprintf(u.release, sizeof(u.release), "unknown");

	if ((r = check_caps(err, errn)))
		return r;
	/* Without the privilege to load a cgroup program every probe below answers "missing"
	 * (libbpf cannot tell EPERM from an unknown type): say so instead. */
	r = load_sock_addr(BPF_CGROUP_INET4_CONNECT);
	if (r == -EPERM || r == -EACCES) {
		snprintf(
		    err, errn,
		    "cannot probe the kernel's BPF features: loading a test program: %s. hoopd "
		    "needs CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN (or root); see docs/deploy.md",
		    strerror(-r));
		return r;
	}
	if (r == -ENOSYS) {
		snprintf(
		    err, errn,
		    "kernel %s has no bpf() system call (CONFIG_BPF_SYSCALL); hoop needs Linux "
		    "%s or later with BPF",
		    u.release, PROBE_MIN_KERNEL);
		return r;
	}

	for (size_t i = 0; i < NFEATURES; i++) {
		const struct probe_feature *f = &features[i];

		if (hide && in_list(hide, f->key)) {
			size_t l = strlen(hidden);

			snprintf(hidden + l, sizeof(hidden) - l, "%s%s", l ? "," : "", f->key);
			r = 0;
		} else {
			r = probe_one(f, u.release);
		}
		if (r < 0) {
			snprintf(err, errn, "cannot probe the kernel for %s: %s", f->what,
				 strerror(-r));
			return r;
		}
		if (r > 0) {
			log_debug("kernel probe: %s: present", f->key);
			continue;
		}
		log_debug("kernel probe: %s: MISSING", f->key);
		if (f->accel) {
			add_missing(accel_missing, sizeof(accel_missing), f);
		} else {
			add_missing(missing, sizeof(missing), f);
			nmissing++;
		}
	}
	if (hidden[0])
		log_warn("kernel probe: HOOPD_PROBE_HIDE treats %s as missing (for tests)", hidden);
	if (nmissing) {
		snprintf(err, errn, "kernel %s lacks %s. hoop needs Linux %s or later", u.release,
			 missing, PROBE_MIN_KERNEL);
		return -EOPNOTSUPP;
	}
	*accel_ok = !accel_missing[0];
	if (accel_missing[0])
		snprintf(err, errn, "kernel %s lacks %s", u.release, accel_missing);
	log_info("kernel probe: %s has every BPF feature hoop needs (%zu probed); --accel sockmap "
		 "%s",
		 u.release, NFEATURES, *accel_ok ? "available" : "unavailable");
	return 0;
}
