#!/bin/sh
# tests/image/with-rootfs.sh IMAGE COMMAND...: run COMMAND with the node image's root filesystem
# mounted (a buildah working container of IMAGE) and named by $HOOP_IMAGE_ROOTFS, and the base's
# (debian:12) by $HOOP_IMAGE_BASE_ROOTFS. Both are unmounted and removed when COMMAND ends,
# whatever its outcome; working containers left by a run that was killed are removed first.
# Exits with COMMAND's status. As root.
set -u
[ $# -ge 2 ] || { echo "usage: $0 IMAGE COMMAND..." >&2; exit 2; }
image=$1
shift
prefix=hoop-test-rootfs
# Leftovers of runs whose shell is gone (the name ends in that shell's pid).
for c in $(buildah containers --format '{{.ContainerName}}' 2>/dev/null | grep "^$prefix-[a-z]*-[0-9]*$"); do
	kill -0 "${c##*-}" 2>/dev/null || buildah rm "$c" >/dev/null 2>&1 || true
done
ctrs=""
cleanup() {
	for c in $ctrs; do
		buildah umount "$c" >/dev/null 2>&1
		buildah rm "$c" >/dev/null 2>&1 || echo "with-rootfs: could not remove working container $c" >&2
	done
}
trap cleanup EXIT
trap 'exit 130' INT TERM
buildah from -q --pull=never --name "$prefix-image-$$" "$image" >/dev/null || exit 1
ctrs="$prefix-image-$$"
buildah from -q --pull=never --name "$prefix-base-$$" debian:12 >/dev/null || exit 1
ctrs="$ctrs $prefix-base-$$"
HOOP_IMAGE_ROOTFS=$(buildah mount "$prefix-image-$$") || exit 1
HOOP_IMAGE_BASE_ROOTFS=$(buildah mount "$prefix-base-$$") || exit 1
export HOOP_IMAGE_ROOTFS HOOP_IMAGE_BASE_ROOTFS HOOP_IMAGE="$image"
"$@"
