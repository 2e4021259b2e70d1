/*
 * The BPF side's lifecycle: open the skeleton, reuse or create the pinned maps, load, write the
 * config and targets, attach to cgroups with pinned links, detach. Pins live under
 * <pin root>/maps and <pin root>/cgroups/<cgroup id>/<program>, so attachments outlive hoopd and
 * agents stay fail-closed while it restarts.
 *
 * Acceleration decides what is loaded: with --accel off (chosen, or forced by a kernel without
 * sk_msg or sockhash) neither the sk_msg program nor the sockops variant that feeds the sockhash
 * is loaded, and neither sockhash is created, so hoopd runs on kernels that have none of them.
 */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "hoop.skel.h"
#include "daemon.h"
#include "bpfctl.h"
#include "netns.h"
#include "policy.h"
#include "log.h"

static struct ring_buffer *g_rb;

/* Drop our reference to a pinned link: the pin keeps the attachment. libbpf's disconnect only
 * skips the detach, so the fd must be closed here or unpinning would not release the link. */
static void link_release(struct bpf_link *l)
{
	int fd = bpf_link__fd(l);

	bpf_link__disconnect(l);
	bpf_link__destroy(l);
	if (fd >= 0)
		close(fd);
}

static int libbpf_sink(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	enum hlog_level l = level == LIBBPF_WARN ? HLOG_WARN : HLOG_DEBUG;
	char msg[1024];
	size_t n;

	if (l < hlog_min())
		return 0;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n && msg[n - 1] == '\n')
		msg[--n] = '\0';
	hlog(l, "libbpf: %s", msg);
	return 0;
}

static int mkdir_p(const char *p)
{
	char b[PATH_MAX];

	snprintf(b, sizeof(b), "%s", p);
	for (char *s = b + 1; *s; s++) {
		if (*s == '/') {
			*s = '\0';
			if (mkdir(b, 0700) && errno != EEXIST)
				return -errno;
			*s = '/';
		}
	}
	if (mkdir(b, 0700) && errno != EEXIST)
		return -errno;
	return 0;
}

struct prog_ref {
	const char *name;
	struct bpf_program **prog;
};

static struct prog_ref cgroup_progs[5];

static void init_prog_refs(struct hoop_bpf *s)
{
	struct prog_ref refs[5] = {
		{"connect4", &s->progs.hoop_connect4},
		{"connect6", &s->progs.hoop_connect6},
		{"sockops", hoopd.o.accel == ACCEL_SOCKMAP ? &s->progs.hoop_sockops_accel
							 : &s->progs.hoop_sockops},
		{"getpeername4", &s->progs.hoop_getpeername4},
		{"getpeername6", &s->progs.hoop_getpeername6},
	};
	memcpy(cgroup_progs, refs, sizeof(refs));
}

static int on_ring_event(void *ctx, void *data, size_t len)
{
	const struct hoop_netns_event *ev = data;
	char err[256];

	if (len < sizeof(*ev))
		return 0;
	/* A targeted connect from a netns where hoopd has no listener yet: open one there. */
	if (netns_ensure_pid((int)ev->tgid, err, sizeof(err)))
		log_warn("connect from pid %u in an unserved netns (cookie %llu): %s", ev->tgid,
			 (unsigned long long)ev->netns_cookie, err);
	return 0;
}

/* Re-point links pinned by an earlier hoopd at this hoopd's programs. */
static void adopt_pinned_links(void)
{
	char dir[PATH_MAX], p[PATH_MAX + 300];
	struct dirent *de;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s/cgroups", hoopd.o.pin_root);
	d = opendir(dir);
	if (!d)
		return;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		for (int i = 0; i < 5; i++) {
			struct bpf_link *l;

			snprintf(p, sizeof(p), "%s/%s/%s", dir, de->d_name, cgroup_progs[i].name);
			l = bpf_link__open(p);
			if (!l) {
				log_warn("pinned link %s: %s", p, strerror(errno));
				continue;
			}
			if (bpf_link__update_program(l, *cgroup_progs[i].prog))
				log_warn("cannot move pinned link %s to the new program: %s", p,
					 strerror(errno));
			link_release(l);
		}
	}
	closedir(d);
}

/* Pins need a bpffs. Debian and most nodes mount one at /sys/fs/bpf; mount it if not. */
static int ensure_bpffs(void)
{
	struct statfs sf;

	if (strncmp(hoopd.o.pin_root, "/sys/fs/bpf/", 12))
		return 0; /* the operator chose another place: theirs to mount */
	if (statfs("/sys/fs/bpf", &sf) == 0 && sf.f_type == BPF_FS_MAGIC)
		return 0;
	if (mount("bpffs", "/sys/fs/bpf", "bpf", 0, "mode=0700")) {
		log_error("no bpffs at /sys/fs/bpf and cannot mount one: %s", strerror(errno));
		return -errno;
	}
	log_info("mounted bpffs at /sys/fs/bpf");
	return 0;
}

