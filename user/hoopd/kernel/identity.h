/*
 * Who an accepted agent connection is (struct agent): from the connect hook's stash
 * (the origin), /proc, the attachments and the policy's targets.
 */
#ifndef HOOP_IDENTITY_H
#define HOOP_IDENTITY_H

#include <stddef.h>
#include <stdint.h>

#include "hoop_bpf.h"

/*
 * Who the agent is. The members are written once, at accept (identity.c) and at login
 * (sess_set_login), and only read after. They are declared through AGENT_MEMBERS so that a
 * session carries them both as `s->agent` (the const view handed to readers) and, for the code
 * that names them directly, as `s->owner`, `s->o`, ... (the same bytes: struct_group in Linux).
 */
#define AGENT_MEMBERS                                                                          \
	char id[20];   /* the session's id in logs and records */                              \
	char peer[64]; /* the agent's address as hoopd sees it */                              \
	char dst[64];  /* where the agent meant to go */                                       \
	struct hoop_origin o; /* the connect hook's stash: pid, uid, comm, cgroup id, target */ \
	char exe[256];	      /* /proc/PID/exe at accept (advisory: the pid may be reused) */ \
	char cgroup[512];     /* the connect-time cgroup, named as it is at accept */          \
	char owner[256];      /* the attachment's owner */                                     \
	/* The attached cgroup the connect-time cgroup falls under (0: none found, e.g. the    \
	 * leaf was removed before accept; such sessions share one budget). Per-cgroup caps    \
	 * count against it: the hook covers every descendant, which the agent can create. */  \
	uint64_t cap_cgid;                                                                     \
	char labels_json[512];                                                                 \
	char target[64]; /* the policy target's name ("" when the policy no longer has it) */  \
	int protocol;	 /* enum hoop_protocol of the target */                                \
	char protocol_name[16]; /* ...as the policy spells it (records say it) */             \
	int up_netns;	 /* enum netns_dial: whose namespace the database leg is in */         \
	uint64_t netns_ino; /* the agent's network namespace (its listener's)  */            \
	int64_t started_ms;                                                                    \
	/* The login, once the engine has it (sess_set_login); "" before and for engines      \
	 * without one (tcp). */                                                               \
	char user[128];                                                                        \
	char database[128];                                                                    \
	/* The login changed since session_start (MySQL's COM_CHANGE_USER): statement        \
	 * records say the user and database they ran as. */                                 \
	int login_changed;

struct agent {
	AGENT_MEMBERS
};


/* A fresh session id ("s" and 12 hex digits, random start, then counting). */
void identity_new_id(char *out, size_t n);
/* "a.b.c.d:port" or "[v6]:port" of a HOOP_AF_* address (network order port). */
void identity_fmt_addr(int family, const uint8_t *addr, uint16_t port_be, char *out, size_t n);
/* Fill a's exe, cgroup, owner, cap_cgid, labels, target and protocol from a->o. */
void identity_read(struct agent *a);

#endif
