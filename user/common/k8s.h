/* Kubernetes: find the cgroup v2 directory the kubelet made for a pod or one of its containers. */
#ifndef HOOP_K8S_H
#define HOOP_K8S_H

#include <stddef.h>

/*
 * Where the search starts: a cgroup v2 directory (absolute, or relative to the v2 mount).
 * Unset, it is the cgroup v2 mount found in /proc/mounts. Tests lay out kubelet-shaped trees in
 * a directory of their own and point this at it.
 */
#define K8S_ROOT_ENV "HOOP_KUBEPODS_ROOT"

/*
 * Resolve a pod UID and/or a container id to its cgroup directory (absolute) under the search
 * root, for both kubelet cgroup drivers:
 *
 *   systemd:  kubepods.slice[/kubepods-<qos>.slice]/kubepods[-<qos>]-pod<uid, - as _>.slice
 *             /cri-containerd-<id>.scope | docker-<id>.scope | crio-<id>.scope
 *   cgroupfs: kubepods[/<qos>]/pod<uid>/<id>
 *
 * The kubepods directory is looked for up to three levels below the root (kind and other
 * kubelets with a cgroup root of their own nest it, as kubelet.slice/kubelet-kubepods.slice),
 * and pods are looked for directly under it (Guaranteed) and one level down (any QoS class
 * directory; the class names are not hard-coded).
 *
 * pod_uid may be NULL (any pod), spelled with - or _. container_id may be NULL (the pod's own
 * cgroup: all its containers), and may carry the runtime prefix kubectl shows
 * (containerd://ID). Either matches exactly, or as a unique prefix of at least 8 characters.
 * With both, the container must belong to that pod.
 *
 * Returns 0 with the path in out; -ENOENT when nothing matches, -ENOTUNIQ when more than one
 * cgroup does, -EINVAL on a malformed id; a sentence for the operator in err (where it looked,
 * or what matched).
 */
int k8s_resolve(const char *pod_uid, const char *container_id, char *out, size_t n, char *err,
		size_t errn);

/* The pod UID (with dashes) a cgroup directory name stands for, or -1 if it is not a pod's. */
int k8s_pod_of_name(const char *name, char *uid, size_t n);

/* The container id a cgroup directory name inside a pod stands for, or -1 if none. */
int k8s_container_of_name(const char *name, char *id, size_t n);

#endif
