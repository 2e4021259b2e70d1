/* bpfctl.c: load, pin, attach and detach the BPF side (the skeleton of bpf/hoop.bpf.c). */
#ifndef HOOPD_BPFCTL_H
#define HOOPD_BPFCTL_H

#include <stdint.h>

#include "hoop_bpf.h"

struct policy;

int bpfctl_setup(void);
void bpfctl_close(void);
void bpfctl_heartbeat(int alive);
int bpfctl_sync_targets(const struct policy *pol);
int bpfctl_attach(const char *cg_path, uint64_t cgid, char *err, size_t errn);
int bpfctl_detach(uint64_t cgid, char *err, size_t errn);
int bpfctl_is_attached(uint64_t cgid);
int bpfctl_take_origin(const struct hoop_sock_key *key, struct hoop_origin *out);
int bpfctl_accel_insert(int fd);
int bpfctl_counters(uint64_t out[HOOP_ERR_MAX]);
int bpfctl_events_fd(void);
void bpfctl_events_poll(void);
void bpfctl_unpin_all_if_idle(void);

#endif
