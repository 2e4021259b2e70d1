#!/bin/bash
# Run every test hoop has, as root: the include graph between modules (no cycles), unit tests (plain and with ASan+UBSan), bounded fuzzing of
# every parser, and the end-to-end suites with real BPF, real cgroups, real PostgreSQL (plain
# build, then the sanitizer build), the node image with the pod and the spine and PostgreSQL
# suites run from it (tests/image/), then the BPF end-to-end suite again in a VM on Linux 6.1
# (make vmtest, vmtests/). Each suite's closing "=== name" line says how many seconds it took,
# a table of the slowest suites follows them all, then one closing line: "tests: N passed, M failed".
set -u
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "tests: must run as root (BPF, cgroups, netns)" >&2; exit 1; }
export PYTHONDONTWRITEBYTECODE=1
total_pass=0
total_fail=0
log=$(mktemp /tmp/hoop-tests.XXXXXX)
times=$(mktemp /tmp/hoop-tests-times.XXXXXX)
trap 'rm -f "$log" "$times"' EXIT
start=$SECONDS

# took NAME SECS: note that NAME ran SECS seconds, for the table at the end.
took() {
	echo "$2 $1" >>"$times"
}

# step NAME COMMAND...: a build step that is not a suite (its output hidden), timed; failing, it
# counts as one failure.
step() {
	local name=$1 t0=$SECONDS how=done
	shift
	if ! "$@" >/dev/null; then
		how="failed: counted as one failure"
		total_fail=$((total_fail + 1))
	fi
	local secs=$((SECONDS - t0))
	took "$name" "$secs"
	echo "=== $name: $secs s, $how"
}

