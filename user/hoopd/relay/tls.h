/*
 * TLS for both legs. Agent leg: hoopd terminates the agent's TLS with a configured certificate,
 * or with a node CA and leaf generated once and kept in <state dir>/tls. Database leg: per
 * target, disable | prefer | require | verify-ca | verify-full, like libpq's sslmode.
 */
#ifndef HOOP_TLS_H
#define HOOP_TLS_H

#include "policy.h"

#include <openssl/ssl.h>

struct session;


int tls_init(const char *state_dir, const char *cert, const char *key, int agent_tls);
void tls_fini(void);
int tls_agent_enabled(void);
SSL *tls_agent_new(int fd, const char *dialled_ip);
void tls_policy_changed(void);
SSL *tls_server_new(SSL_CTX *ctx, int fd, const char *sni);
enum upstream_tls tls_upstream_mode(const struct session *s);
SSL_CTX *tls_upstream_ctx(const struct session *s);
const char *tls_upstream_sni(const struct session *s);
/* Is n a host name (RFC 1123 labels, at most 253 bytes)? */
int tls_valid_host_name(const char *n);
/* The agent-side leaf certificate cache: its counters, and its object for `hoopctl status`
 * with another's counters added (the engine workers', or NULL; procs: how many processes
 * keep a cache). */
struct jbuf;
struct tls_counters {
	uint64_t kept, minted, refused;
};
void tls_counters_get(struct tls_counters *c);
void tls_status(struct jbuf *j, const struct tls_counters *add, int procs);

/* The process split: the file whose PEM an engine worker needs for target's upstream leg
 * (its ca_file, or OpenSSL's default bundle), NULL when it verifies nothing; the broker reads
 * it, and the worker is given its text (tls_upstream_ca_given: from then on its contexts take
 * only what it was given). */
const char *tls_upstream_ca_path(int target);
void tls_upstream_ca_given(int target, const char *pem, size_t len);

#endif
