/* Kernel feature probing at start-up: refuse early, by name, on a kernel hoop cannot run on. */
#ifndef HOOPD_PROBE_H
#define HOOPD_PROBE_H

#include <stddef.h>

/* The oldest kernel with every feature hoop's programs use (bpf_get_netns_cookie in sockops). */
#define PROBE_MIN_KERNEL "5.15"

/*
 * Probe the running kernel for every BPF program type, map type, helper and attach type hoop's
 * programs use, and for SO_NETNS_COOKIE. Logs one line with the result.
 *
 * Returns 0 when everything hoop needs is there. *accel_ok is then 1 when --accel sockmap can
 * work too; when it is 0, err names what acceleration lacks. Returns a negative errno when a
 * required feature is missing (-EOPNOTSUPP) or the kernel cannot be probed (-EPERM, ...), with a
 * sentence for the operator in err naming each missing feature and the kernel it needs.
 *
 * HOOPD_PROBE_HIDE=key,key,... (tests only) treats those features as missing; the keys are the
 * ones the result line prints.
 */
int probe_kernel(char *err, size_t errn, int *accel_ok);

#endif
