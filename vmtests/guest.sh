#!/bin/bash
# Runs inside the vmtest guest (vmtests/init starts it in a chroot of the host's root, read-only
# under a RAM overlay) against the guest's kernel, with the host's python3, PostgreSQL, psql and
# the freshly built build/hoopd and build/hoopctl:
#   tests/e2e/test_spine.py       the BPF end-to-end suite
#   vmtests/test_no_sockmap.py    hoopd on a kernel that refuses sk_msg and sockhash (guest only)
# Usage: guest.sh REPO [NAME ...]: a NAME within a suite's file name (spine, no_sockmap) runs
# that whole suite; other NAMEs run the tests whose names contain them (the suites' own
# arguments). VMTEST_CMD, if set, is run (bash -c) instead. Ends with "guest: N passed, M failed".
set -u
cd "$1" || exit 1
shift
export PYTHONDONTWRITEBYTECODE=1
echo "guest: $(uname -srm); cgroup2 at $(awk '$3 == "cgroup2" {print $2; exit}' /proc/mounts)"
if [ -n "${VMTEST_CMD:-}" ]; then
	bash -c "$VMTEST_CMD"
	rc=$?
	echo "guest: command exited $rc"
	exit $rc
fi

# Does FILE have a test whose name contains one of the arguments (or were none given)?
has_tests() {
	local file=$1 n
	shift
	[ $# = 0 ] && return 0
	for n; do
		grep -qE "^def test_[a-z0-9_]*${n}[a-z0-9_]*\(" "$file" && return 0
	done
	return 1
}

pass=0
fail=0
log=$(mktemp)
for suite in tests/e2e/test_spine.py vmtests/test_no_sockmap.py; do
	args=("$@")
	for n; do
		case $(basename "$suite") in *"$n"*) args=() whole=1 ;; esac
	done
	[ "${whole:-0}" = 1 ] || has_tests "$suite" "$@" || continue
	whole=0
	echo "=== $suite ${args[*]}"
	/usr/bin/python3 "$suite" "${args[@]}" 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	line=$(grep -E '^e2e: [0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
	if [ -z "$line" ]; then
		echo "=== $suite: no result line (exit $rc): counted as failed"
		fail=$((fail + 1))
		continue
	fi
	p=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed.*/\1/')
	f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
	[ "$rc" != 0 ] && [ "$f" = 0 ] && f=1
	pass=$((pass + p))
	fail=$((fail + f))
done
rm -f "$log"
echo "guest: $pass passed, $fail failed"
[ "$fail" = 0 ]
