/*
 * Who an accepted agent connection is (session.h, struct agent): from the connect hook's stash
 * (the origin), /proc, the attachments and the policy's targets.
 */
#ifndef HOOP_IDENTITY_H
#define HOOP_IDENTITY_H

#include <stddef.h>
#include <stdint.h>

struct agent;

/* A fresh session id ("s" and 12 hex digits, random start, then counting). */
void identity_new_id(char *out, size_t n);
/* "a.b.c.d:port" or "[v6]:port" of a HOOP_AF_* address (network order port). */
void identity_fmt_addr(int family, const uint8_t *addr, uint16_t port_be, char *out, size_t n);
/* Fill a's exe, cgroup, owner, cap_cgid, labels, target and protocol from a->o. */
void identity_read(struct agent *a);

#endif
