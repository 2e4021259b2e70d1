/* libFuzzer target for the policy loader: any bytes as a policy file either load into a policy
 * that keeps the loader's promises or are refused with a "FILE..." message; nothing crashes,
 * leaks or trips a sanitizer. policy_load takes a path, so the input goes into a memfd opened
 * through /proc/self/fd. Seeds: fuzz/corpus/policy/; dictionary: fuzz/policy.dict. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz_require.h"
#include "policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Broken promises are bugs like crashes: stop so libFuzzer saves the input. */
static void check_policy(const struct policy *p)
{
	REQUIRE(p->version == 1);
	REQUIRE(p->ntargets >= 0 && p->ntargets <= POLICY_MAX_TARGETS);
	for (int i = 0; i < p->ntargets; i++) {
		const struct policy_target *t = &p->targets[i];

		REQUIRE(t->name[0] && memchr(t->name, '\0', sizeof(t->name)));
		for (int k = 0; k < i; k++)
			REQUIRE(strcmp(p->targets[k].name, t->name));
		REQUIRE(strcmp(policy_protocol_name(t->protocol), "?"));
		REQUIRE(t->nports >= 1 && t->nports <= POLICY_MAX_PORTS);
		for (int j = 0; j < t->nports; j++)
			REQUIRE(t->ports[j] != 0);
		REQUIRE(t->ncidrs >= 1 && t->ncidrs <= POLICY_MAX_CIDRS);
		for (int j = 0; j < t->ncidrs; j++) {
			const struct policy_cidr *c = &t->cidrs[j];
			int m;

			REQUIRE((c->family == HOOP_AF_INET && c->len <= 32) ||
				(c->family == HOOP_AF_INET6 && c->len <= 128));
			/* Host bits are clear, and the network address itself matches. */
			for (int bit = c->len; bit < 128; bit++)
				REQUIRE(!(c->addr[bit / 8] & (0x80 >> (bit % 8))));
			m = policy_match(p, c->family, c->addr, t->ports[0]);
			REQUIRE(m >= 0 && m <= i);
		}
	}
}

/* After "PATH": either ": why" or ":LINE:COL: why" with a position inside the input (libyaml
 * counts characters, so neither can exceed the byte count), and the message is one printable
 * line however hostile the input. */
static void check_error(const char *e, size_t size)
{
	unsigned long long line, col;
	int n = 0;

	REQUIRE(e[0] == ':');
	if (sscanf(e, ":%llu:%llu: %n", &line, &col, &n) == 2 && n > 0) {
		REQUIRE(line >= 1 && line <= size + 1);
		REQUIRE(col >= 1 && col <= size + 1);
	} else {
		REQUIRE(e[1] == ' ');
		n = 2;
	}
	REQUIRE(e[n] != '\0');
	for (const unsigned char *p = (const unsigned char *)e; *p; p++)
		REQUIRE(*p >= 0x20 && *p != 0x7f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct policy *pol = NULL;
	char path[64], err[1024];
	size_t off = 0;
	int fd, r;

	fd = memfd_create("fuzz-policy", MFD_CLOEXEC);
	if (fd < 0) {
		perror("fuzz_policy: memfd_create");
		abort();
	}
	while (off < size) {
		ssize_t n = write(fd, data + off, size - off);

		if (n < 0) {
			perror("fuzz_policy: write");
			abort();
		}
		off += (size_t)n;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);

	err[0] = '\0';
	r = policy_load(path, &pol, err, sizeof(err));
	if (r == 0) {
		REQUIRE(pol != NULL);
		check_policy(pol);
		policy_free(pol);
	} else {
		REQUIRE(r < 0);
		REQUIRE(pol == NULL);
		REQUIRE(!strncmp(err, path, strlen(path)) && err[strlen(path)] == ':');
		check_error(err + strlen(path), size);
	}
	close(fd);
	return 0;
}
