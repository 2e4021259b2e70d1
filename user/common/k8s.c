/*
 * Kubernetes pods and containers to cgroup v2 directories. The kubelet names them after the pod
 * UID and the runtime's container id, in one of two layouts (its systemd or cgroupfs driver),
 * under a root that depends on its --cgroup-root. Nothing here is hard-coded beyond the naming
 * rules: the kubepods directory and the QoS class level are searched for.
 */
#include "k8s.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cgroup.h"

#define K8S_ROOT_DEPTH 3 /* kubelet.slice/kubelet-kubepods.slice is two levels down */
#define K8S_MAX_ROOTS  4
#define K8S_MIN_PREFIX 8
#define K8S_MAX_SHOWN  4

/* Matches of one search. Exact matches push out prefix matches. */
struct k8s_matches {
	int n;
	int exact;
	char path[K8S_MAX_SHOWN][PATH_MAX];
};

struct k8s_roots {
	int n;
	char path[K8S_MAX_ROOTS][PATH_MAX];
};

static int ends_with(const char *s, const char *suffix)
{
	size_t l = strlen(s), sl = strlen(suffix);

	return l >= sl && !strcmp(s + l - sl, suffix);
}

static int all_of(const char *s, const char *set)
{
	return *s && strspn(s, set) == strlen(s);
}

int k8s_pod_of_name(const char *name, char *uid, size_t n)
{
	char b[NAME_MAX + 1];
	const char *u;

	snprintf(b, sizeof(b), "%s", name);
	if (ends_with(b, ".slice")) {
		/* systemd: kubepods[-<qos>]-pod<uid with _>.slice */
		char *p;

		b[strlen(b) - 6] = '\0';
		p = strstr(b, "-pod");
		if (!p)
			return -1;
		while (strstr(p + 1, "-pod"))
			p = strstr(p + 1, "-pod");
		u = p + 4;
	} else if (!strncmp(b, "pod", 3)) {
		u = b + 3; /* cgroupfs: pod<uid> */
	} else {
		return -1;
	}
	if (strlen(u) < 8 || strlen(u) >= n || !all_of(u, "0123456789abcdef-_"))
		return -1;
	for (size_t i = 0; u[i]; i++)
		uid[i] = u[i] == '_' ? '-' : u[i];
	uid[strlen(u)] = '\0';
	return 0;
}

int k8s_container_of_name(const char *name, char *id, size_t n)
{
	static const char *const prefixes[] = {"cri-containerd-", "crio-", "docker-"};
	char b[NAME_MAX + 1];
	const char *c = b;

	snprintf(b, sizeof(b), "%s", name);
	if (ends_with(b, ".scope"))
		b[strlen(b) - 6] = '\0';
	if (!strncmp(b, "crio-conmon-", 12))
		return -1; /* CRI-O's monitor process, not the container */
	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
		if (!strncmp(b, prefixes[i], strlen(prefixes[i]))) {
			c = b + strlen(prefixes[i]);
			break;
		}
	if (strlen(c) < 8 || strlen(c) >= n || !all_of(c, "0123456789abcdef"))
		return -1;
	snprintf(id, n, "%s", c);
	return 0;
}

static void add_match(struct k8s_matches *m, const char *have, const char *want, const char *path)
{
	size_t wl = strlen(want);
	int exact = !strcmp(have, want);

	if (!exact && (wl < K8S_MIN_PREFIX || strncmp(have, want, wl)))
		return;
	if (exact && !m->exact) {
		m->n = 0; /* an exact match outranks every prefix match */
		m->exact = 1;
	} else if (!exact && m->exact) {
		return;
	}
	if (m->n < K8S_MAX_SHOWN)
		snprintf(m->path[m->n], PATH_MAX, "%s", path);
	m->n++;
}

static int is_kubepods_name(const char *name)
{
	return !strcmp(name, "kubepods") || !strcmp(name, "kubepods.slice") ||
	       ends_with(name, "-kubepods.slice");
}

/* Call fn for each subdirectory of dir. */
static void each_subdir(const char *dir, void (*fn)(const char *path, const char *name, void *arg),
			void *arg)
{
	char p[PATH_MAX];
	struct dirent *de;
	DIR *d = opendir(dir);

	if (!d)
		return;
	while ((de = readdir(d))) {
		if (de->d_type != DT_DIR || de->d_name[0] == '.')
			continue;
		if ((size_t)snprintf(p, sizeof(p), "%s/%s", dir, de->d_name) >= sizeof(p))
			continue;
		fn(p, de->d_name, arg);
	}
	closedir(d);
}

