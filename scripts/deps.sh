#!/bin/sh
# Install the Debian packages hoop needs to build, test and demo. Idempotent; silent when
# nothing is missing. Usage: scripts/deps.sh [build|test|all|bench|vm|image]
# `bench` (make bench, make bench-mask) adds the proxies hoopd is measured against, perf and
# valgrind (callgrind's instruction counts); `all` does not.
# `vm` (make vmtest) adds qemu and a static busybox for the test guest, and what the guest runs
# from the host: the test set. (The guest's kernel is fetched by vmtests/run.sh, not installed.)
# `test` and `all` (and the sets above them) also unpack MariaDB's server plugins (below).
# `image` (make image) is buildah and mmdebstrap: an engine that needs no daemon and no runtime,
# and the tool that makes the Debian 12 base where no registry answers. The test set has them
# too: make test builds the image and runs suites with its binaries (tests/image/).
set -eu
BUILD="make gcc clang llvm bpftool libbpf-dev libelf-dev zlib1g-dev libdeflate-dev libyaml-dev libjson-c-dev
libnl-3-dev libssl-dev libpg-query-dev libprotobuf-c-dev pkg-config linux-libc-dev libhyperscan-dev
libpq-dev libseccomp-dev"
TEST="postgresql postgresql-client postgresql-contrib iproute2 procps python3 python3-psycopg openssl
libclang-rt-14-dev python3-yaml buildah mmdebstrap mariadb-server-core mariadb-client-core python3-pymysql python3-mysqldb sysbench"
BENCH="haproxy pgbouncer linux-perf valgrind"
VM="qemu-system-x86 busybox-static cpio kmod"
IMAGE="buildah mmdebstrap"
case "${1:-all}" in
build) want="$BUILD" ;;
test | all) want="$BUILD $TEST" ;;
bench) want="$BUILD $TEST $BENCH" ;;
vm) want="$BUILD $TEST $VM" ;;
image) want="$IMAGE" ;;
*) echo "usage: $0 [build|test|all|bench|vm|image]" >&2; exit 2 ;;
esac
missing=""
for p in $want; do
	st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
	[ "$st" = "installed" ] || missing="$missing $p"
done
# node-postgres tests need node and npm; any install of them will do (some images ship
# NodeSource's nodejs, which bundles npm and conflicts with Debian's npm package).
case "${1:-all}" in
test | all)
	command -v node >/dev/null 2>&1 || missing="$missing nodejs"
	command -v npm >/dev/null 2>&1 || missing="$missing npm"
	;;
esac
if [ -n "$missing" ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "hoop: missing Debian packages:$missing" >&2
		echo "hoop: run 'make deps' as root, or: apt-get install$missing" >&2
		exit 1
	fi
	echo "hoop: installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	# apt-cache look-ups and installs need fresh lists on a new machine.
	apt-get update -qq >/dev/null
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# The ed25519 logins of tests/e2e/test_mysql.py need MariaDB's server plugin auth_ed25519.so,
# which ships in mariadb-server; installing that package also sets up and starts a system
# MariaDB, so the package of mariadbd's own version is unpacked (its plugin folder only, not
# installed) where the tests look for it: /var/cache/hoop/mariadb-server-VERSION.
case "${1:-all}" in
test | all | bench | vm)
	ver=$(dpkg-query -W -f='${Version}' mariadb-server-core)
	dir=/var/cache/hoop/mariadb-server-$ver
	[ -f "$dir/usr/lib/mysql/plugin/auth_ed25519.so" ] && exit 0
	if [ "$(id -u)" != 0 ]; then
		echo "hoop: MariaDB's server plugins are missing ($dir): run 'make deps' as root" >&2
		exit 1
	fi
	echo "hoop: unpacking mariadb-server $ver's plugins into $dir"
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	chown _apt "$tmp" 2>/dev/null || true # apt downloads as _apt where it can write
	# the version installed may have left the lists since the last update
	(cd "$tmp" && { apt-get download -qq "mariadb-server=$ver" 2>/dev/null ||
		{ apt-get update -qq >/dev/null && apt-get download -qq "mariadb-server=$ver"; }; })
	mkdir -p "$tmp/x" /var/cache/hoop
	dpkg-deb --fsys-tarfile "$tmp"/mariadb-server_*.deb | tar -x -C "$tmp/x" ./usr/lib/mysql/plugin
	rm -rf "$dir"
	mv "$tmp/x" "$dir"
	;;
esac