/* Load only what the acceleration mode uses (see the top of this file). */
static int select_accel_objects(struct hoop_bpf *s)
{
	int on = hoopd.o.accel == ACCEL_SOCKMAP, r;

	if ((r = bpf_program__set_autoload(s->progs.hoop_sk_msg, on)) ||
	    (r = bpf_program__set_autoload(s->progs.hoop_sockops_accel, on)) ||
	    (r = bpf_program__set_autoload(s->progs.hoop_sockops, !on)) ||
	    (r = bpf_map__set_autocreate(s->maps.hoop_agent_socks, on)) ||
	    (r = bpf_map__set_autocreate(s->maps.hoop_proxy_socks, on))) {
		log_error("cannot select the BPF objects for --accel %s: %s",
			  on ? "sockmap" : "off", strerror(-r));
		return r;
	}
	if (!on)
		log_debug("acceleration off: sk_msg program and sockhash maps not loaded");
	return 0;
}

int bpfctl_setup(void)
{
	char p[PATH_MAX];
	struct hoop_bpf *s;
	struct bpf_map *m;
	struct hoop_config cfg = {0};
	__u32 zero = 0;
	int r;

	libbpf_set_print(libbpf_sink);
	if ((r = ensure_bpffs()))
		return r;
	snprintf(p, sizeof(p), "%s/maps", hoopd.o.pin_root);
	if ((r = mkdir_p(p))) {
		log_error("cannot create pin directory %s: %s (is bpffs mounted at /sys/fs/bpf?)",
			  p, strerror(-r));
		return r;
	}
	snprintf(p, sizeof(p), "%s/cgroups", hoopd.o.pin_root);
	if ((r = mkdir_p(p)))
		return r;

	s = hoop_bpf__open();
	if (!s) {
		r = -errno;
		log_error("cannot open the BPF object: %s", strerror(errno));
		return r;
	}
	bpf_object__for_each_map(m, s->obj) {
		if (bpf_map__type(m) == BPF_MAP_TYPE_UNSPEC || !strncmp(bpf_map__name(m), ".", 1))
			continue;
		snprintf(p, sizeof(p), "%s/maps/%s", hoopd.o.pin_root, bpf_map__name(m));
		if ((r = bpf_map__set_pin_path(m, p))) {
			log_error("map %s: cannot set pin path: %s", bpf_map__name(m), strerror(-r));
			goto fail;
		}
	}
	if ((r = select_accel_objects(s)))
		goto fail;
	r = hoop_bpf__load(s);
	if (r) {
		log_error("cannot load the BPF programs: %s. If the pins under %s/maps come from "
			  "another hoop version, detach every cgroup and remove that directory",
			  strerror(-r), hoopd.o.pin_root);
		goto fail;
	}
	hoopd.skel = s;
	init_prog_refs(s);

	cfg.abi_version = HOOP_ABI_VERSION;
	cfg.listen_port = htons(hoopd.o.listen_port);
	cfg.flags = (hoopd.o.fail_open ? HOOP_CFG_FAIL_OPEN : 0) |
		    (hoopd.o.accel == ACCEL_SOCKMAP ? HOOP_CFG_ACCEL : 0);
	if (bpf_map_update_elem(bpf_map__fd(s->maps.hoop_config), &zero, &cfg, BPF_ANY)) {
		r = -errno;
		log_error("cannot write hoop_config: %s", strerror(errno));
		goto fail;
	}
	/* Legacy attach: libbpf 1.1 has no sockmap link. It lives as long as the pinned map. */
	if (hoopd.o.accel == ACCEL_SOCKMAP &&
	    bpf_prog_attach(bpf_program__fd(s->progs.hoop_sk_msg),
			    bpf_map__fd(s->maps.hoop_proxy_socks), BPF_SK_MSG_VERDICT, 0)) {
		r = -errno;
		log_error("cannot attach sk_msg to hoop_proxy_socks: %s", strerror(errno));
		goto fail;
	}
	g_rb = ring_buffer__new(bpf_map__fd(s->maps.hoop_events), on_ring_event, NULL, NULL);
	if (!g_rb) {
		r = -errno;
		log_error("cannot open the hoop_events ring buffer: %s", strerror(errno));
		goto fail;
	}
	bpfctl_heartbeat(1);
	adopt_pinned_links();
	return 0;
fail:
	hoop_bpf__destroy(s);
	hoopd.skel = NULL;
	return r;
}

