/*
 * Identity resolution for accepted agent connections (identity.h). The cgroup (and so the
 * owner and labels) is the one the connect hook saw in the agent's own context (o.cgroup_id),
 * never /proc read now: by accept the process may have moved cgroup, exec'd another binary or
 * exited and had its pid reused. exe can only be read now, so records say it was observed at
 * accept ("exe_observed": "accept") and rules on exe are advisory.
 */
#include "identity.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "cgroup.h"
#include "daemon.h"
#include "attach.h"
#include "policy.h"

static uint64_t g_session_seq;

void identity_new_id(char *out, size_t n)
{
	if (!g_session_seq) {
		if (getrandom(&g_session_seq, sizeof(g_session_seq), 0) != sizeof(g_session_seq))
			g_session_seq = (uint64_t)now_ms() << 20;
		g_session_seq &= 0x0000ffffffffffffULL;
		g_session_seq |= 1;
	}
	snprintf(out, n, "s%012llx", (unsigned long long)(g_session_seq++ & 0xffffffffffffULL));
}

void identity_fmt_addr(int family, const uint8_t *addr, uint16_t port_be, char *out, size_t n)
{
	char a[INET6_ADDRSTRLEN] = "?";

	inet_ntop(family == HOOP_AF_INET ? AF_INET : AF_INET6, addr, a, sizeof(a));
	if (family == HOOP_AF_INET)
		snprintf(out, n, "%s:%u", a, ntohs(port_be));
	else
		snprintf(out, n, "[%s]:%u", a, ntohs(port_be));
}

/* Without CAP_DAC_READ_SEARCH (the DaemonSet does not grant it) cgroups cannot be opened by
 * id: look for the id under the attached cgroups, where every agent's cgroup is. Its path
 * relative to the cgroup2 mount, as /proc/PID/cgroup spells it. */
static int cgroup_under_attachments(uint64_t id, char *out, size_t n)
{
	char mnt[PATH_MAX], abs[PATH_MAX];
	size_t ml;

	if (cg_v2_mount(mnt, sizeof(mnt)))
		return -ENOENT;
	ml = strlen(mnt);
	for (struct attachment *a = hoopd.attachments; a; a = a->next) {
		if (cg_find_id_under(a->path, id, abs, sizeof(abs)))
			continue;
		if (strncmp(abs, mnt, ml) || (abs[ml] != '/' && abs[ml] != '\0'))
			return -ENOENT;
		snprintf(out, n, "%s", abs[ml] ? abs + ml : "/");
		return 0;
	}
	return -ENOENT;
}

void identity_read(struct agent *ag)
{
	char p[64];
	ssize_t n;
	struct attachment *a = NULL;

	snprintf(p, sizeof(p), "/proc/%u/exe", ag->o.tgid);
	n = readlink(p, ag->exe, sizeof(ag->exe) - 1);
	ag->exe[n > 0 ? n : 0] = '\0';
	if (cg_path_of_id(ag->o.cgroup_id, ag->cgroup, sizeof(ag->cgroup)) == 0 ||
	    cgroup_under_attachments(ag->o.cgroup_id, ag->cgroup, sizeof(ag->cgroup)) == 0)
		a = attach_find_for_pid(0, ag->cgroup);
	else
		ag->cgroup[0] = '\0'; /* gone since the connect: the id alone names it */
	if (!a)
		a = attach_find_id(ag->o.cgroup_id);
	snprintf(ag->owner, sizeof(ag->owner), "%s", a ? a->owner : "");
	ag->cap_cgid = a ? a->cgroup_id : 0;
	snprintf(ag->labels_json, sizeof(ag->labels_json), "%s",
		 a && a->labels_json[0] ? a->labels_json : "{}");
	ag->protocol = HOOP_PROTO_TCP;
	if ((int)ag->o.target_id < hoopd.pol->ntargets) {
		snprintf(ag->target, sizeof(ag->target), "%s", hoopd.pol->targets[ag->o.target_id].name);
		ag->protocol = (int)hoopd.pol->targets[ag->o.target_id].protocol;
	}
	snprintf(ag->protocol_name, sizeof(ag->protocol_name), "%s",
		 policy_protocol_name((enum hoop_protocol)ag->protocol));
}
