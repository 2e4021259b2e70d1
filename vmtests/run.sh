#!/bin/bash
# make vmtest: the BPF end-to-end suite (tests/e2e/test_spine.py, and vmtests/test_no_sockmap.py)
# inside a qemu guest running Debian 12's own 6.1 LTS kernel, so hoop is tested on the kernel a
# Debian 12 node runs, not only on the build machine's. Run as root after `make` and
# `make build/vm/no_sockmap build/vm/no_sockmap.bpf.o` (make vmtest does both).
#
#   vmtests/run.sh [NAME ...]                  the tests whose names contain a NAME, or whole
#                                              suites (spine, no_sockmap); default: all
#   vmtests/run.sh --cmd 'COMMAND'             run COMMAND in the guest instead (bash -c, in
#                                              the repository, as root)
#   vmtests/run.sh --shell                     an interactive shell in the guest on this
#                                              terminal ('exit' powers off; Ctrl-A X kills qemu)
#
# 1. Fetches the kernel package linux-image-amd64 depends on (apt-get download), caches the .deb
#    and the extracted vmlinuz and modules under build/vm/kernel/.
# 2. Builds an initramfs: busybox-static, vmtests/init, the modules the guest needs (virtio_pci,
#    9p, overlay, veth, tcp_diag) with their dependencies first (modules.dep via depmod).
# 3. Boots it under TCG (KVM guests hang on these machines) with the host's root filesystem
#    shared read-only over 9p; the guest runs the suite from this tree and writes its output and
#    exit status to build/vm/run/ (a second, writable 9p share), then powers off.
# 4. Prints the guest's result as `vmtest: N passed, M failed`; a full run also fails unless
#    the interception, netns, fail-closed and both integrity tests passed. A guest that does
#    not power off within VMTEST_TIMEOUT seconds is killed. Missing qemu, kernel or result is
#    a failure, never a skip.
#
# Environment: VMTEST_TIMEOUT (900), VMTEST_MEM (3G), VMTEST_CPUS (2), VMTEST_BLAST_BYTES
# (64 MiB each way for the integrity tests; the host runs 256 MiB), VMTEST_KERNEL_PKG (a
# linux-image-6.1* package name instead of linux-image-amd64's dependency).
set -u
cd "$(dirname "$0")/.."
REPO=$(pwd -P)
VM=build/vm
KDIR=$VM/kernel
RUN=$VM/run
TIMEOUT=${VMTEST_TIMEOUT:-900}
MEM=${VMTEST_MEM:-3G}
CPUS=${VMTEST_CPUS:-2}
BLAST=${VMTEST_BLAST_BYTES:-$((64 << 20))}
# What the guest loads, by module name; their dependencies are added in front.
MODULES="virtio_pci 9pnet_virtio 9p overlay veth tcp_diag"
# A full run fails unless these ran and passed in the guest.
REQUIRED="test_psql_goes_through_hoopd_with_identity test_agent_sees_database_address
test_netns_agent_goes_through_hoopd_dialling_from_its_own_netns test_new_netns_is_refused_once_then_served
test_integrity_accel_off test_integrity_accel_sockmap test_fail_closed_then_restart_without_reattach"

cmd=
shell=0
case ${1:-} in
--cmd)
	[ $# = 2 ] || { echo "usage: $0 --cmd 'COMMAND'" >&2; exit 2; }
	cmd=$2
	shift 2
	;;
--shell) shell=1; shift ;;
-*) echo "usage: $0 [--cmd 'COMMAND' | --shell | TEST-NAME ...]" >&2; exit 2 ;;
esac