# suite NAME COMMAND...: run it, echo its output, add its "N passed, M failed" to the totals.
# A suite that prints no such line counts as one failure.
# Its closing "=== NAME: S s, ..." line says how long it took.
suite() {
	local name=$1 t0=$SECONDS
	shift
	echo "=== $name: $*"
	"$@" 2>&1 | tee "$log"
	local rc=${PIPESTATUS[0]}
	local line secs=$((SECONDS - t0))
	took "$name" "$secs"
	line=$(grep -E '^[a-z0-9_-]+: [0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
	if [ -z "$line" ]; then
		echo "=== $name: $secs s, no result line (exit $rc): counted as failed"
		total_fail=$((total_fail + 1))
		return
	fi
	local p f
	p=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed.*/\1/')
	f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
	echo "=== $name: $secs s, $p passed, $f failed"
	if [ "$rc" != 0 ] && [ "$f" = 0 ]; then
		echo "=== $name: exit $rc with no failed test: counted as failed"
		f=1
	fi
	total_pass=$((total_pass + p))
	total_fail=$((total_fail + f))
}

suite includes make --no-print-directory check-includes
suite unit make --no-print-directory unit
suite unit-sanitizers make --no-print-directory SANITIZE=address,undefined unit
suite unit-pg make --no-print-directory unit-pg
suite unit-gate make --no-print-directory unit-gate
suite unit-rules make --no-print-directory unit-rules
suite unit-events make --no-print-directory unit-events
suite unit-events-sanitizers make --no-print-directory SANITIZE=address,undefined unit-events
suite unit-audit-ipc make --no-print-directory unit-audit-ipc
suite unit-audit-ipc-sanitizers make --no-print-directory SANITIZE=address,undefined unit-audit-ipc
suite unit-sandbox make --no-print-directory unit-sandbox
suite unit-sandbox-sanitizers make --no-print-directory SANITIZE=address,undefined unit-sandbox
suite unit-mask make --no-print-directory unit-mask
suite unit-mask-sanitizers make --no-print-directory SANITIZE=address,undefined unit-mask
suite unit-rules-sanitizers make --no-print-directory SANITIZE=address,undefined unit-rules
suite unit-maskplan make --no-print-directory unit-maskplan
suite unit-maskplan-sanitizers make --no-print-directory SANITIZE=address,undefined unit-maskplan
suite unit-sqlshape make --no-print-directory unit-sqlshape
suite unit-sqlshape-sanitizers make --no-print-directory SANITIZE=address,undefined unit-sqlshape
suite unit-pg-sanitizers make --no-print-directory SANITIZE=address,undefined unit-pg
suite unit-gate-sanitizers make --no-print-directory SANITIZE=address,undefined unit-gate
# Each libFuzzer target runs FUZZ_SECONDS over its corpus; any crash fails make fuzz.
# 8 s per target here (make fuzz alone: 20): every seed and crash reproducer runs, and a short
# search beyond them; longer searches by hand: make fuzz FUZZ_SECONDS=600 (the Makefile header).
suite fuzz bash -c 'n=$(ls fuzz/fuzz_*.c | wc -l)
	if make --no-print-directory fuzz FUZZ_SECONDS=${FUZZ_SECONDS:-8}; then echo "fuzz: $n passed, 0 failed"
	else echo "fuzz: 0 passed, $n failed"; exit 1; fi'
suite e2e /usr/bin/python3 tests/e2e/test_spine.py
suite e2e-pg /usr/bin/python3 tests/e2e/test_pg.py
suite e2e-policy /usr/bin/python3 tests/e2e/test_policy.py
suite e2e-approvals /usr/bin/python3 tests/e2e/test_approvals.py
suite e2e-audit /usr/bin/python3 tests/e2e/test_audit.py
suite e2e-central /usr/bin/python3 tests/e2e/test_central.py
suite e2e-central-approvals /usr/bin/python3 tests/e2e/test_central_approvals.py
suite e2e-masking /usr/bin/python3 tests/e2e/test_masking.py
suite e2e-deploy /usr/bin/python3 tests/e2e/test_deploy.py
suite e2e-hostile /usr/bin/python3 tests/e2e/test_hostile.py
suite e2e-workers /usr/bin/python3 tests/e2e/test_workers.py
suite e2e-hostile-worker /usr/bin/python3 tests/e2e/test_hostile_worker.py
# The MySQL/MariaDB classifier against a real MariaDB 10.11 (grammar and table privileges).
step build-mysqlfacts make --no-print-directory build/tools/mysqlfacts
suite mysql-dialect /usr/bin/python3 tests/mysql/test_dialect.py
# The MySQL/MariaDB engine: a throwaway MariaDB 10.11, the mariadb CLI, pymysql, MySQLdb,
# sysbench and a protocol client of the test's own, through real BPF redirection.
suite e2e-mysql /usr/bin/python3 tests/e2e/test_mysql.py
# ...as a hostile agent: 197 evasions of deny rules, 93 exfiltration queries over both protocols.
suite e2e-mysql-hostile /usr/bin/python3 tests/e2e/test_mysql_hostile.py
# PostgreSQL 15's regression SQL directly and through hoopd, output against output, with psql
# and again over the extended protocol (three to eight minutes on two shared cores, by their load).
suite e2e-transparency /usr/bin/python3 tests/e2e/test_transparency.py
# The node image (make image; with buildah, whose working containers the suites mount), and its
# own hoopd and hoopctl run as deploy/daemonset.yaml runs them (tests/image/pod.py): the pod
# itself, then the spine and PostgreSQL suites.
image=$(scripts/image.sh tag)
suite image-build bash -c 'if IMAGE_ENGINE=buildah scripts/image.sh; then echo "image-build: 1 passed, 0 failed"
	else echo "image-build: 0 passed, 1 failed"; exit 1; fi'
suite image tests/image/with-rootfs.sh "$image" /usr/bin/python3 tests/image/test_image.py
suite e2e-image tests/image/with-rootfs.sh "$image" env HOOP_BUILD=tests/image/bin \
	/usr/bin/python3 tests/e2e/test_spine.py
suite e2e-pg-image tests/image/with-rootfs.sh "$image" env HOOP_BUILD=tests/image/bin \
	/usr/bin/python3 tests/e2e/test_pg.py
step build-sanitizers make --no-print-directory SANITIZE=address,undefined all
suite e2e-sanitizers env HOOP_BUILD=build/san HOOP_BLAST_BYTES=$((64 << 20)) \
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	/usr/bin/python3 tests/e2e/test_spine.py
suite e2e-pg-sanitizers env HOOP_BUILD=build/san ASAN_OPTIONS=detect_leaks=1 \
	/usr/bin/python3 tests/e2e/test_pg.py
suite e2e-central-sanitizers env HOOP_BUILD=build/san ASAN_OPTIONS=detect_leaks=1 \
	/usr/bin/python3 tests/e2e/test_central.py
suite e2e-central-approvals-sanitizers env HOOP_BUILD=build/san ASAN_OPTIONS=detect_leaks=1 \
	/usr/bin/python3 tests/e2e/test_central_approvals.py
suite e2e-mysql-sanitizers env HOOP_BUILD=build/san ASAN_OPTIONS=detect_leaks=1 \
	/usr/bin/python3 tests/e2e/test_mysql.py
suite e2e-policy-sanitizers env HOOP_BUILD=build/san ASAN_OPTIONS=detect_leaks=1 \
	/usr/bin/python3 tests/e2e/test_policy.py
suite e2e-approvals-sanitizers env HOOP_BUILD=build/san ASAN_OPTIONS=detect_leaks=1 \
	/usr/bin/python3 tests/e2e/test_approvals.py
suite e2e-hostile-sanitizers env HOOP_BUILD=build/san ASAN_OPTIONS=detect_leaks=1 \
	/usr/bin/python3 tests/e2e/test_hostile.py
suite e2e-workers-sanitizers env HOOP_BUILD=build/san ASAN_OPTIONS=detect_leaks=1 \
	/usr/bin/python3 tests/e2e/test_workers.py
suite e2e-hostile-worker-sanitizers env HOOP_BUILD=build/san ASAN_OPTIONS=detect_leaks=1 \
	/usr/bin/python3 tests/e2e/test_hostile_worker.py
suite vmtest make --no-print-directory vmtest

# Where the time went: the slowest suites and steps, and the whole run.
echo
echo "=== time: the 15 slowest of $(wc -l <"$times") suites and steps, $(($SECONDS - start)) s in all"
sort -rn "$times" | head -n 15 | awk '{ printf "%6d s  %s\n", $1, $2 }'
echo
echo "tests: $total_pass passed, $total_fail failed"
[ "$total_fail" = 0 ]
