#!/bin/sh
# The DaemonSet's policy sidecar: when the policy file (a ConfigMap mounted as a directory)
# changes, ask hoopd to re-read it over its control socket (`hoopctl reload`, the same as
# SIGHUP). A policy hoopd refuses is logged here and in hoopd's log; the running policy stays.
#
# Why polling a checksum and not inotify: the kubelet updates a ConfigMap volume by swapping a
# symlink (..data) in the directory, which a watch on the file itself never sees, and the
# kubelet's own sync delay (up to about a minute) dwarfs a few seconds of polling. It also needs
# no tool beyond coreutils and hoopctl, and no signal sent across containers.
#
# Environment: HOOP_POLICY (default /etc/hoop/policy.yaml), HOOP_CONTROL (default
# /run/hoop/hoopd.sock), HOOP_RELOAD_INTERVAL seconds (default 5).
set -u
policy=${HOOP_POLICY:-/etc/hoop/policy.yaml}
control=${HOOP_CONTROL:-/run/hoop/hoopd.sock}
interval=${HOOP_RELOAD_INTERVAL:-5}

sum() { cksum <"$policy" 2>/dev/null || echo missing; }
say() { echo "policy-reloader: $*"; }

until hoopctl --control "$control" ping >/dev/null 2>&1; do
	sleep 1
done
last=$(sum)
say "watching $policy (every ${interval}s); hoopd answers on $control"
# A change made while hoopd was starting would otherwise wait for the next one.
hoopctl --control "$control" reload >/dev/null 2>&1 || true
while sleep "$interval"; do
	now=$(sum)
	[ "$now" = "$last" ] && continue
	last=$now
	if out=$(hoopctl --control "$control" reload 2>&1); then
		say "$policy changed: $out"
	else
		say "$policy changed but hoopd refused it, the running policy stays: $out" >&2
	fi
done
