/*
 * Every key hongyan reads; see config_keys.h. Keep this list the single
 * source of truth: docs/configuration.md is generated from
 * `hongyan config -d` and the code asks for keys by these names.
 */
#include "config/config_keys.h"

#include <string.h>

const struct config_key config_keys[] = {
    /* Identity (Postfix twins). */
    {"myhostname", NULL, CONFIG_STRING, NULL,
     "this host's fully qualified name (default: from the system)"},
    {"mydomain", NULL, CONFIG_STRING, NULL,
     "the domain of this host (default: $myhostname without its first label)"},
    {"myorigin", "$myhostname", CONFIG_STRING, NULL,
     "domain appended to unqualified sender addresses of locally submitted mail"},
    {"mydestination", "$myhostname, localhost.$mydomain, localhost", CONFIG_LIST, NULL,
     "domains delivered locally to Maildir"},
    {"mynetworks", NULL, CONFIG_LIST, NULL,
     "client networks allowed to relay without AUTH (default: this host's own addresses)"},
    {"relay_domains", "", CONFIG_LIST, NULL,
     "other domains accepted from anyone and relayed onward"},
    {"mail_name", "hongyan", CONFIG_STRING, NULL,
     "the name in the SMTP greeting and Received headers"},
    {"smtpd_banner", "$myhostname ESMTP $mail_name", CONFIG_STRING, NULL,
     "text after 220 in the greeting"},
    {"mail_version", NULL, CONFIG_READONLY, NULL, "the version of this program (read-only)"},

    /* Routing. */
    {"relayhost", "", CONFIG_STRING, NULL,
     "next hop for all remote mail: host, host:port (MX looked up) or [host], [host]:port"},
    {"transport_maps", "", CONFIG_LIST, NULL,
     "tables mapping recipient domains to transport:nexthop (transport(5))"},
    {"sender_dependent_relayhost_maps", "", CONFIG_LIST, NULL,
     "tables mapping a sender or @domain to a relayhost"},
    {"smtp_tcp_port", "25", CONFIG_INT, NULL, "TCP port for delivery by MX"},
    {"smtp_helo_name", "$myhostname", CONFIG_STRING, NULL,
     "the name sent in EHLO/HELO when delivering"},
    {"mailbox_transport", "", CONFIG_STRING, NULL,
     "transport:nexthop for mydestination recipients, e.g. lmtp:unix:/run/dovecot/lmtp "
     "(empty: hongyan's own Maildir delivery)"},
    {"virtual_transport", "", CONFIG_STRING, NULL,
     "transport:nexthop for virtual_mailbox_domains recipients, e.g. "
     "lmtp:unix:/run/dovecot/lmtp (empty: hongyan's own Maildir delivery)"},
    {"lmtp_tcp_port", "24", CONFIG_INT, NULL, "TCP port for an LMTP next hop that names none"},
    {"lmtp_lhlo_name", "$myhostname", CONFIG_STRING, NULL,
     "the name sent in LHLO when delivering by LMTP"},
    {"lmtp_connect_timeout", "0s", CONFIG_TIME, "s",
     "time allowed to connect to an LMTP server (0: the system's limit)"},
    {"lmtp_lhlo_timeout", "300s", CONFIG_TIME, "s",
     "time allowed for the LMTP greeting and the LHLO reply"},
    {"lmtp_mail_timeout", "300s", CONFIG_TIME, "s", "time allowed for the LMTP MAIL FROM reply"},
    {"lmtp_rcpt_timeout", "300s", CONFIG_TIME, "s", "time allowed for each LMTP RCPT TO reply"},
    {"lmtp_data_init_timeout", "120s", CONFIG_TIME, "s", "time allowed for the LMTP DATA reply"},
    {"lmtp_data_xfer_timeout", "180s", CONFIG_TIME, "s",
     "time allowed for each write of LMTP message data"},
    {"lmtp_data_done_timeout", "600s", CONFIG_TIME, "s",
     "time allowed for each per-recipient reply after the final dot (RFC 2033 4.2)"},
    {"lmtp_quit_timeout", "300s", CONFIG_TIME, "s", "time allowed for the LMTP QUIT reply"},

    /* Addresses and mailboxes. */
    {"alias_maps", "", CONFIG_LIST, NULL,
     "alias tables for local domains (aliases(5)); Postfix's hash:/etc/aliases is not assumed"},
    {"alias_database", "$alias_maps", CONFIG_LIST, NULL,
     "alias tables that `hongyan aliases` (newaliases) rebuilds"},
    {"virtual_alias_maps", "", CONFIG_LIST, NULL,
     "address rewriting tables applied to every recipient (virtual(5))"},
    {"virtual_mailbox_domains", "", CONFIG_LIST, NULL, "further domains delivered locally"},
    {"virtual_mailbox_maps", "", CONFIG_LIST, NULL,
     "when set, the only valid local recipients; others get 550 5.1.1"},
    {"virtual_mailbox_base", "$data_directory/mail", CONFIG_STRING, NULL,
     "Maildir root: BASE/DOMAIN/LOCALPART/"},
    {"recipient_delimiter", "", CONFIG_STRING, NULL,
     "characters that separate a local part from its extension (user+ext)"},

    /* Files and privileges. */
    {"data_directory", NULL, CONFIG_STRING, NULL,
     "where hongyan keeps its state (/var/lib/hongyan; ./hongyan-data for the embedded default)"},
    {"queue_directory", "$data_directory/queue", CONFIG_STRING, NULL, "the spool"},
    {"mail_owner", "hongyan", CONFIG_STRING, NULL,
     "the unprivileged user the server runs as once started by root"},
    {"maillog_file", "", CONFIG_STRING, NULL, "a file to write the mail log to, besides stderr"},

    /* Listeners (hongyan's own). */
    {"smtpd_listen", "127.0.0.1:2525", CONFIG_LIST, NULL,
     "addresses for inbound SMTP (MX traffic)"},
    {"submission_listen", "127.0.0.1:2587", CONFIG_LIST, NULL,
     "addresses for STARTTLS submission (RFC 6409); AUTH required to relay"},
    {"smtps_listen", "", CONFIG_LIST, NULL, "addresses for implicit-TLS submission (RFC 8314)"},
    {"metrics_listen", "", CONFIG_LIST, NULL,
     "host:port for GET /metrics (Prometheus) and GET / (status page); empty: off. Another "
     "address than loopback exposes queue data to whoever reaches it"},

    /* Server limits. */
    {"message_size_limit", "10240000", CONFIG_INT, NULL, "largest message accepted, in bytes"},
    {"header_size_limit", "102400", CONFIG_INT, NULL, "largest header block accepted, in bytes"},
    {"smtpd_recipient_limit", "1000", CONFIG_INT, NULL, "recipients per message"},
    {"smtpd_peername_lookup", "yes", CONFIG_BOOL, NULL,
     "look up the client's name (PTR, then forward-confirmed) before the greeting"},
    {"smtpd_timeout", "300s", CONFIG_TIME, "s", "idle time before a session is closed"},
    {"smtpd_session_timeout", "3600s", CONFIG_TIME, "s", "longest a session may last in total"},
    {"smtpd_hard_error_limit", "20", CONFIG_INT, NULL, "errors in a session before it is closed"},
    {"smtpd_client_connection_count_limit", "50", CONFIG_INT, NULL,
     "simultaneous sessions per client address"},
    {"smtpd_client_connection_limit", "10000", CONFIG_INT, NULL, "simultaneous sessions in total"},
    {"smtpd_upstream_proxy_protocol", "", CONFIG_ENUM_LIST, "haproxy",
     "haproxy: every SMTP listener expects a PROXY protocol v1 or v2 header first (a load "
     "balancer in front) and takes the client's address from it; empty: off"},
    {"smtpd_upstream_proxy_timeout", "5s", CONFIG_TIME, "s",
     "time allowed for the PROXY header; without one the connection is closed, no greeting"},

    /* Server TLS and AUTH. */
    {"smtpd_tls_cert_file", "", CONFIG_STRING, NULL,
     "server certificate chain (PEM); empty: a self-signed one under $data_directory/tls"},
    {"smtpd_tls_key_file", "$smtpd_tls_cert_file", CONFIG_STRING, NULL, "server private key (PEM)"},
    {"smtpd_tls_security_level", "may", CONFIG_ENUM, "none may encrypt",
     "STARTTLS on smtpd_listen: none, may (offered), encrypt (required)"},
    {"smtpd_tls_auth_only", "yes", CONFIG_BOOL, NULL,
     "offer AUTH only over TLS (default yes, unlike Postfix)"},
    {"smtpd_sasl_auth_enable", "no", CONFIG_BOOL, NULL, "offer AUTH on smtpd_listen too"},
    {"smtpd_sasl_users", "$data_directory/users", CONFIG_STRING, NULL,
     "user:crypt-hash lines for SMTP AUTH"},
    {"smtpd_sender_login_maps", "", CONFIG_LIST, NULL,
     "which envelope senders each authenticated user may use"},
    {"smtpd_sasl_authenticated_header", "no", CONFIG_BOOL, NULL,
     "name the authenticated user in the Received header"},
    {"smtpd_sasl_failure_limit", "10", CONFIG_INT, NULL,
     "failed AUTH attempts from one client address within smtpd_sasl_failure_window before it is "
     "refused (0: never)"},
    {"smtpd_sasl_failure_window", "10m", CONFIG_TIME, "s",
     "how long a failed AUTH attempt counts against its client address"},
    {"smtpd_sasl_failure_delay", "1s", CONFIG_TIME, "s",
     "wait before the next AUTH check after a failure from the same address; doubles per failure "
     "up to 32 times"},

    /* Queue and retries. */
    {"maximal_queue_lifetime", "5d", CONFIG_TIME, "d",
     "how long a message may stay deferred before it bounces"},
    {"bounce_queue_lifetime", "5d", CONFIG_TIME, "d", "the same for bounces"},
    {"minimal_backoff_time", "300s", CONFIG_TIME, "s",
     "shortest wait before retrying a deferred message"},
    {"maximal_backoff_time", "4000s", CONFIG_TIME, "s",
     "longest wait before retrying a deferred message"},
    {"queue_run_delay", "300s", CONFIG_TIME, "s", "how often the deferred queue is scanned"},
    {"delay_warning_time", "0h", CONFIG_TIME, "h",
     "send a delay notice after this long (0: never)"},
    {"default_destination_concurrency_limit", "20", CONFIG_INT, NULL,
     "parallel deliveries per destination"},

    /* SMTP client. */
    {"smtp_connect_timeout", "30s", CONFIG_TIME, "s", "time allowed to connect to a remote server"},
    {"smtp_sasl_auth_enable", "no", CONFIG_BOOL, NULL,
     "log in to the next hop with smtp_sasl_password_maps"},
    {"smtp_sasl_password_maps", "", CONFIG_LIST, NULL,
     "tables of host -> user:password for AUTH to the next hop"},
    {"smtp_sasl_security_options", "noplaintext, noanonymous", CONFIG_ENUM_LIST,
     "noplaintext noanonymous noactive nodictionary mutual_auth",
     "mechanism restrictions for AUTH to the next hop"},
    {"smtp_tls_policy_maps", "", CONFIG_LIST, NULL,
     "tables of next hop -> TLS level and attributes (match=) overriding smtp_tls_security_level"},
    {"smtp_tls_security_level", "may", CONFIG_ENUM, "none may encrypt verify secure dane",
     "TLS when delivering (Postfix's Debian default, may)"},
    {"smtp_dns_support_level", "", CONFIG_ENUM_LIST, "disabled enabled dnssec",
     "Postfix's: dnssec (or empty) lets smtp_tls_security_level = dane validate; enabled or "
     "disabled make dane act as may"},
    {"smtp_tls_CAfile", "", CONFIG_STRING, NULL,
     "CA certificates for verify/secure (empty: the system's)"},
    {"smtp_tls_wrappermode", "no", CONFIG_BOOL, NULL,
     "TLS from the first byte, for port-465 relays"},
    {"smtp_helo_timeout", "300s", CONFIG_TIME, "s",
     "time allowed for the greeting and the EHLO/HELO reply"},
    {"smtp_starttls_timeout", "300s", CONFIG_TIME, "s",
     "time allowed for the STARTTLS reply and the TLS handshake"},
    {"smtp_mail_timeout", "300s", CONFIG_TIME, "s", "time allowed for the MAIL FROM reply"},
    {"smtp_rcpt_timeout", "300s", CONFIG_TIME, "s", "time allowed for each RCPT TO reply"},
    {"smtp_data_init_timeout", "120s", CONFIG_TIME, "s", "time allowed for the DATA reply"},
    {"smtp_data_xfer_timeout", "180s", CONFIG_TIME, "s",
     "time allowed for the server to take each part of the message"},
    {"smtp_data_done_timeout", "600s", CONFIG_TIME, "s",
     "time allowed for the reply to the final dot"},
    {"smtp_quit_timeout", "300s", CONFIG_TIME, "s", "time allowed for the QUIT reply"},
    {"smtp_mx_address_limit", "5", CONFIG_INT, NULL,
     "server addresses tried per delivery (0: no limit)"},
    {"smtp_connection_cache_time_limit", "2s", CONFIG_TIME, "s",
     "how long an idle connection is kept for the next message to the same next hop"},
    {"smtp_connection_reuse_time_limit", "300s", CONFIG_TIME, "s",
     "how long one connection may be reused in total"},
    {"smtp_destination_concurrency_limit", "$default_destination_concurrency_limit", CONFIG_INT,
     NULL, "parallel SMTP connections per next hop"},

    /* DNS. */
    {"dns_resolver", "", CONFIG_STRING, NULL,
     "host[:port] of a DNS server to ask instead of the system's"},
    {"dnssec_trust_anchor_file", "/usr/share/dns/root.key", CONFIG_STRING, NULL,
     "DNSSEC trust anchor (DS or DNSKEY lines) for smtp_tls_security_level = dane"},

    /* Mail authentication (hongyan's own). */
    {"dkim_domains", "$mydomain", CONFIG_LIST, NULL,
     "sign mail whose From: domain is one of these or a subdomain"},
    {"dkim_selector", "mail", CONFIG_STRING, NULL, "selector of the first key `dkim keygen` makes"},
    {"dkim_algorithm", "rsa", CONFIG_ENUM_LIST, "rsa ed25519",
     "algorithms `dkim keygen` makes keys for"},
    {"dkim_key_directory", "$data_directory/dkim", CONFIG_STRING, NULL,
     "signing keys at DIR/DOMAIN/SELECTOR.pem"},
    {"smtpd_spf_policy", "tag", CONFIG_ENUM, "tag reject",
     "SPF on inbound mail: tag (Authentication-Results) or reject"},
    {"smtpd_dkim_verify", "yes", CONFIG_BOOL, NULL, "verify DKIM signatures on inbound mail"},
    {"smtpd_dmarc_policy", "tag", CONFIG_ENUM, "tag reject",
     "DMARC on inbound mail: tag or reject (p=reject domains)"},
    {"authserv_id", "$myhostname", CONFIG_STRING, NULL, "the id in Authentication-Results headers"},

    /* doctor. */
    {"doctor_public_address", "", CONFIG_STRING, NULL,
     "the address the world sees, for a host behind NAT"},
};

const size_t config_key_count = sizeof config_keys / sizeof config_keys[0];

int config_key_index(const char *name)
{
    for (size_t i = 0; i < config_key_count; i++)
        if (strcmp(config_keys[i].name, name) == 0)
            return (int)i;
    return -1;
}