static void find_roots(const char *dir, int depth, struct k8s_roots *r);

struct roots_walk {
	struct k8s_roots *r;
	int depth;
};

static void roots_visit(const char *path, const char *name, void *arg)
{
	struct roots_walk *w = arg;

	if (is_kubepods_name(name)) {
		if (w->r->n < K8S_MAX_ROOTS)
			snprintf(w->r->path[w->r->n++], PATH_MAX, "%s", path);
		return; /* kubepods-<qos>.slice lives inside: not another root */
	}
	find_roots(path, w->depth + 1, w->r);
}

static void find_roots(const char *dir, int depth, struct k8s_roots *r)
{
	struct roots_walk w = {r, depth};

	if (depth >= K8S_ROOT_DEPTH)
		return;
	each_subdir(dir, roots_visit, &w);
}

/* A pod search: every pod directory under one kubepods root, at the top or one level down. */
struct pod_walk {
	const char *want_pod; /* NULL: every pod */
	const char *want_ctr; /* NULL: the pod itself */
	struct k8s_matches *m;
	int pods_seen;
	int top; /* visiting the kubepods root's children (QoS classes or Guaranteed pods) */
};

static void ctr_visit(const char *path, const char *name, void *arg)
{
	struct pod_walk *w = arg;
	char id[NAME_MAX + 1];

	if (k8s_container_of_name(name, id, sizeof(id)) == 0)
		add_match(w->m, id, w->want_ctr, path);
}

static void pod_visit(const char *path, const char *name, void *arg)
{
	struct pod_walk *w = arg;
	char uid[NAME_MAX + 1];

	if (k8s_pod_of_name(name, uid, sizeof(uid))) {
		if (w->top) {
			/* A QoS class directory (burstable, besteffort, or any other): its pods. */
			w->top = 0;
			each_subdir(path, pod_visit, w);
			w->top = 1;
		}
		return;
	}
	w->pods_seen++;
	if (w->want_ctr) {
		each_subdir(path, ctr_visit, w); /* a container in any pod */
		return;
	}
	add_match(w->m, uid, w->want_pod, path);
}

/* Lower-case s into out, keeping only the id after a runtime's "scheme://". */
static int normalize(const char *s, char *out, size_t n, int pod)
{
	const char *p = strstr(s, "://");
	size_t i;

	if (p && !pod)
		s = p + 3;
	for (i = 0; s[i] && i + 1 < n; i++) {
		char c = (char)tolower((unsigned char)s[i]);

		out[i] = pod && c == '_' ? '-' : c;
	}
	out[i] = '\0';
	if (s[i])
		return -1;
	return all_of(out, pod ? "0123456789abcdef-" : "0123456789abcdef") ? 0 : -1;
}

static void list_paths(char *buf, size_t n, const struct k8s_roots *r)
{
	buf[0] = '\0';
	for (int i = 0; i < r->n; i++) {
		size_t l = strlen(buf);

		snprintf(buf + l, n - l, "%s%s", i ? ", " : "", r->path[i]);
	}
}

static int report_ambiguous(const struct k8s_matches *m, const char *what, const char *id,
			    char *err, size_t errn)
{
	size_t l;

	snprintf(err, errn, "%s %s is ambiguous: %d cgroups match (", what, id, m->n);
	for (int i = 0; i < m->n && i < K8S_MAX_SHOWN; i++) {
		l = strlen(err);
		snprintf(err + l, errn - l, "%s%s", i ? ", " : "", m->path[i]);
	}
	l = strlen(err);
	snprintf(err + l, errn - l, "%s); %s", m->n > K8S_MAX_SHOWN ? ", ..." : "",
		 m->exact ? "give the one you mean with --cgroup"
			  : "give more of the id, or all of it");
	return -ENOTUNIQ;
}

