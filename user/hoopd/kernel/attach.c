/*
 * The registry of attached cgroups: path, id, owner and labels, one JSON file per cgroup in
 * <state dir>/attachments, so a restarted hoopd knows who stands behind every connection.
 * The kernel side of an attachment (pinned links) lives in bpfctl.c.
 */
#include <dirent.h>
#include <inttypes.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"
#include "daemon.h"
#include "attach.h"
#include "bpfctl.h"
#include "netns.h"
#include "log.h"

static void rec_name(uint64_t cgid, char *out, size_t n)
{
	snprintf(out, n, "%llu.json", (unsigned long long)cgid);
}

/*
 * The attachments directory, opened without following a symbolic link: every record is read,
 * written and removed through it, by name, never through a link someone planted (the state
 * directory may be writable by whoever escaped into it; a link at a .tmp name would make root
 * write wherever it points).
 */
static int rec_dir(void)
{
	char dir[PATH_MAX];
	int fd;

	snprintf(dir, sizeof(dir), "%s/attachments", hoopd.o.state_dir);
	if (mkdir(dir, 0700) && errno != EEXIST)
		return -errno;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

static int write_record(const struct attachment *a)
{
	char name[64], tmp[80];
	struct jbuf j;
	int r = 0, dfd, fd;

	rec_name(a->cgroup_id, name, sizeof(name));
	snprintf(tmp, sizeof(tmp), "%s.tmp", name);
	jb_init(&j);
	jb_obj_open(&j);
	jb_kv_str(&j, "cgroup", a->path);
	jb_kv_uint(&j, "cgroup_id", a->cgroup_id);
	jb_kv_str(&j, "owner", a->owner);
	jb_key(&j, "labels");
	jb_raw(&j, a->labels_json[0] ? a->labels_json : "{}");
	jb_kv_int(&j, "attached_at", a->attached_at);
	jb_obj_close(&j);
	if ((dfd = rec_dir()) < 0) {
		jb_free(&j);
		return dfd;
	}
	fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 && errno == EEXIST) {
		/* left by a crash, or planted: the name goes, never what it points to */
		log_warn("attachments/%s exists; removing it (not following it)", tmp);
		if (!unlinkat(dfd, tmp, 0))
			fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
				    0600);
	}
	if (fd < 0) {
		r = -errno;
	} else {
		size_t len = j.len;
		ssize_t w;

		jb_raw(&j, "\n");
		w = j.oom ? -1 : write(fd, jb_str(&j), len + 1);
		if (w != (ssize_t)(len + 1))
			r = w < 0 ? -errno : -EIO;
		if (!r && fsync(fd))
			r = -errno;
		if (close(fd) && !r)
			r = -errno;
		if (!r && renameat(dfd, tmp, dfd, name))
			r = -errno;
		if (r)
			unlinkat(dfd, tmp, 0);
		else
			fsync(dfd);
	}
	close(dfd);
	jb_free(&j);
	return r;
}

static struct attachment *load_record(int dfd, const char *name)
{
	int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	struct json_object *root = fd >= 0 ? json_object_from_fd(fd) : NULL, *v;
	struct attachment *a;

