/*
 * The registry of attached cgroups: path, id, owner and labels, one JSON file per cgroup in
 * <state dir>/attachments, so a restarted hoopd knows who stands behind every connection.
 * The kernel side of an attachment (pinned links) lives in bpfctl.c.
 */
#include <dirent.h>
#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"
#include "hoopd.h"
#include "log.h"

static void rec_path(uint64_t cgid, char *out, size_t n)
{
	snprintf(out, n, "%s/attachments/%llu.json", G.o.state_dir, (unsigned long long)cgid);
}

static int write_record(const struct attachment *a)
{
	char p[PATH_MAX], tmp[PATH_MAX + 8];
	struct jbuf j;
	FILE *f;
	int r = 0;

	rec_path(a->cgroup_id, p, sizeof(p));
	snprintf(tmp, sizeof(tmp), "%s.tmp", p);
	jb_init(&j);
	jb_obj_open(&j);
	jb_kv_str(&j, "cgroup", a->path);
	jb_kv_uint(&j, "cgroup_id", a->cgroup_id);
	jb_kv_str(&j, "owner", a->owner);
	jb_key(&j, "labels");
	jb_raw(&j, a->labels_json[0] ? a->labels_json : "{}");
	jb_kv_int(&j, "attached_at", a->attached_at);
	jb_obj_close(&j);
	f = fopen(tmp, "we");
	if (!f)
		r = -errno;
	else {
		fprintf(f, "%s\n", jb_str(&j));
		if (fflush(f) || fsync(fileno(f)))
			r = -errno;
		if (fclose(f) && !r)
			r = -errno;
		if (!r && rename(tmp, p))
			r = -errno;
	}
	jb_free(&j);
	return r;
}

static struct attachment *load_record(const char *file)
{
	struct json_object *root = json_object_from_file(file), *v;
	struct attachment *a;

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

int attach_load(void)
{
	char dir[PATH_MAX], p[PATH_MAX + 300];
	struct dirent *de;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s/attachments", G.o.state_dir);
	if (mkdir(dir, 0700) && errno != EEXIST) {
		log_error("cannot create %s: %s", dir, strerror(errno));
		return -errno;
	}
	d = opendir(dir);
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		struct attachment *a;
		uint64_t id;
		char err[256];

		if (!strstr(de->d_name, ".json") || strstr(de->d_name, ".tmp"))
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		a = load_record(p);
		if (!a) {
			log_warn("%s: unreadable attachment record, ignored", p);
			continue;
		}
		if (cg_id(a->path, &id) || id != a->cgroup_id || !bpfctl_is_attached(id)) {
			/* The cgroup is gone (or was re-created): its links went with it. */
			log_info("cgroup %s is gone; forgetting its attachment", a->path);
			bpfctl_detach(a->cgroup_id, err, sizeof(err));
			unlink(p);
			free(a);
			continue;
		}
		a->next = G.attachments;
		G.attachments = a;
		attach_open_listeners(a, err, sizeof(err));
		log_info("attached cgroup %s (owner %s) carried over", a->path,
			 a->owner[0] ? a->owner : "-");
	}
	closedir(d);
	return 0;
}

struct attachment *attach_find_id(uint64_t cgid)
{
	for (struct attachment *a = G.attachments; a; a = a->next)
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
	for (struct attachment *a = G.attachments; a; a = a->next) {
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
			 path, G.o.state_dir, strerror(-r));
	if (fresh) {
		a->next = G.attachments;
		G.attachments = a;
	}
	return 0;
}

int attach_remove(uint64_t cgid, char *err, size_t errn)
{
	char p[PATH_MAX];
	int r;

	r = bpfctl_detach(cgid, err, errn);
	rec_path(cgid, p, sizeof(p));
	unlink(p);
	for (struct attachment **pp = &G.attachments; *pp; pp = &(*pp)->next) {
		if ((*pp)->cgroup_id == cgid) {
			struct attachment *a = *pp;

			*pp = a->next;
			free(a);
			break;
		}
	}
	return r;
}
