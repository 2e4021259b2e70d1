/*
 * hoopctl attach's check of the attached cgroup's processes: which of them hold CAP_NET_RAW or
 * CAP_NET_ADMIN in their effective set. Such an agent can read and forge the traffic of its own
 * network namespace (AF_PACKET, iptables), which is where a database leg to a destination that
 * exists only there runs, and where it could redirect its own connections.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cgroup.h"
#include "hoopctl.h"

#define CAP_NET_ADMIN_BIT 12
#define CAP_NET_RAW_BIT 13
#define SHOW_MAX 10 /* processes named; the rest are counted */

struct scan {
	int found, shown;
};

/* CapEff of /proc/PID/status. 0, or -1 when the process is gone. */
static int cap_eff(int pid, uint64_t *eff, char *comm, size_t commn)
{
	char p[64], line[256];
	FILE *f;
	int got = 0;

	snprintf(p, sizeof(p), "/proc/%d/status", pid);
	f = fopen(p, "re");
	if (!f)
		return -1;
	comm[0] = '\0';
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "Name:\t", 6)) {
			snprintf(comm, commn, "%s", line + 6);
			comm[strcspn(comm, "\n")] = '\0';
		} else if (!strncmp(line, "CapEff:\t", 8)) {
			*eff = strtoull(line + 8, NULL, 16);
			got = 1;
		}
	}
	fclose(f);
	return got ? 0 : -1;
}

static int check_pid(int pid, void *arg)
{
	struct scan *sc = arg;
	uint64_t eff = 0;
	char comm[64];
	int raw, admin;

	if (cap_eff(pid, &eff, comm, sizeof(comm)))
		return 0;
	raw = !!(eff & (1ULL << CAP_NET_RAW_BIT));
	admin = !!(eff & (1ULL << CAP_NET_ADMIN_BIT));
	if (!raw && !admin)
		return 0;
	sc->found++;
	if (sc->shown++ < SHOW_MAX)
		fprintf(stderr, "hoopctl: warning: pid %d (%s) holds %s%s%s\n", pid, comm,
			raw ? "CAP_NET_RAW" : "", raw && admin ? " and " : "",
			admin ? "CAP_NET_ADMIN" : "");
	return 0;
}

int netcaps_warn(const char *cg_path)
{
	struct scan sc = {0};

	if (cg_for_each_pid(cg_path, check_pid, &sc))
		return 0; /* cannot look: attach itself worked, say nothing false */
	if (sc.found > SHOW_MAX)
		fprintf(stderr, "hoopctl: warning: ... and %d more such processes\n",
			sc.found - SHOW_MAX);
	if (sc.found)
		fprintf(stderr,
			"hoopctl: warning: %d process(es) in %s can read or forge the traffic of "
			"their network namespace; agents should run without NET_RAW and NET_ADMIN "
			"(capabilities.drop: [NET_RAW, NET_ADMIN]; docs/deploy.md)\n",
			sc.found, cg_path);
	return sc.found;
}