t_start=$(date +%s)
qpid=
tmp=
# On any exit: no qemu of ours left running, no half-made directory left behind.
cleanup() {
	[ -n "$qpid" ] && kill "$qpid" 2>/dev/null
	[ -n "$tmp" ] && rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
fail() {
	echo "vmtest: $*" >&2
	echo "vmtest: 0 passed, 1 failed"
	exit 1
}
[ "$(id -u)" = 0 ] || fail "must run as root (the guest shares the host's root filesystem)"
for t in qemu-system-x86_64 busybox cpio depmod modprobe dpkg-deb apt-get flock; do
	command -v $t >/dev/null || fail "$t not found: run scripts/deps.sh vm"
done
for f in build/hoopd build/hoopctl build/vm/no_sockmap build/vm/no_sockmap.bpf.o; do
	[ -e $f ] || fail "$f missing: run make vmtest (or make all $f)"
done
[ "$(dpkg-query -W -f='${db:Status-Status}' busybox-static 2>/dev/null)" = installed ] ||
	fail "busybox-static is not installed: run scripts/deps.sh vm"
mkdir -p "$KDIR"
exec 9>"$VM/lock"
flock -n 9 || fail "another vmtest is running in this tree"

# --- 1. the kernel --------------------------------------------------------------------------
pkg=${VMTEST_KERNEL_PKG:-}
if [ -z "$pkg" ]; then
	pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '$1 == "Depends:" && $2 ~ /^linux-image-6\.1/ {print $2; exit}')
	if [ -z "$pkg" ]; then
		apt-get update -qq >/dev/null 2>&1
		pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '$1 == "Depends:" && $2 ~ /^linux-image-6\.1/ {print $2; exit}')
	fi
	# No package lists (offline): the newest cached kernel will do.
	[ -z "$pkg" ] && pkg=$(ls -d "$KDIR"/linux-image-6.1*/ 2>/dev/null | sort -V | tail -n 1 | xargs -r basename)
	[ -n "$pkg" ] || fail "cannot find the 6.1 kernel package linux-image-amd64 depends on (apt-cache depends linux-image-amd64)"
fi
case $pkg in linux-image-6.1*-amd64) ;; *) fail "$pkg is not a linux-image-6.1*-amd64 package" ;; esac
kver=${pkg#linux-image-}
kcache=$KDIR/$pkg
if [ ! -s "$kcache/vmlinuz" ] || [ "$(cat "$kcache/modules.want" 2>/dev/null)" != "$MODULES" ]; then
	deb=$(ls "$KDIR/${pkg}"_*.deb 2>/dev/null | sort -V | tail -n 1)
	if [ -z "$deb" ]; then
		echo "vmtest: downloading $pkg"
		# (As root, apt warns that it cannot drop privileges for a download into build/.)
		(cd "$KDIR" && apt-get download "$pkg") 2>&1 | grep -v 'Download is performed unsandboxed'
		deb=$(ls "$KDIR/${pkg}"_*.deb 2>/dev/null | sort -V | tail -n 1)
		[ -n "$deb" ] || fail "apt-get download $pkg failed"
	fi
	echo "vmtest: extracting $(basename "$deb")"
	x=$(mktemp -d "$KDIR/extract.XXXXXX")
	tmp=$x
	dpkg-deb -x "$deb" "$x" || fail "cannot extract $deb"
	depmod -b "$x" "$kver" || fail "depmod for $kver failed"
	rm -rf "$kcache"
	mkdir -p "$kcache/modules"
	cp "$x/boot/vmlinuz-$kver" "$kcache/vmlinuz"
	cp "$x/boot/config-$kver" "$kcache/config"
	: >"$kcache/modules.load"
	for m in $MODULES; do
		deps=$(modprobe -d "$x" -S "$kver" --show-depends "$m") || fail "module $m not in $pkg"
		while read -r kind path _; do
			[ "$kind" = insmod ] || continue
			base=$(basename "$path")
			grep -qx "$base" "$kcache/modules.load" && continue
			cp "$path" "$kcache/modules/" && echo "$base" >>"$kcache/modules.load"
		done <<<"$deps"
	done
	echo "$MODULES" >"$kcache/modules.want"
	rm -rf "$x"
	tmp=
	# Older kernels' packages and caches are of no further use.
	for old in "$KDIR"/linux-image-*; do
		case $old in "$kcache" | "$deb") ;; *) rm -rf "$old" ;; esac
	done
fi

