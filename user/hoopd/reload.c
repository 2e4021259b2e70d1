/* hoopd: load the policy file and put it in force everywhere (masking key and rules, the
 * kernel's target map, TLS, the catalog reader, the audit trail's settings), or refuse it and
 * keep the running one. main.c calls it at start-up and on SIGHUP, control.c on `hoopctl
 * reload`; it lives apart from both so that neither includes the other. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "audit.h"
#include "bpfctl.h"
#include "catalog_fetch.h"
#include "hoopd.h"
#include "log.h"
#include "masking.h"
#include "policy.h"
#include "reload.h"
#include "tls.h"

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

	r = policy_load(G.o.policy_path, &np, err, errn);
	if (r) {
		G.st.policy_reload_failures++;
		log_error("policy reload refused, the running policy stays: %s", err);
		return r;
	}
	for (int i = 0; i < np->ntargets; i++)
		for (int p = 0; p < np->targets[i].nports; p++)
			if (np->targets[i].ports[p] == G.o.listen_port) {
				snprintf(err, errn, "%s: target %s uses port %u, hoopd's own listen "
						    "port; refused",
					 G.o.policy_path, np->targets[i].name, G.o.listen_port);
				log_error("policy reload refused: %s", err);
				policy_free(np);
				G.st.policy_reload_failures++;
				return -EINVAL;
			}
	if (mkdir(G.o.state_dir, 0700) && errno != EEXIST) {
		snprintf(err, errn, "cannot create state dir %s: %s", G.o.state_dir, strerror(errno));
		policy_free(np);
		return -errno;
	}
	if ((r = masking_load(&np->masking, G.o.state_dir, err, errn))) {
		G.st.policy_reload_failures++;
		log_error("policy reload refused, the running policy stays: %s", err);
		policy_free(np);
		return r;
	}
	if (G.skel && (r = bpfctl_sync_targets(np))) {
		snprintf(err, errn, "cannot update the kernel's target map: %s", strerror(-r));
		policy_free(np);
		G.st.policy_reload_failures++;
		return r;
	}
	policy_free(G.pol);
	G.pol = np;
	G.pol_gen++;
	tls_policy_changed();
	catalog_policy_changed();
	if (G.st.policy_reloads || G.skel) {
		struct audit_cfg ac;

		audit_cfg_from(np, &ac);
		audit_configure(&ac);
	}
	G.st.policy_reloads++;
	log_info("policy %s loaded: %d target(s)", G.o.policy_path, np->ntargets);
	for (int i = 0; i < np->ntargets; i++)
		if (np->targets[i].protocol == HOOP_PROTO_POSTGRES &&
		    np->targets[i].upstream_tls < UPSTREAM_TLS_VERIFY_FULL)
			log_warn("target %s: upstream_tls is not verify-full, so whoever is on the path "
				 "to the database (or impersonates it) can read or change what hoopd "
				 "and the database say to each other",
				 np->targets[i].name);
	return 0;
}
