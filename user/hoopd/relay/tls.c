/*
 * TLS contexts and certificates.
 *
 * Agent leg: an agent dials the database's own name or address, and with sslmode=verify-full
 * checks that the certificate it gets names it. So unless an operator configures one
 * certificate for everything (--tls-cert/--tls-key), hoopd keeps a node CA in
 * <state dir>/tls/ca.{crt,key} (generated once, key mode 0600) and mints in memory a leaf for
 * each name an agent asks for: the SNI host name, or the IP address it dialled. Agents that
 * verify trust that CA (sslrootcert=<state dir>/tls/ca.crt).
 *
 * The agent chooses those names, so the leaves are an LRU of TLS_LEAVES, keyed by what the
 * certificate names (host names folded to lower case, addresses in canonical form), and an
 * SNI that is not a host name (RFC 1123: letters, digits and hyphens in dot-separated labels
 * of up to 63 bytes, 253 in all) ends the handshake: it would otherwise go into the
 * subjectAltName configuration string, where "a,IP:10.0.0.1" adds names.
 */
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon.h"
#include "policy.h"
#include "log.h"
#include "session.h"

static SSL_CTX *g_agent_ctx;
static int g_agent_tls;
static EVP_PKEY *g_ca_key;
static X509 *g_ca;
static int g_fixed_cert; /* the operator's certificate serves every name */
static int g_sess_idx = -1;

#define TLS_LEAVES 64

struct leaf {
	char san[300]; /* "DNS:name" or "IP:address": what the certificate names */
	SSL_CTX *ctx;
	struct leaf *prev, *next; /* most recently used first */
};
static struct leaf *g_leaves, *g_leaves_tail;
static int g_nleaves;
static uint64_t g_minted, g_bad_sni;

static void log_ssl(const char *what)
{
	char msg[256];

	ERR_error_string_n(ERR_get_error(), msg, sizeof(msg));
	log_error("%s: %s", what, msg);
}

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ex;

	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	ex = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (!ex)
		return -1;
	X509_add_ext(cert, ex, -1);
	X509_EXTENSION_free(ex);
	return 0;
}

static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key,
		       const char *san, int ca)
{
	X509 *x = X509_new();
	uint8_t serial[16];
	BIGNUM *bn = NULL;

	if (!x)
		return NULL;
	RAND_bytes(serial, sizeof(serial));
	serial[0] &= 0x7f;
	bn = BN_bin2bn(serial, sizeof(serial), NULL);
	X509_set_version(x, 2);
	BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
	BN_free(bn);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), ca ? 10L * 365 * 86400 : 397L * 86400);
	X509_set_pubkey(x, key);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "O", MBSTRING_ASC,
				   (const unsigned char *)"hoop", -1, -1, 0);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
				   (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(issuer ? issuer : x));
	if (ca) {
		add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE,pathlen:0");
		add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign");
		add_ext(x, x, NID_subject_key_identifier, "hash");
	} else {
		add_ext(x, issuer, NID_basic_constraints, "critical,CA:FALSE");
		add_ext(x, issuer, NID_key_usage, "critical,digitalSignature,keyEncipherment");
		add_ext(x, issuer, NID_ext_key_usage, "serverAuth");
		if (san && add_ext(x, issuer, NID_subject_alt_name, san)) {
			X509_free(x);
			return NULL;
		}
	}
	if (!X509_sign(x, issuer_key, EVP_sha256())) {
		X509_free(x);
		return NULL;
	}
	return x;
}

