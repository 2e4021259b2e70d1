/* hoopd: load the policy file and put it in force everywhere (masking key and rules, the
 * kernel's target map, TLS, the catalog reader, the audit trail's settings), or refuse it and
 * keep the running one. main.c calls it at start-up and on SIGHUP, control.c on `hoopctl
 * reload`; it lives apart from both so that neither includes the other. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "audit_store.h"
#include "bpfctl.h"
#include "catalog_fetch.h"
#include "daemon.h"
#include "log.h"
#include "mask_live.h"
#include "policy.h"
#include "reload.h"
#include "tls.h"
#include "workers.h"

void audit_cfg_from(const struct policy *pol, struct audit_cfg *ac)
{
	memset(ac, 0, sizeof(*ac));
	ac->durability = pol->audit.durability ? AUDIT_FSYNC : AUDIT_FLUSH;
	ac->checkpoint_every = pol->audit.checkpoint_every;
	ac->segment_bytes = pol->audit.segment_bytes;
	ac->retention_s = pol->audit.retention_s;
	ac->stream = pol->audit.stream[0] ? pol->audit.stream : NULL;
}

int hoopd_reload_policy(char *err, size_t errn)
{
	struct policy *np;
	int r;

	r = policy_load(hoopd.o.policy_path, &np, err, errn);
	if (r) {
		hoopd.st.policy_reload_failures++;
		log_error("policy reload refused, the running policy stays: %s", err);
		return r;
	}
	for (int i = 0; i < np->ntargets; i++)
		for (int p = 0; p < np->targets[i].nports; p++)
			if (np->targets[i].ports[p] == hoopd.o.listen_port) {
				snprintf(err, errn, "%s: target %s uses port %u, hoopd's own listen "
						    "port; refused",
					 hoopd.o.policy_path, np->targets[i].name, hoopd.o.listen_port);
				log_error("policy reload refused: %s", err);
				policy_free(np);
				hoopd.st.policy_reload_failures++;
				return -EINVAL;
			}
	if (mkdir(hoopd.o.state_dir, 0700) && errno != EEXIST) {
		snprintf(err, errn, "cannot create state dir %s: %s", hoopd.o.state_dir, strerror(errno));
		policy_free(np);
		return -errno;
	}
	if ((r = masking_load(&np->masking, hoopd.o.state_dir, err, errn))) {
		hoopd.st.policy_reload_failures++;
		log_error("policy reload refused, the running policy stays: %s", err);
		policy_free(np);
		return r;
	}
	if (hoopd.skel && (r = bpfctl_sync_targets(np))) {
		snprintf(err, errn, "cannot update the kernel's target map: %s", strerror(-r));
		policy_free(np);
		hoopd.st.policy_reload_failures++;
		return r;
	}
	policy_free(hoopd.pol);
	hoopd.pol = np;
	hoopd.pol_gen++;
	tls_policy_changed();
	catalog_policy_changed();
	workers_policy_changed(); /* the engine workers run it */
	if (hoopd.st.policy_reloads || hoopd.skel) {
		struct audit_cfg ac;

		audit_cfg_from(np, &ac);
		audit_configure(&ac);
	}
	hoopd.st.policy_reloads++;
	log_info("policy %s loaded: %d target(s)", hoopd.o.policy_path, np->ntargets);
	for (int i = 0; i < np->ntargets; i++)
		if (np->targets[i].protocol == HOOP_PROTO_POSTGRES &&
		    np->targets[i].upstream_tls < UPSTREAM_TLS_VERIFY_FULL)
			log_warn("target %s: upstream_tls is not verify-full, so whoever is on the path "
				 "to the database (or impersonates it) can read or change what hoopd "
				 "and the database say to each other",
				 np->targets[i].name);
	return 0;
}
