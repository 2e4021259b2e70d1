/* cgroup v2 helpers: find the v2 mount, resolve an operator's path inside it, ids and members. */
#ifndef HOOP_CGROUP_H
#define HOOP_CGROUP_H

#include <stddef.h>
#include <stdint.h>

/* The cgroup2 mount point from /proc/mounts, e.g. /sys/fs/cgroup or /sys/fs/cgroup/unified. */
int cg_v2_mount(char *out, size_t n);

/*
 * Resolve PATH to an absolute cgroup v2 directory. PATH may be absolute inside the v2 mount,
 * absolute in another hierarchy's spelling (/sys/fs/cgroup/agents on a hybrid host is tried as
 * <v2 mount>/agents), or relative to the v2 mount. On failure returns a negative errno and writes
 * a sentence for the operator into err.
 */
int cg_resolve(const char *path, char *out, size_t n, char *err, size_t errn);

/* The cgroup id BPF reports (bpf_get_current_cgroup_id) is the directory's inode number. */
int cg_id(const char *abs_path, uint64_t *id);

/* The v2 path (relative to the mount, like cg_of_pid) of the cgroup with this id, as it is now;
 * -ESTALE or -ENOENT when it is gone. Needs CAP_DAC_READ_SEARCH. */
int cg_path_of_id(uint64_t id, char *out, size_t n);

/* The absolute path of the cgroup with this id at or under abs_root (a walk: no capability
 * needed, unlike cg_path_of_id). 0, or -ENOENT. */
int cg_find_id_under(const char *abs_root, uint64_t id, char *out, size_t n);

/* The v2 path of a process relative to the mount ("/agents/x"), from /proc/PID/cgroup. */
int cg_of_pid(int pid, char *out, size_t n);

/* Call fn for every pid in the cgroup and its descendants. Stops early if fn returns non-zero. */
int cg_for_each_pid(const char *abs_path, int (*fn)(int pid, void *arg), void *arg);

/* Call fn for the id of the cgroup and each descendant. */
int cg_for_each_id(const char *abs_path, int (*fn)(uint64_t id, void *arg), void *arg);

#endif
