#!/bin/sh
# Build hoop's node image (deploy/Dockerfile) with whatever engine this machine has, as root.
#
#   scripts/image.sh            build it (make image); prints its tag and size
#   scripts/image.sh tag        print the tag this tree builds: hoop:VERSION-COMMIT[-dirty]
#   scripts/image.sh base-tar   only make the Debian 12 base tarball (mmdebstrap), print its path
#
# The engine is docker when its daemon answers, else podman, else buildah (installed from
# Debian when none is there); IMAGE_ENGINE=docker|podman|buildah chooses. The image is tagged
# hoop:VERSION-COMMIT (VERSION from user/hoopd/core/daemon.h, COMMIT the tree's, "-dirty" when the
# tree has changes) and hoop:VERSION, the name deploy/daemonset.yaml uses; older
# hoop:VERSION-* tags are removed. An image already built from a clean tree's commit is kept,
# not rebuilt (IMAGE_REBUILD=1 rebuilds it).
#
# The base, debian:12, is used when the engine has it, pulled when a registry answers, and
# otherwise made from Debian's own packages: `mmdebstrap --variant=minbase bookworm` into
# build/image/debian-12-minbase.tar (kept: later builds reuse it) and imported as debian:12.
# DEBIAN_MIRROR (an URI, or "deb URI SUITE COMPONENTS" lines separated by "|") points mmdebstrap
# at another mirror, for a build machine that reaches only an internal one.
set -eu
cd "$(dirname "$0")/.."
OUT=build/image
BASE_TAR=$OUT/debian-12-minbase.tar
VERSION=$(sed -n 's/^#define HOOPD_VERSION "\(.*\)"$/\1/p' user/hoopd/core/daemon.h)
[ -n "$VERSION" ] || { echo "image: no HOOPD_VERSION in user/hoopd/core/daemon.h" >&2; exit 1; }

tag() {
	c=$(git rev-parse --short=12 HEAD 2>/dev/null) || c=nogit
	# Only what the Dockerfile copies makes the image; a change elsewhere is not "dirty".
	if [ "$c" != nogit ] && [ -n "$(git status --porcelain -- Makefile bpf include user policies deploy)" ]; then
		c=$c-dirty
	fi
	echo "hoop:$VERSION-$c"
}

engine() {
	if [ -n "${IMAGE_ENGINE:-}" ]; then
		echo "$IMAGE_ENGINE"
	elif command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
		echo docker
	elif command -v podman >/dev/null 2>&1; then
		echo podman
	else
		echo buildah
	fi
}

base_tar() {
	[ -s "$BASE_TAR" ] && return 0
	command -v mmdebstrap >/dev/null 2>&1 || scripts/deps.sh image
	mkdir -p "$OUT"
	echo "image: making the Debian 12 base with mmdebstrap --variant=minbase bookworm" >&2
	# shellcheck disable=SC2086 # DEBIAN_MIRROR's lines are separate arguments
	(IFS='|'; mmdebstrap --quiet --variant=minbase --format=tar bookworm "$BASE_TAR.tmp" ${DEBIAN_MIRROR:-}) \
		|| { rm -f "$BASE_TAR.tmp"; exit 1; }
	mv "$BASE_TAR.tmp" "$BASE_TAR"
}

# has_image ENGINE NAME
has_image() {
	case $1 in
	docker) docker image inspect "$2" >/dev/null 2>&1 ;;
	podman) podman image exists "$2" ;;
	buildah) buildah inspect --type image "$2" >/dev/null 2>&1 ;;
	esac
}

ensure_base() {
	e=$1
	has_image "$e" debian:12 && return 0
	if timeout 60 "$e" pull -q docker.io/library/debian:12 >/dev/null 2>&1; then
		echo "image: pulled debian:12" >&2
		return 0
	fi
	echo "image: no registry answers: debian:12 is made here from Debian's packages" >&2
	base_tar
	case $e in
	docker | podman) "$e" import -q -c 'CMD ["bash"]' "$BASE_TAR" debian:12 >/dev/null ;;
	buildah)
		ctr=$(buildah from scratch)
		if ! { buildah add -q "$ctr" "$BASE_TAR" / >/dev/null && buildah config --cmd bash "$ctr" &&
			buildah commit -q --rm "$ctr" localhost/debian:12 >/dev/null; }; then
			buildah rm "$ctr" >/dev/null 2>&1
			exit 1
		fi
		;;
	esac
}

image_id() {
	case $1 in
	buildah) buildah inspect --type image --format '{{.FromImageID}}' "$2" 2>/dev/null ;;
	*) "$1" image inspect -f '{{.Id}}' "$2" 2>/dev/null ;;
	esac || true
}

size_mb() {
	case $1 in
	docker) b=$(docker image inspect -f '{{.Size}}' "$2") ;;
	podman) b=$(podman image inspect -f '{{.Size}}' "$2") ;;
	# The sum of its layers, uncompressed.
	buildah) b=$(buildah inspect --type image --format '{{.Manifest}}' "$2" | sed 's/.*"layers"://' |
		grep -o '"size":[0-9]*' | cut -d: -f2 | awk '{ s += $1 } END { print s }') ;;
	esac
	echo $(((b + 500000) / 1000000)) # MB as the engines print them
}

# Every other hoop:VERSION-* tag this engine holds: earlier builds of this tree.
old_tags() {
	case $1 in
	docker) docker images --format '{{.Repository}}:{{.Tag}}' hoop ;;
	*) "$1" images --format '{{.Name}}:{{.Tag}}' ;;
	esac | sed 's|^localhost/||' | grep -E "^hoop:$(echo "$VERSION" | sed 's/\./\\./g')-" | grep -vx "$2" || true
}

build() {
	e=$(engine)
	[ "$(id -u)" = 0 ] || [ "$e" = docker ] || { echo "image: $e builds as root here" >&2; exit 1; }
	if [ "$e" = buildah ] && ! command -v buildah >/dev/null 2>&1; then
		scripts/deps.sh image
	fi
	t=$(tag)
	start=$(date +%s)
	if [ "${IMAGE_REBUILD:-0}" != 1 ] && [ "${t%-dirty}" = "$t" ] && has_image "$e" "$t"; then
		echo "image: $t is already built ($e)"
	else
		ensure_base "$e"
		# A rebuild of the same tag (a dirty tree) leaves the previous image without a name.
		prev=$(image_id "$e" "$t")
		echo "image: building $t with $e"
		case $e in
		docker) docker build -q -f deploy/Dockerfile -t "$t" . >/dev/null ;;
		podman | buildah)
			# chroot isolation: no OCI runtime, no capability beyond root's own. --pull=never:
			# the base is the local debian:12 made or pulled above.
			"$e" build -q --isolation chroot --pull=never --ignorefile deploy/Dockerfile.dockerignore \
				-f deploy/Dockerfile -t "$t" . >/dev/null
			;;
		esac
	fi
	"$e" tag "$t" "hoop:$VERSION"
	for o in $(old_tags "$e" "$t") ${prev:-}; do
		[ "$o" = "$(image_id "$e" "$t")" ] || "$e" rmi "$o" >/dev/null 2>&1 || true
	done
	echo "image: $t (also hoop:$VERSION): $(size_mb "$e" "$t") MB, $(($(date +%s) - start)) s ($e)"
}

case "${1:-build}" in
build) build ;;
tag) tag ;;
base-tar) base_tar && echo "$BASE_TAR" ;;
*) echo "usage: $0 [build|tag|base-tar]" >&2; exit 2 ;;
esac
