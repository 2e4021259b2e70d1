/* reload.c: load the policy file and put it in force everywhere, at start-up, on SIGHUP and on
 * `hoopctl reload`. */
#ifndef HOOPD_RELOAD_H
#define HOOPD_RELOAD_H

#include <stddef.h>

struct policy;
struct audit_cfg;

/* Load hoopd.o.policy_path; on success it replaces the running policy, else that stays in force
 * and err says why (file:line:col for a bad file). 0 or -errno. */
int hoopd_reload_policy(char *err, size_t errn);
/* The audit trail's settings from a policy's audit section. */
void audit_cfg_from(const struct policy *pol, struct audit_cfg *ac);

#endif