int bpfctl_events_fd(void)
{
	return g_rb ? ring_buffer__epoll_fd(g_rb) : -1;
}

void bpfctl_events_poll(void)
{
	if (g_rb)
		ring_buffer__consume(g_rb);
}

/* The heartbeat the programs read (hoop_running): fail-open applies only while it is stale. */
void bpfctl_heartbeat(int alive)
{
	struct timespec ts;
	__u64 v = 0;
	__u32 zero = 0;

	static __u64 last;

	if (!hoopd.skel)
		return;
	if (alive && clock_gettime(CLOCK_MONOTONIC, &ts) == 0)
		v = (__u64)ts.tv_sec * 1000000000ULL + (__u64)ts.tv_nsec;
	if (alive && v - last < 500000000ULL)
		return; /* at most twice a second: the loop ticks after every batch */
	last = v;
	bpf_map_update_elem(bpf_map__fd(hoopd.skel->maps.hoop_alive), &zero, &v, BPF_ANY);
}

void bpfctl_close(void)
{
	bpfctl_heartbeat(0); /* stopping: --fail-open agents may go direct at once */
	ring_buffer__free(g_rb);
	g_rb = NULL;
	/* Links are pinned and disconnected: destroying the skeleton leaves attachments alone. */
	hoop_bpf__destroy(hoopd.skel);
	hoopd.skel = NULL;
}

static void fill_key(struct hoop_target_key *k, uint16_t port, const struct policy_cidr *c)
{
	memset(k, 0, sizeof(*k));
	k->prefixlen = 32 + c->len;
	k->port = htons(port);
	k->family = c->family;
	memcpy(k->addr, c->addr, 16);
}

int bpfctl_sync_targets(const struct policy *pol)
{
	int fd = bpf_map__fd(hoopd.skel->maps.hoop_targets);
	struct hoop_target_key k, next, *stale = NULL;
	size_t nstale = 0, cap = 0;
	void *prev = NULL;

	/* Add or update first, then remove what the new policy no longer names, so a reload
	 * never opens a window where a still-targeted port goes direct. */
	for (int i = 0; i < pol->ntargets; i++) {
		const struct policy_target *t = &pol->targets[i];
		struct hoop_target v = {.target_id = (uint32_t)i, .protocol = t->protocol};

		for (int pi = 0; pi < t->nports; pi++)
			for (int ci = 0; ci < t->ncidrs; ci++) {
				fill_key(&k, t->ports[pi], &t->cidrs[ci]);
				if (bpf_map_update_elem(fd, &k, &v, BPF_ANY)) {
					log_error("target %s: cannot update hoop_targets: %s",
						  t->name, strerror(errno));
					return -errno;
				}
			}
	}
	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		int keep = 0;

		for (int i = 0; i < pol->ntargets && !keep; i++) {
			const struct policy_target *t = &pol->targets[i];

			for (int pi = 0; pi < t->nports && !keep; pi++)
				for (int ci = 0; ci < t->ncidrs && !keep; ci++) {
					fill_key(&k, t->ports[pi], &t->cidrs[ci]);
					keep = !memcmp(&k, &next, sizeof(k));
				}
		}
		if (!keep) {
			if (nstale == cap) {
				void *n = realloc(stale, (cap = cap ? cap * 2 : 16) * sizeof(k));

				if (!n) {
					free(stale);
					return -ENOMEM;
				}
				stale = n;
			}
			stale[nstale++] = next;
		}
		k = next;
		prev = &k;
	}
	for (size_t i = 0; i < nstale; i++)
		bpf_map_delete_elem(fd, &stale[i]);
	free(stale);
	return 0;
}

static void link_dir(uint64_t cgid, char *out, size_t n)
{
	snprintf(out, n, "%s/cgroups/%llu", hoopd.o.pin_root, (unsigned long long)cgid);
}

int bpfctl_is_attached(uint64_t cgid)
{
	char d[PATH_MAX];
	struct stat st;

	link_dir(cgid, d, sizeof(d));
	return stat(d, &st) == 0;
}

int bpfctl_detach(uint64_t cgid, char *err, size_t errn)
{
	char d[PATH_MAX], p[PATH_MAX + 32];
	int r = 0;

	link_dir(cgid, d, sizeof(d));
	for (int i = 0; i < 5; i++) {
		snprintf(p, sizeof(p), "%s/%s", d, cgroup_progs[i].name);
		/* The link holds the attachment; with no pin and no fd left it is released. */
		if (unlink(p) && errno != ENOENT) {
			r = -errno;
			snprintf(err, errn, "cannot remove %s: %s", p, strerror(errno));
		}
	}
	if (rmdir(d) && errno != ENOENT && !r) {
		r = -errno;
		snprintf(err, errn, "cannot remove %s: %s", d, strerror(errno));
	}
	return r;
}

