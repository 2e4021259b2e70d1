/* attach.c: the registry of attached cgroups, persisted in the state dir. */
#ifndef HOOPD_ATTACH_H
#define HOOPD_ATTACH_H

#include <stddef.h>
#include <stdint.h>

/* One attached cgroup; the list is hoopd's (daemon.h: attachments). */
struct attachment {
	char path[4096];
	uint64_t cgroup_id;
	char owner[256];
	char labels_json[2048]; /* {"k":"v",...} as given at attach */
	int64_t attached_at;
	struct attachment *next;
};

int attach_load(void);
int attach_add(const char *path, uint64_t cgid, const char *owner, const char *labels_json,
	       char *err, size_t errn);
int attach_remove(uint64_t cgid, char *err, size_t errn);
struct attachment *attach_find_for_pid(int pid, const char *proc_cgroup);
struct attachment *attach_find_id(uint64_t cgid);
int attach_open_listeners(const struct attachment *a, char *err, size_t errn);

#endif