static int load_or_make_ca(const char *state_dir)
{
	char dir[4096], crt[4200], key[4200];
	FILE *f;

	snprintf(dir, sizeof(dir), "%s/tls", state_dir);
	snprintf(crt, sizeof(crt), "%s/ca.crt", dir);
	snprintf(key, sizeof(key), "%s/ca.key", dir);
	if ((f = fopen(key, "re"))) {
		g_ca_key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
		fclose(f);
		if ((f = fopen(crt, "re"))) {
			g_ca = PEM_read_X509(f, NULL, NULL, NULL);
			fclose(f);
		}
		if (g_ca_key && g_ca)
			return 0;
		log_error("%s or %s is unreadable; move them away to have new ones made", crt,
			  key);
		return -EINVAL;
	}
	if (mkdir(dir, 0700) && errno != EEXIST) {
		log_error("cannot create %s: %s", dir, strerror(errno));
		return -errno;
	}
	g_ca_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (!g_ca_key)
		return -ENOMEM;
	{
		char host[128] = "node", cn[200];

		gethostname(host, sizeof(host) - 1);
		snprintf(cn, sizeof(cn), "hoop node CA %s", host);
		g_ca = make_cert(g_ca_key, cn, NULL, g_ca_key, NULL, 1);
	}
	if (!g_ca)
		return -ENOMEM;
	{
		mode_t old = umask(077);

		/* "x" is O_EXCL: never written through a link planted in the state directory */
		f = fopen(key, "wex");
		if (!f || !PEM_write_PrivateKey(f, g_ca_key, NULL, NULL, 0, NULL, NULL)) {
			umask(old);
			log_error("cannot write %s: %s", key, strerror(errno));
			if (f)
				fclose(f);
			return -EIO;
		}
		fclose(f);
		umask(old);
	}
	f = fopen(crt, "wex");
	if (!f || !PEM_write_X509(f, g_ca)) {
		log_error("cannot write %s: %s", crt, strerror(errno));
		if (f)
			fclose(f);
		return -EIO;
	}
	fclose(f);
	log_info("generated this node's TLS CA in %s (agents that verify certificates trust it)",
		 crt);
	return 0;
}

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
		       const unsigned char *in, unsigned int inlen, void *arg)
{
	/* PostgreSQL 17 clients offer "postgresql"; older ones send no ALPN at all. */
	for (unsigned int i = 0; i < inlen;) {
		unsigned int l = in[i];

		if (i + 1 + l > inlen)
			break;
		if (l == 10 && !memcmp(in + i + 1, "postgresql", 10)) {
			*out = in + i + 1;
			*outlen = 10;
			return SSL_TLSEXT_ERR_OK;
		}
		i += 1 + l;
	}
	return inlen ? SSL_TLSEXT_ERR_ALERT_FATAL : SSL_TLSEXT_ERR_NOACK;
}

static SSL_CTX *new_server_ctx(void)
{
	SSL_CTX *c = SSL_CTX_new(TLS_server_method());

	if (!c)
		return NULL;
	SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
	SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION);
	/* RELEASE_BUFFERS: an idle TLS connection keeps no record buffers (~34 KiB) */
	SSL_CTX_set_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
				SSL_MODE_RELEASE_BUFFERS);
	/* Records of at most 8 KiB: libpq reads with at least 8 KiB free, so it always takes a
	 * whole record, and a client that waits on the socket between reads (psycopg 3.1) is
	 * never left with the end of a result decrypted inside OpenSSL and nothing to wake it. */
	SSL_CTX_set_max_send_fragment(c, 8192);
	SSL_CTX_set_alpn_select_cb(c, alpn_select, NULL);
	return c;
}

/* RFC 1123 host name: labels of letters, digits and hyphens (not first or last), 1 to 63
 * bytes each, at most 253 in all, no trailing dot (RFC 6066 forbids one in SNI). */
int tls_valid_host_name(const char *n)
{
	size_t len = strlen(n), label = 0;

	if (!len || len > 253)
		return 0;
	for (size_t i = 0; i <= len; i++) {
		char c = n[i];

		if (c == '.' || c == '\0') {
			if (!label || n[i - 1] == '-')
				return 0;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      (c == '-' && label)))
			return 0;
		if (++label > 63)
			return 0;
	}
	return 1;
}

static void leaf_unlink(struct leaf *l)
{
	if (l->prev)
		l->prev->next = l->next;
	else
		g_leaves = l->next;
	if (l->next)
		l->next->prev = l->prev;
	else
		g_leaves_tail = l->prev;
	l->prev = l->next = NULL;
}

static void leaf_push_front(struct leaf *l)
{
	l->next = g_leaves;
	l->prev = NULL;
	if (g_leaves)
		g_leaves->prev = l;
	g_leaves = l;
	if (!g_leaves_tail)
		g_leaves_tail = l;
}