int k8s_resolve(const char *pod_uid, const char *container_id, char *out, size_t n, char *err,
		size_t errn)
{
	char root[PATH_MAX], pod[128], ctr[128], where[K8S_MAX_ROOTS * PATH_MAX];
	const char *env = getenv(K8S_ROOT_ENV);
	struct k8s_matches pm = {0}, cm = {0};
	struct k8s_roots roots = {0};
	struct pod_walk w = {0};
	int r;

	if (pod_uid && normalize(pod_uid, pod, sizeof(pod), 1)) {
		snprintf(err, errn,
			 "'%s' is not a pod UID (hex digits and dashes, as in kubectl get "
			 "pod NAME -o jsonpath='{.metadata.uid}')",
			 pod_uid);
		return -EINVAL;
	}
	if (container_id && normalize(container_id, ctr, sizeof(ctr), 0)) {
		snprintf(err, errn,
			 "'%s' is not a container id (hex digits, optionally after the "
			 "runtime's prefix as in containerd://ID)",
			 container_id);
		return -EINVAL;
	}
	if (!pod_uid && !container_id) {
		snprintf(err, errn, "give a pod UID, a container id, or both");
		return -EINVAL;
	}
	if (env && *env) {
		if ((r = cg_resolve(env, root, sizeof(root), err, errn))) {
			size_t l = strlen(err);

			snprintf(err + l, errn - l, " (from %s)", K8S_ROOT_ENV);
			return r;
		}
	} else if (cg_v2_mount(root, sizeof(root))) {
		snprintf(err, errn,
			 "no cgroup v2 hierarchy is mounted (nothing of type cgroup2 in "
			 "/proc/mounts); hoop needs cgroup v2");
		return -ENOENT;
	}
	if (is_kubepods_name(strrchr(root, '/') ? strrchr(root, '/') + 1 : root)) {
		roots.n = 1;
		snprintf(roots.path[0], PATH_MAX, "%s", root);
	} else {
		find_roots(root, 0, &roots);
	}
	if (!roots.n) {
		snprintf(err, errn,
			 "no kubelet cgroups under %s: looked for kubepods.slice, kubepods "
			 "and *-kubepods.slice up to %d levels down (is this a Kubernetes "
			 "node? %s sets where to look)",
			 root, K8S_ROOT_DEPTH, K8S_ROOT_ENV);
		return -ENOENT;
	}
	list_paths(where, sizeof(where), &roots);

	w.want_pod = pod_uid ? pod : NULL;
	w.want_ctr = NULL;
	w.m = &pm;
	if (pod_uid) {
		for (int i = 0; i < roots.n; i++) {
			w.top = 1;
			each_subdir(roots.path[i], pod_visit, &w);
		}
		if (pm.n == 0) {
			snprintf(err, errn,
				 "pod %s: no cgroup for it under %s (looked for "
				 "kubepods*-pod<uid>.slice and pod<uid> directly there and "
				 "one QoS class down; %d pods on this node). Is the pod "
				 "running on this node?",
				 pod_uid, where, w.pods_seen);
			return -ENOENT;
		}
		if (pm.n > 1)
			return report_ambiguous(&pm, "pod", pod_uid, err, errn);
		if (!container_id) {
			snprintf(out, n, "%s", pm.path[0]);
			return 0;
		}
		/* The container inside that pod. */
		w.want_ctr = ctr;
		w.m = &cm;
		each_subdir(pm.path[0], ctr_visit, &w);
		if (cm.n == 0) {
			snprintf(err, errn,
				 "container %s: not in pod %s (%s; looked for "
				 "cri-containerd-<id>.scope, crio-<id>.scope, "
				 "docker-<id>.scope and <id>)",
				 container_id, pod_uid, pm.path[0]);
			return -ENOENT;
		}
	} else {
		w.want_ctr = ctr;
		w.m = &cm;
		for (int i = 0; i < roots.n; i++) {
			w.top = 1;
			each_subdir(roots.path[i], pod_visit, &w);
		}
		if (cm.n == 0) {
			snprintf(err, errn,
				 "container %s: not found in the %d pods under %s (looked "
				 "for cri-containerd-<id>.scope, crio-<id>.scope, "
				 "docker-<id>.scope and <id> in each pod's cgroup). Is it "
				 "running on this node?",
				 container_id, w.pods_seen, where);
			return -ENOENT;
		}
	}
	if (cm.n > 1)
		return report_ambiguous(&cm, "container", container_id, err, errn);
	snprintf(out, n, "%s", cm.path[0]);
	return 0;
}