	if (fd >= 0)
		close(fd);
	if (!root)
		return NULL;
	a = calloc(1, sizeof(*a));
	if (!a) {
		json_object_put(root);
		return NULL;
	}
	if (json_object_object_get_ex(root, "cgroup", &v))
		snprintf(a->path, sizeof(a->path), "%s", json_object_get_string(v));
	if (json_object_object_get_ex(root, "cgroup_id", &v))
		a->cgroup_id = (uint64_t)json_object_get_int64(v);
	if (json_object_object_get_ex(root, "owner", &v))
		snprintf(a->owner, sizeof(a->owner), "%s", json_object_get_string(v));
	if (json_object_object_get_ex(root, "labels", &v))
		snprintf(a->labels_json, sizeof(a->labels_json), "%s",
			 json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
	if (json_object_object_get_ex(root, "attached_at", &v))
		a->attached_at = json_object_get_int64(v);
	json_object_put(root);
	return a;
}

static int open_one(int pid, void *arg)
{
	char err[256];

	if (netns_ensure_pid(pid, err, sizeof(err)))
		log_warn("pid %d: %s", pid, err);
	return 0;
}

int attach_open_listeners(const struct attachment *a, char *err, size_t errn)
{
	/* hoopd's own namespace (agents on a plain host), then the namespace of every process
	 * already in the cgroup. A process that enters another namespace later announces it
	 * through the hoop_events ring buffer on its first targeted connect, which is refused
	 * (fail closed) while the listener opens; its next connect goes through. */
	open_one(getpid(), NULL);
	return cg_for_each_pid(a->path, open_one, NULL);
}

/*
 * Does a cgroup with this id exist? By its kernfs file handle (the id is the handle), so that
 * no path is trusted: 1 yes (its path, relative to the cgroup2 mount, in path), 0 no (gone),
 * or a negative errno when it cannot be told.
 */
static int cg_id_alive(uint64_t id, char *path, size_t n)
{
	struct {
		struct file_handle fh;
		uint64_t id;
	} h;
	char mnt[PATH_MAX], link[64];
	int mfd, fd;
	ssize_t l;

	if (cg_v2_mount(mnt, sizeof(mnt)))
		return -ENOENT;
	mfd = open(mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (mfd < 0)
		return -errno;
	h.fh.handle_bytes = sizeof(uint64_t);
	h.fh.handle_type = 0xfe; /* FILEID_KERNFS */
	memcpy(h.fh.f_handle, &id, sizeof(id));
	fd = open_by_handle_at(mfd, &h.fh, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	close(mfd);
	if (fd < 0 && errno == EPERM) {
		/* Without CAP_DAC_READ_SEARCH (the DaemonSet does not grant it) the kernel will
		 * not open by id: look for the id in the whole cgroup tree instead. */
		int r = cg_find_id_under(mnt, id, path, n);

		return r == 0 ? 1 : r == -ENOENT ? 0 : r;
	}
	if (fd < 0)
		return errno == ESTALE || errno == ENOENT ? 0 : -errno;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	l = readlink(link, path, n - 1);
	path[l > 0 ? l : 0] = '\0';
	close(fd);
	return 1;
}

/*
 * Carry the attachments over from the records. A record is trusted only as far as the kernel
 * agrees with it: its cgroup id names a cgroup at its path. A cgroup that is gone had its
 * programs go with it, and its record goes too. A record that disagrees with a cgroup that
 * still exists (an edited record: another path, another id) is refused, and hoopd with it:
 * detaching on its word would end interception of a live cgroup.
 */
int attach_load(void)
{
	char dir[PATH_MAX];
	struct dirent *de;
	DIR *d;
	int dfd, r = 0;

	snprintf(dir, sizeof(dir), "%s/attachments", hoopd.o.state_dir);
	if ((dfd = rec_dir()) < 0) {
		log_error("cannot open %s: %s%s", dir, strerror(-dfd),
			  dfd == -ELOOP || dfd == -ENOTDIR ? " (it must be a directory, not a "
							     "symbolic link)" : "");
		return dfd;
	}
	d = fdopendir(dup(dfd));
	if (!d) {
		r = -errno;
		close(dfd);
		return r;
	}
	while ((de = readdir(d))) {
		struct attachment *a;
		uint64_t id = 0, fid;
		char err[256], live[PATH_MAX] = "", tail[16] = "";
		int alive, path_ok, attached;

		if (de->d_name[0] == '.')
			continue;
		if (sscanf(de->d_name, "%" SCNu64 "%15s", &fid, tail) != 2 ||
		    strcmp(tail, ".json")) {
			if (strstr(de->d_name, ".json.tmp") && !unlinkat(dfd, de->d_name, 0))
				log_info("%s/%s: left by an interrupted write; removed", dir,
					 de->d_name);
			continue;
		}
		a = load_record(dfd, de->d_name);
		if (!a) {
			log_error("%s/%s: unreadable attachment record (not JSON, or a "
				  "symbolic link); refusing to start: fix or remove it (hoopd does "
				  "not guess which cgroup it meant, nor detach any)",
				  dir, de->d_name);
			r = -EINVAL;
			break;
		}
		attached = bpfctl_is_attached(a->cgroup_id);
		path_ok = !cg_id(a->path, &id) && id == a->cgroup_id;
		/* The record's path is that very cgroup: it is alive where the record says. */
		alive = path_ok ? 1 : cg_id_alive(a->cgroup_id, live, sizeof(live));
		if (fid == a->cgroup_id && alive == 0 && !path_ok) {
			/* The cgroup is gone (or was re-created): its links went with it. */
			log_info("cgroup %s (id %llu) is gone; forgetting its attachment", a->path,
				 (unsigned long long)a->cgroup_id);
			bpfctl_detach(a->cgroup_id, err, sizeof(err));
			unlinkat(dfd, de->d_name, 0);
			free(a);
			continue;
		}
		if (fid != a->cgroup_id || alive < 0 || !path_ok) {
			log_error("%s/%s does not match its cgroup: the record says cgroup %s with "
				  "id %llu, but %s; refusing to start (nothing was detached: the "
				  "programs on cgroup id %llu stay attached). Fix the record, or "
				  "remove it and detach with hoopctl once hoopd runs",
				  dir, de->d_name, a->path, (unsigned long long)a->cgroup_id,
				  fid != a->cgroup_id ? "the file is named for another id"
				  : alive < 0 ? "the kernel cannot say whether that id exists"
				  : id	      ? "that path is another cgroup"
					      : "that path does not exist",
				  (unsigned long long)(fid != a->cgroup_id ? fid : a->cgroup_id));
			if (live[0])
				log_error("  cgroup id %llu is %s",
					  (unsigned long long)a->cgroup_id, live);
			free(a);
			r = -EINVAL;
			break;
		}
		if (!attached) {
			log_warn("cgroup %s has a record but no programs attached (removed by "
				 "hand?); forgetting the record: attach it again",
				 a->path);
			unlinkat(dfd, de->d_name, 0);
			free(a);
			continue;
		}
		a->next = hoopd.attachments;
		hoopd.attachments = a;
		attach_open_listeners(a, err, sizeof(err));
		log_info("attached cgroup %s (owner %s) carried over", a->path,
			 a->owner[0] ? a->owner : "-");
	}
	closedir(d);
	close(dfd);
	return r;
}

struct attachment *attach_find_id(uint64_t cgid)
{
	for (struct attachment *a = hoopd.attachments; a; a = a->next)
		if (a->cgroup_id == cgid)
			return a;
	return NULL;
}

struct attachment *attach_find_for_pid(int pid, const char *proc_cgroup)
{
	char mnt[PATH_MAX], full[PATH_MAX * 2];
	struct attachment *best = NULL;
	size_t bestlen = 0;

	if (!proc_cgroup || !proc_cgroup[0] || cg_v2_mount(mnt, sizeof(mnt)))
		return NULL;
	snprintf(full, sizeof(full), "%s%s", mnt, proc_cgroup);
	for (struct attachment *a = hoopd.attachments; a; a = a->next) {
		size_t l = strlen(a->path);

		if (!strncmp(full, a->path, l) && (full[l] == '\0' || full[l] == '/') &&
		    l > bestlen) {
			best = a;
			bestlen = l;
		}
	}
	return best;
}

int attach_add(const char *path, uint64_t cgid, const char *owner, const char *labels_json,
	       char *err, size_t errn)
{
	struct attachment *a = attach_find_id(cgid);
	int r, fresh = !a;

	if (fresh) {
		a = calloc(1, sizeof(*a));
		if (!a)
			return -ENOMEM;
		a->attached_at = (int64_t)time(NULL);
	}
	snprintf(a->path, sizeof(a->path), "%s", path);
	a->cgroup_id = cgid;
	snprintf(a->owner, sizeof(a->owner), "%s", owner ? owner : "");
	snprintf(a->labels_json, sizeof(a->labels_json), "%s", labels_json ? labels_json : "{}");
	/* Listeners before programs: a redirected connect must find someone listening. */
	attach_open_listeners(a, err, errn);
	r = bpfctl_attach(path, cgid, err, errn);
	if (r) {
		if (fresh)
			free(a);
		return r;
	}
	if ((r = write_record(a)))
		log_warn("cannot record attachment of %s in %s: %s (it works now but a restarted "
			 "hoopd will not know its owner)",
			 path, hoopd.o.state_dir, strerror(-r));
	if (fresh) {
		a->next = hoopd.attachments;
		hoopd.attachments = a;
	}
	return 0;
}

int attach_remove(uint64_t cgid, char *err, size_t errn)
{
	char name[64];
	int r, dfd;

	r = bpfctl_detach(cgid, err, errn);
	rec_name(cgid, name, sizeof(name));
	if ((dfd = rec_dir()) >= 0) {
		unlinkat(dfd, name, 0);
		close(dfd);
	}
	for (struct attachment **pp = &hoopd.attachments; *pp; pp = &(*pp)->next) {
		if ((*pp)->cgroup_id == cgid) {
			struct attachment *a = *pp;

			*pp = a->next;
			free(a);
			break;
		}
	}
	return r;
}