/*
 * A context whose certificate names `name`: a host name (checked by the caller) or an IP
 * address. NULL when it cannot be made. Sessions hold their own reference to a context
 * (SSL_set_SSL_CTX), so the least recently used one can be dropped at any time.
 */
static SSL_CTX *leaf_ctx(const char *name)
{
	struct leaf *l;
	EVP_PKEY *k;
	X509 *x;
	char san[300], cn[256];
	unsigned char tmp[16];
	char canon[INET6_ADDRSTRLEN];

	if (inet_pton(AF_INET, name, tmp) == 1) {
		inet_ntop(AF_INET, tmp, canon, sizeof(canon));
		snprintf(cn, sizeof(cn), "%s", canon);
		snprintf(san, sizeof(san), "IP:%s", canon);
	} else if (inet_pton(AF_INET6, name, tmp) == 1) {
		inet_ntop(AF_INET6, tmp, canon, sizeof(canon));
		snprintf(cn, sizeof(cn), "%s", canon);
		snprintf(san, sizeof(san), "IP:%s", canon);
	} else {
		size_t i;

		if (!tls_valid_host_name(name))
			return NULL;
		for (i = 0; name[i] && i < sizeof(cn) - 1; i++)
			cn[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]);
		cn[i] = '\0';
		snprintf(san, sizeof(san), "DNS:%s", cn);
	}
	for (l = g_leaves; l; l = l->next)
		if (!strcmp(l->san, san)) {
			leaf_unlink(l);
			leaf_push_front(l);
			return l->ctx;
		}
	k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	x = k ? make_cert(k, cn, g_ca, g_ca_key, san, 0) : NULL;
	l = calloc(1, sizeof(*l));
	if (!x || !l) {
		EVP_PKEY_free(k);
		X509_free(x);
		free(l);
		return NULL;
	}
	l->ctx = new_server_ctx();
	if (!l->ctx || SSL_CTX_use_certificate(l->ctx, x) != 1 ||
	    SSL_CTX_add1_chain_cert(l->ctx, g_ca) != 1 || SSL_CTX_use_PrivateKey(l->ctx, k) != 1) {
		log_ssl("minting a certificate");
		SSL_CTX_free(l->ctx);
		EVP_PKEY_free(k);
		X509_free(x);
		free(l);
		return NULL;
	}
	EVP_PKEY_free(k);
	X509_free(x);
	snprintf(l->san, sizeof(l->san), "%s", san);
	g_minted++;
	if (g_nleaves == TLS_LEAVES) {
		struct leaf *old = g_leaves_tail;

		leaf_unlink(old);
		SSL_CTX_free(old->ctx);
		free(old);
		g_nleaves--;
	}
	leaf_push_front(l);
	g_nleaves++;
	return l->ctx;
}

static int sni_cb(SSL *ssl, int *al, void *arg)
{
	const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	unsigned char tmp[16];
	SSL_CTX *c;

	if (!name || g_fixed_cert)
		return SSL_TLSEXT_ERR_OK;
	if (!tls_valid_host_name(name) && inet_pton(AF_INET, name, tmp) != 1 &&
	    inet_pton(AF_INET6, name, tmp) != 1) {
		char shown[80];
		size_t i;

		for (i = 0; name[i] && i < sizeof(shown) - 1; i++)
			shown[i] = name[i] >= 0x20 && name[i] < 0x7f ? name[i] : '?';
		shown[i] = '\0';
		g_bad_sni++;
		log_warn("an agent asked for TLS server name \"%s\", which is not a host name; "
			 "handshake refused",
			 shown);
		*al = SSL_AD_UNRECOGNIZED_NAME;
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	}
	c = leaf_ctx(name);
	if (c)
		SSL_set_SSL_CTX(ssl, c);
	return SSL_TLSEXT_ERR_OK;
}

void tls_counters_get(struct tls_counters *c)
{
	c->kept = (uint64_t)g_nleaves;
	c->minted = g_minted;
	c->refused = g_bad_sni;
}

