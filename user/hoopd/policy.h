/* The YAML policy. This module reads it (libyaml) and checks it; nothing else parses YAML.
 * Errors carry the file, line and column of the offending node. */
#ifndef HOOP_POLICY_H
#define HOOP_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "hoop_bpf.h"

#define POLICY_MAX_TARGETS 64
#define POLICY_MAX_PORTS 32
#define POLICY_MAX_CIDRS 32

struct policy_cidr {
	uint8_t family; /* HOOP_AF_INET or HOOP_AF_INET6 */
	uint8_t len;
	uint8_t addr[16];
};

struct policy_target {
	char name[64];
	enum hoop_protocol protocol;
	uint16_t ports[POLICY_MAX_PORTS]; /* host byte order */
	int nports;
	struct policy_cidr cidrs[POLICY_MAX_CIDRS];
	int ncidrs; /* 0 in the file means every address: filled with 0.0.0.0/0 and ::/0 */
	int upstream_tls;	   /* enum upstream_tls (tls.h); default prefer */
	char ca_file[512];	   /* CA bundle for verify-ca / verify-full */
	char tls_server_name[256]; /* name the database certificate must carry */
};

struct policy {
	int version;
	struct policy_target targets[POLICY_MAX_TARGETS];
	int ntargets;
};

/* Returns 0, or a negative errno with "FILE:LINE:COL: what is wrong" in err. */
int policy_load(const char *path, struct policy **out, char *err, size_t errn);
void policy_free(struct policy *p);
const char *policy_protocol_name(enum hoop_protocol p);
/* Does dst (family, 16-byte addr, host-order port) match a target? Returns its index or -1. */
int policy_match(const struct policy *p, int family, const uint8_t *addr, uint16_t port);

#endif
