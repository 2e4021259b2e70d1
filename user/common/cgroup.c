/* cgroup v2 helpers. Never hard-codes the mount: hybrid hosts keep v2 at /sys/fs/cgroup/unified. */
#include "cgroup.h"

#include <dirent.h>
#include <fcntl.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

/*
 * The mount is looked up in /proc/mounts once and kept: hoopd asks for it on every accepted
 * connection. A statfs of the kept path (still cgroup2?) replaces the scan; if it fails, the
 * mounts are read again.
 */
int cg_v2_mount(char *out, size_t n)
{
	static char cached[PATH_MAX];
	struct statfs sf;
	FILE *f;
	char dev[256], dir[PATH_MAX], type[64];
	int found = 0;

	if (cached[0] && statfs(cached, &sf) == 0 && sf.f_type == CGROUP2_SUPER_MAGIC) {
		snprintf(out, n, "%s", cached);
		return 0;
	}
	cached[0] = '\0';
	f = fopen("/proc/mounts", "re");
	if (!f)
		return -errno;
	while (fscanf(f, "%255s %4095s %63s %*[^\n]\n", dev, dir, type) == 3) {
		if (!strcmp(type, "cgroup2")) {
			snprintf(out, n, "%s", dir);
			snprintf(cached, sizeof(cached), "%s", dir);
			found = 1;
			break;
		}
	}
	fclose(f);
	return found ? 0 : -ENOENT;
}

static int is_v2_dir(const char *p)
{
	struct statfs sf;
	struct stat st;

	if (stat(p, &st) || !S_ISDIR(st.st_mode))
		return -ENOENT;
	if (statfs(p, &sf))
		return -errno;
	return sf.f_type == CGROUP2_SUPER_MAGIC ? 0 : -EMEDIUMTYPE;
}

int cg_resolve(const char *path, char *out, size_t n, char *err, size_t errn)
{
	char mnt[PATH_MAX], cand[PATH_MAX], real[PATH_MAX];
	int r;

	if (cg_v2_mount(mnt, sizeof(mnt))) {
		snprintf(err, errn, "no cgroup v2 hierarchy is mounted (nothing of type cgroup2 in "
				    "/proc/mounts); hoop needs cgroup v2");
		return -ENOENT;
	}
	if (path[0] == '/') {
		r = is_v2_dir(path);
		if (r == 0)
			snprintf(cand, sizeof(cand), "%s", path);
		else {
			/* /sys/fs/cgroup/X on a hybrid host: try X under the v2 mount. */
			const char *rel = path;

			if (!strncmp(path, "/sys/fs/cgroup/", 15))
				rel = path + 14;
			snprintf(cand, sizeof(cand), "%s%s", mnt, rel);
			if (is_v2_dir(cand)) {
				if (r == -EMEDIUMTYPE)
					snprintf(err, errn,
						 "%s is not a cgroup v2 directory (it belongs to a v1 "
						 "hierarchy); the cgroup v2 mount on this host is %s",
						 path, mnt);
				else
					snprintf(err, errn,
						 "%s: no such cgroup (looked for it and for %s; the "
						 "cgroup v2 mount on this host is %s)",
						 path, cand, mnt);
				return r == -EMEDIUMTYPE ? -EMEDIUMTYPE : -ENOENT;
			}
		}
	} else {
		snprintf(cand, sizeof(cand), "%s/%s", mnt, path);
		if (is_v2_dir(cand)) {
			snprintf(err, errn, "%s: no such cgroup under the cgroup v2 mount %s", path,
				 mnt);
			return -ENOENT;
		}
	}
	if (!realpath(cand, real)) {
		snprintf(err, errn, "%s: %s", cand, strerror(errno));
		return -errno;
	}
	snprintf(out, n, "%s", real);
	return 0;
}

int cg_id(const char *abs_path, uint64_t *id)
{
	struct stat st;

	if (stat(abs_path, &st))
		return -errno;
	*id = st.st_ino;
	return 0;
}

/*
 * cgroupfs (kernfs) exports its directories by file handle: the handle of a cgroup is its 8-byte
 * id, of type FILEID_KERNFS. Opening that handle and reading the fd's link gives the cgroup's
 * path as it is now, whatever process has moved since.
 */