int bpfctl_attach(const char *cg_path, uint64_t cgid, char *err, size_t errn)
{
	char d[PATH_MAX], p[PATH_MAX + 32];
	int cgfd, r = 0;

	cgfd = open(cg_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cgfd < 0) {
		snprintf(err, errn, "cannot open cgroup %s: %s", cg_path, strerror(errno));
		return -errno;
	}
	link_dir(cgid, d, sizeof(d));
	if (mkdir(d, 0700) && errno != EEXIST) {
		r = -errno;
		snprintf(err, errn, "cannot create %s: %s", d, strerror(errno));
		goto out;
	}
	/* connect4/6 last... no: getpeername and sockops first, so that no redirected socket
	 * ever exists without the hooks that complete it. */
	for (int i = 4; i >= 0; i--) {
		struct bpf_link *l;

		snprintf(p, sizeof(p), "%s/%s", d, cgroup_progs[i].name);
		if (access(p, F_OK) == 0)
			continue; /* already attached (attach is idempotent) */
		l = bpf_program__attach_cgroup(*cgroup_progs[i].prog, cgfd);
		if (!l) {
			r = -errno;
			snprintf(err, errn, "cannot attach %s to %s: %s", cgroup_progs[i].name,
				 cg_path, strerror(errno));
			break;
		}
		if ((r = bpf_link__pin(l, p))) {
			snprintf(err, errn, "cannot pin %s: %s", p, strerror(-r));
			bpf_link__destroy(l);
			break;
		}
		link_release(l);
	}
	if (r) {
		char e2[256];

		bpfctl_detach(cgid, e2, sizeof(e2));
	}
out:
	close(cgfd);
	return r;
}

int bpfctl_take_origin(const struct hoop_sock_key *key, struct hoop_origin *out)
{
	int fd = bpf_map__fd(hoopd.skel->maps.hoop_accept_stash);

	if (bpf_map_lookup_and_delete_elem(fd, key, out) == 0)
		return 0;
	/* LRU hash maps gained lookup-and-delete late; fall back to two calls. */
	if (bpf_map_lookup_elem(fd, key, out))
		return -ENOENT;
	bpf_map_delete_elem(fd, key);
	return 0;
}

int bpfctl_accel_insert(int fd)
{
	__u64 cookie, v = (__u64)fd;
	socklen_t len = sizeof(cookie);

	if (getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &len))
		return -errno;
	if (bpf_map_update_elem(bpf_map__fd(hoopd.skel->maps.hoop_proxy_socks), &cookie, &v,
				BPF_NOEXIST))
		return -errno;
	return 0;
}

int bpfctl_counters(uint64_t out[HOOP_ERR_MAX])
{
	int fd = bpf_map__fd(hoopd.skel->maps.hoop_errors);

	for (__u32 i = 0; i < HOOP_ERR_MAX; i++) {
		__u64 v = 0;

		bpf_map_lookup_elem(fd, &i, &v);
		out[i] = v;
	}
	return 0;
}

void bpfctl_unpin_all_if_idle(void)
{
	char p[PATH_MAX];
	struct dirent *de;
	DIR *d;
	int busy = 0;

	snprintf(p, sizeof(p), "%s/cgroups", hoopd.o.pin_root);
	d = opendir(p);
	if (d) {
		while ((de = readdir(d)))
			busy |= de->d_name[0] != '.';
		closedir(d);
	}
	if (busy || hoopd.o.keep_pins)
		return;
	/* Nothing attached: nothing depends on the maps. Leave no pins behind, also those of maps
	 * this hoopd did not create (the sockhashes of an earlier hoopd with acceleration).
	 * bpf_object__unpin_maps() would stop at the first map that has no pin. */
	if (hoopd.skel) {
		struct bpf_map *m;

		bpf_object__for_each_map(m, hoopd.skel->obj) {
			const char *pin = bpf_map__pin_path(m);

			if (pin && unlink(pin) && errno != ENOENT)
				log_warn("cannot remove pin %s: %s", pin, strerror(errno));
		}
	}
	rmdir(p);
	snprintf(p, sizeof(p), "%s/maps", hoopd.o.pin_root);
	rmdir(p);
	rmdir(hoopd.o.pin_root);
}