void tls_status(struct jbuf *j, const struct tls_counters *add, int procs)
{
	struct tls_counters c;

	tls_counters_get(&c);
	if (add) {
		c.kept += add->kept;
		c.minted += add->minted;
		c.refused += add->refused;
	}
	jb_key(j, "tls_leaf_certificates");
	jb_obj_open(j);
	jb_kv_uint(j, "kept", c.kept);
	jb_kv_int(j, "limit", TLS_LEAVES * procs); /* each process keeps its own */
	jb_kv_uint(j, "minted", c.minted);
	jb_kv_uint(j, "server_names_refused", c.refused);
	jb_obj_close(j);
}

int tls_init(const char *state_dir, const char *cert, const char *key, int agent_tls)
{
	g_agent_tls = agent_tls;
	g_sess_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	if (!agent_tls)
		return 0;
	g_agent_ctx = new_server_ctx();
	if (!g_agent_ctx)
		return -ENOMEM;
	if (cert) {
		if (SSL_CTX_use_certificate_chain_file(g_agent_ctx, cert) != 1 ||
		    SSL_CTX_use_PrivateKey_file(g_agent_ctx, key ? key : cert, SSL_FILETYPE_PEM) !=
			    1 ||
		    SSL_CTX_check_private_key(g_agent_ctx) != 1) {
			log_ssl(cert);
			return -EINVAL;
		}
		g_fixed_cert = 1;
		return 0;
	}
	if (load_or_make_ca(state_dir))
		return -EINVAL;
	SSL_CTX_set_tlsext_servername_callback(g_agent_ctx, sni_cb);
	return 0;
}

void tls_fini(void)
{
	struct leaf *n;

	for (struct leaf *l = g_leaves; l; l = n) {
		n = l->next;
		SSL_CTX_free(l->ctx);
		free(l);
	}
	g_leaves = g_leaves_tail = NULL;
	g_nleaves = 0;
	SSL_CTX_free(g_agent_ctx);
	g_agent_ctx = NULL;
	EVP_PKEY_free(g_ca_key);
	X509_free(g_ca);
	g_ca_key = NULL;
	g_ca = NULL;
}

int tls_agent_enabled(void)
{
	return g_agent_tls;
}

SSL *tls_agent_new(int fd, const char *dialled_ip)
{
	SSL *ssl = SSL_new(g_agent_ctx);

	if (!ssl)
		return NULL;
	/* Without SNI (an IP address was dialled), the certificate names that address; with
	 * SNI, sni_cb switches to one that names the host. */
	if (!g_fixed_cert && dialled_ip && *dialled_ip) {
		SSL_CTX *c = leaf_ctx(dialled_ip);

		if (c)
			SSL_set_SSL_CTX(ssl, c);
	}
	SSL_set_fd(ssl, fd);
	SSL_set_accept_state(ssl);
	return ssl;
}

SSL *tls_server_new(SSL_CTX *ctx, int fd, const char *sni)
{
	SSL *ssl;

	if (!ctx)
		return NULL;
	ssl = SSL_new(ctx);
	if (!ssl)
		return NULL;
	SSL_set_fd(ssl, fd);
	SSL_set_connect_state(ssl);
	if (sni && *sni) {
		unsigned char tmp[16];

		if (inet_pton(AF_INET, sni, tmp) != 1 && inet_pton(AF_INET6, sni, tmp) != 1)
			SSL_set_tlsext_host_name(ssl, sni);
		if (SSL_CTX_get_verify_mode(ctx) != SSL_VERIFY_NONE) {
			X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);

			if (inet_pton(AF_INET, sni, tmp) == 1 || inet_pton(AF_INET6, sni, tmp) == 1)
				X509_VERIFY_PARAM_set1_ip_asc(vp, sni);
			else
				X509_VERIFY_PARAM_set1_host(vp, sni, 0);
		}
	}
	return ssl;
}

/* Upstream contexts, one per target, rebuilt when the policy changes. */
static SSL_CTX *g_up[POLICY_MAX_TARGETS];
/* In an engine worker, which opens no file: each target's CA as the broker read it (PEM), or
 * NULL; g_ca_given says the worker's contexts take them and nothing from the file system. */
static char *g_ca_pem[POLICY_MAX_TARGETS];
static size_t g_ca_pem_len[POLICY_MAX_TARGETS];
static int g_ca_given;

