#!/bin/sh
# The DaemonSet's preStop hook: give open database sessions through hoopd up to
# HOOP_DRAIN_SECONDS (default 20) to finish, then return so that the kubelet stops hoopd.
#
# It never detaches anything and never touches /sys/fs/bpf. The cgroup attachments are pinned
# links there; they outlive hoopd, so while the pod restarts or is replaced (an upgrade) every
# attached agent stays fail-closed -- its database connects are refused at once -- and the next
# hoopd adopts the pins and serves the agents again without a re-attach. Detaching here would
# let agents reach the database around hoop for as long as the gap lasts.
set -u
control=${HOOP_CONTROL:-/run/hoop/hoopd.sock}
left=${HOOP_DRAIN_SECONDS:-20}

active() {
	hoopctl --control "$control" status --json 2>/dev/null |
		sed -n 's/.*"connections_active" *: *\([0-9][0-9]*\).*/\1/p' | head -n 1
}

while [ "$left" -gt 0 ]; do
	n=$(active)
	if [ -z "$n" ] || [ "$n" -eq 0 ]; then
		exit 0
	fi
	echo "prestop: $n open session(s) through hoopd; waiting (${left}s left)"
	sleep 1
	left=$((left - 1))
done
echo "prestop: sessions still open after the drain time; stopping hoopd ends them"
exit 0
