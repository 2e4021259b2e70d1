/*
 * Loads vmtests/no_sockmap.bpf.c (a BPF LSM program that makes the kernel refuse sk_msg programs
 * and sockhash/sockmap maps), prints "ready", and keeps it attached until its standard input
 * closes. vmtest guest only (vmtests/test_no_sockmap.py).
 *
 *   no_sockmap OBJECT
 */
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct bpf_program *prog;
	struct bpf_object *obj;
	struct bpf_link *link;
	char c;

	if (argc != 2) {
		fprintf(stderr, "usage: %s OBJECT\n", argv[0]);
		return 2;
	}
	obj = bpf_object__open_file(argv[1], NULL);
	if (!obj) {
		fprintf(stderr, "no_sockmap: cannot open %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	if (bpf_object__load(obj)) {
		fprintf(stderr, "no_sockmap: cannot load %s: %s\n", argv[1], strerror(errno));
		bpf_object__close(obj);
		return 1;
	}
	prog = bpf_object__find_program_by_name(obj, "hoop_vm_no_sockmap");
	link = prog ? bpf_program__attach_lsm(prog) : NULL;
	if (!link) {
		fprintf(stderr, "no_sockmap: cannot attach the LSM program (is bpf in lsm=?): %s\n",
			strerror(errno));
		bpf_object__close(obj);
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	while (read(0, &c, 1) > 0)
		;
	bpf_link__destroy(link);
	bpf_object__close(obj);
	return 0;
}