void tls_upstream_ca_given(int target, const char *pem, size_t len)
{
	g_ca_given = 1;
	if (target < 0 || target >= POLICY_MAX_TARGETS)
		return;
	free(g_ca_pem[target]);
	g_ca_pem[target] = NULL;
	g_ca_pem_len[target] = 0;
	if (len && (g_ca_pem[target] = malloc(len))) {
		memcpy(g_ca_pem[target], pem, len);
		g_ca_pem_len[target] = len;
	}
}

const char *tls_upstream_ca_path(int target)
{
	const struct policy_target *t =
	    target >= 0 && target < hoopd.pol->ntargets ? &hoopd.pol->targets[target] : NULL;

	if (!t || t->upstream_tls < UPSTREAM_TLS_VERIFY_CA)
		return NULL;
	return t->ca_file[0] ? t->ca_file : X509_get_default_cert_file();
}

/* The CA the broker sent, into c's store: 0, or -1. */
static int load_ca_pem(SSL_CTX *c, int target)
{
	X509_STORE *st = SSL_CTX_get_cert_store(c);
	BIO *b;
	X509 *x;
	int n = 0;

	if (target < 0 || target >= POLICY_MAX_TARGETS || !g_ca_pem[target])
		return -1;
	b = BIO_new_mem_buf(g_ca_pem[target], (int)g_ca_pem_len[target]);
	if (!b)
		return -1;
	while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL))) {
		n += X509_STORE_add_cert(st, x) == 1;
		X509_free(x);
	}
	ERR_clear_error(); /* the end of the PEM text */
	BIO_free(b);
	return n ? 0 : -1;
}

static const struct policy_target *target_of(const struct session *s)
{
	return (int)s->o.target_id < hoopd.pol->ntargets ? &hoopd.pol->targets[s->o.target_id] : NULL;
}

void tls_policy_changed(void)
{
	for (int i = 0; i < POLICY_MAX_TARGETS; i++) {
		SSL_CTX_free(g_up[i]); /* sessions keep their own reference */
		g_up[i] = NULL;
	}
}

enum upstream_tls tls_upstream_mode(const struct session *s)
{
	const struct policy_target *t = target_of(s);

	return t ? (enum upstream_tls)t->upstream_tls : UPSTREAM_TLS_DISABLE;
}

SSL_CTX *tls_upstream_ctx(const struct session *s)
{
	const struct policy_target *t = target_of(s);
	int i = (int)s->o.target_id;
	SSL_CTX *c;

	if (!t)
		return NULL;
	if (g_up[i])
		return g_up[i];
	c = SSL_CTX_new(TLS_client_method());
	if (!c)
		return NULL;
	SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
	/* RELEASE_BUFFERS: an idle TLS connection keeps no record buffers (~34 KiB) */
	SSL_CTX_set_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
				SSL_MODE_RELEASE_BUFFERS);
	if (t->upstream_tls >= UPSTREAM_TLS_VERIFY_CA) {
		if (g_ca_given ? load_ca_pem(c, i) != 0
		    : t->ca_file[0] ? SSL_CTX_load_verify_locations(c, t->ca_file, NULL) != 1
				    : SSL_CTX_set_default_verify_paths(c) != 1) {
			log_ssl(t->ca_file[0] ? t->ca_file : "system CA store");
			SSL_CTX_free(c);
			return NULL;
		}
		SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
	} else {
		SSL_CTX_set_verify(c, SSL_VERIFY_NONE, NULL);
	}
	g_up[i] = c;
	return c;
}

/* The name the database's certificate must carry (verify-full), and the SNI we send. */
const char *tls_upstream_sni(const struct session *s)
{
	const struct policy_target *t = target_of(s);
	static char ip[INET6_ADDRSTRLEN];

	if (t && t->tls_server_name[0])
		return t->tls_server_name;
	if (t && t->upstream_tls < UPSTREAM_TLS_VERIFY_FULL)
		return NULL;
	inet_ntop(s->o.orig_family == HOOP_AF_INET ? AF_INET : AF_INET6, s->o.orig_addr, ip,
		  sizeof(ip));
	return ip;
}