# --- 2. the initramfs -----------------------------------------------------------------------
initrd=$kcache/initramfs.cpio.gz
if [ ! -s "$initrd" ] || [ vmtests/init -nt "$initrd" ] || [ "$kcache/modules.load" -nt "$initrd" ]; then
	ir=$(mktemp -d "$VM/initramfs.XXXXXX")
	tmp=$ir
	mkdir -p "$ir/bin" "$ir/modules"
	cp /bin/busybox "$ir/bin/busybox"
	cp vmtests/init "$ir/init"
	chmod 755 "$ir/init"
	cp "$kcache"/modules/*.ko "$ir/modules/"
	cp "$kcache/modules.load" "$ir/modules.load"
	(cd "$ir" && find . | cpio -o -H newc --quiet | gzip -1) >"$initrd.tmp" || fail "cpio failed"
	mv "$initrd.tmp" "$initrd"
	rm -rf "$ir"
	tmp=
fi

# --- 3. boot --------------------------------------------------------------------------------
rm -rf "$RUN"
mkdir -p "$RUN"
# The job for vmtests/init, as shell assignments ('...' quoted).
q() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }
{
	echo "REPO=$(q "$REPO")"
	echo "VMTEST_TESTS=$(q "$*")"
	echo "VMTEST_CMD=$(q "$cmd")"
	echo "VMTEST_SHELL=$shell"
	echo "VMTEST_BLAST_BYTES=$BLAST"
} >"$RUN/job"
console=$RUN/console.log
qemu=(qemu-system-x86_64 -accel tcg -nographic -no-reboot -nodefaults
	-smp "$CPUS" -m "$MEM" -nic none
	-kernel "$kcache/vmlinuz" -initrd "$initrd"
	-append "console=ttyS0 panic=-1 quiet loglevel=4"
	-virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap
	-virtfs "local,path=$REPO/$RUN,mount_tag=hoopout,security_model=none")
if [ $shell = 1 ]; then
	echo "vmtest: booting $pkg under TCG ($CPUS vCPUs, $MEM) with a shell on this terminal"
	exec "${qemu[@]}" -serial mon:stdio
fi
echo "vmtest: booting $pkg under TCG ($CPUS vCPUs, $MEM), timeout ${TIMEOUT}s; console in $console"
t_boot=$(date +%s)
: >"$console" # before tail looks for it
"${qemu[@]}" -serial stdio </dev/null >"$console" 2>&1 &
qpid=$!
# The console, without the firmware's terminal control sequences and carriage returns.
tail -n +1 -f --pid=$qpid "$console" | sed -u -e 's/\x1b\[[0-9;?]*[a-zA-Z]//g' -e 's/\x1b[a-zA-Z]//g' -e 's/\r$//' &
tailpid=$!
while kill -0 $qpid 2>/dev/null; do
	if [ $(($(date +%s) - t_boot)) -ge "$TIMEOUT" ]; then
		echo "vmtest: the guest did not power off within ${TIMEOUT}s: killing qemu (pid $qpid)" >&2
		kill $qpid
		sleep 2
		kill -9 $qpid 2>/dev/null
		break
	fi
	sleep 1
done
wait $qpid
qrc=$?
wait $tailpid 2>/dev/null
qpid=
t_end=$(date +%s)

# --- 4. the result --------------------------------------------------------------------------
[ -s "$RUN/setup-error" ] && fail "guest setup: $(cat "$RUN/setup-error")"
[ -f "$RUN/status" ] || fail "the guest left no result (qemu exit $qrc); see $console"
if [ -n "$cmd" ]; then
	echo "vmtest: kernel $kver, boot to power-off $((t_end - t_boot))s"
	echo "vmtest: command exited $(cat "$RUN/status")"
	exit "$(cat "$RUN/status")"
fi
line=$(grep -E '^guest: [0-9]+ passed, [0-9]+ failed' "$RUN/guest.log" | tail -n 1)
[ -n "$line" ] || fail "the guest printed no result line (exit $(cat "$RUN/status")); see $RUN/guest.log"
p=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed.*/\1/')
f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
# A full run must include the tests this target exists for; a run of chosen tests need not.
[ $# -gt 0 ] && REQUIRED=
for t in $REQUIRED; do
	if ! grep -q "^PASS $t " "$RUN/guest.log"; then
		echo "vmtest: required test $t did not pass in the guest" >&2
		f=$((f + 1))
	fi
done
[ "$(cat "$RUN/status")" != 0 ] && [ "$f" = 0 ] && f=1
echo "vmtest: kernel $kver, boot to power-off $((t_end - t_boot))s, total $((t_end - t_start))s"
echo "vmtest: $p passed, $f failed"
[ "$f" = 0 ]