int cg_path_of_id(uint64_t id, char *out, size_t n)
{
	char mnt[PATH_MAX], link[64], p[PATH_MAX];
	struct {
		struct file_handle fh;
		uint64_t id;
	} h;
	int mfd, fd, r = 0;
	ssize_t l;
	size_t ml;

	if ((r = cg_v2_mount(mnt, sizeof(mnt))))
		return r;
	mfd = open(mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (mfd < 0)
		return -errno;
	h.fh.handle_bytes = sizeof(h.id);
	h.fh.handle_type = 0xfe; /* FILEID_KERNFS */
	h.id = id;
	fd = open_by_handle_at(mfd, &h.fh, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		close(mfd);
		return r;
	}
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	l = readlink(link, p, sizeof(p) - 1);
	if (l < 0)
		r = -errno;
	close(fd);
	close(mfd);
	if (r)
		return r;
	p[l] = '\0';
	/* The link is the path in this mount namespace; make it relative to the v2 mount, as
	 * /proc/PID/cgroup spells it. */
	ml = strlen(mnt);
	if (strncmp(p, mnt, ml) || (p[ml] != '/' && p[ml] != '\0'))
		return -ENOENT;
	snprintf(out, n, "%s", p[ml] ? p + ml : "/");
	return 0;
}

int cg_of_pid(int pid, char *out, size_t n)
{
	char p[64], line[PATH_MAX + 32];
	FILE *f;
	int r = -ENOENT;

	snprintf(p, sizeof(p), "/proc/%d/cgroup", pid);
	f = fopen(p, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "0::", 3)) {
			line[strcspn(line, "\n")] = '\0';
			snprintf(out, n, "%s", line + 3);
			r = 0;
			break;
		}
	}
	fclose(f);
	return r;
}

static int walk(const char *dir, int depth, int (*pidfn)(int, void *),
		int (*idfn)(uint64_t, void *), void *arg)
{
	char p[PATH_MAX];
	DIR *d;
	struct dirent *de;
	int r = 0;

	if (depth > 64)
		return 0;
	if (idfn) {
		uint64_t id = 0;

		if (cg_id(dir, &id) == 0 && (r = idfn(id, arg)))
			return r;
	}
	if (pidfn) {
		FILE *f;
		int pid;

		snprintf(p, sizeof(p), "%s/cgroup.procs", dir);
		f = fopen(p, "re");
		if (f) {
			while (fscanf(f, "%d", &pid) == 1) {
				if ((r = pidfn(pid, arg)))
					break;
			}
			fclose(f);
			if (r)
				return r;
		}
	}
	d = opendir(dir);
	if (!d)
		return 0;
	while ((de = readdir(d))) {
		if (de->d_type != DT_DIR || de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		if ((r = walk(p, depth + 1, pidfn, idfn, arg)))
			break;
	}
	closedir(d);
	return r;
}

/* depth-first search for the directory whose inode is id; its absolute path into out */
static int find_id(const char *dir, int depth, uint64_t id, char *out, size_t n)
{
	char p[PATH_MAX];
	struct stat st;
	struct dirent *de;
	DIR *d;
	int r = -ENOENT;

	if (depth > 64 || stat(dir, &st))
		return -ENOENT;
	if ((uint64_t)st.st_ino == id) {
		snprintf(out, n, "%s", dir);
		return 0;
	}
	d = opendir(dir);
	if (!d)
		return -ENOENT;
	while (r && (de = readdir(d))) {
		if (de->d_type != DT_DIR || de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		r = find_id(p, depth + 1, id, out, n);
	}
	closedir(d);
	return r;
}

int cg_find_id_under(const char *abs_root, uint64_t id, char *out, size_t n)
{
	return find_id(abs_root, 0, id, out, n);
}

int cg_for_each_pid(const char *abs_path, int (*fn)(int pid, void *arg), void *arg)
{
	return walk(abs_path, 0, fn, NULL, arg);
}

int cg_for_each_id(const char *abs_path, int (*fn)(uint64_t id, void *arg), void *arg)
{
	return walk(abs_path, 0, NULL, fn, arg);
}
