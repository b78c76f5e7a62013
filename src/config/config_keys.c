/*
 * Every key hongyan reads; see config_keys.h. Keep this list the single
 * source of truth: docs/configuration.md is generated from
 * `hongyan config -d` and the code asks for keys by these names.
 */
#include "config/config_keys.h"

#include <pthread.h>
#include <string.h>

#include "lib/util.h"

const struct config_key config_keys[] = {
    /* Identity (Postfix twins). */
    {"myhostname", NULL, CONFIG_STRING, NULL,
     "this host's fully qualified name (default: from the system; at most 255 octets)"},
    {"mydomain", NULL, CONFIG_STRING, NULL,
     "the domain of this host (default: $myhostname without its first label)"},
    {"myorigin", "$myhostname", CONFIG_STRING, NULL,
     "domain appended to unqualified sender addresses of locally submitted mail; a value that "
     "starts with / names a file whose first line is the domain (Debian's /etc/mailname)"},
    {"append_dot_mydomain", "no", CONFIG_BOOL, NULL,
     "Postfix's; only no (Postfix 3's default) is supported: user@host stays as it is"},
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
    {"relayhost", "", CONFIG_NEXTHOP, NULL,
     "next hop for all remote mail: host, host:port (MX looked up) or [host], [host]:port"},
    {"transport_maps", "", CONFIG_MAPS, NULL,
     "tables mapping recipient domains to transport:nexthop (transport(5))"},
    {"sender_dependent_relayhost_maps", "", CONFIG_MAPS, NULL,
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
    {"alias_maps", "", CONFIG_MAPS, NULL,
     "alias tables for local domains (aliases(5)); Postfix's hash:/etc/aliases is not assumed"},
    {"alias_database", "$alias_maps", CONFIG_MAPS, NULL,
     "alias tables that `hongyan aliases` (newaliases) rebuilds"},
    {"virtual_alias_maps", "", CONFIG_MAPS, NULL,
     "address rewriting tables applied to every recipient (virtual(5))"},
    {"virtual_mailbox_domains", "", CONFIG_LIST, NULL, "further domains delivered locally"},
    {"virtual_mailbox_maps", "", CONFIG_MAPS, NULL,
     "when set, the only valid local recipients; others get 550 5.1.1"},
    {"virtual_mailbox_base", "$data_directory/mail", CONFIG_STRING, NULL,
     "Maildir root: BASE/DOMAIN/LOCALPART/"},
    {"recipient_delimiter", "", CONFIG_STRING, NULL,
     "characters that separate a local part from its extension (user+ext)"},

    /* Files and privileges. */
    {"data_directory", NULL, CONFIG_STRING, NULL,
     "where hongyan keeps its state (/var/lib/hongyan; ./hongyan-data for the embedded default; at "
     "most 1023 octets)"},
    {"queue_directory", "$data_directory/queue", CONFIG_STRING, NULL, "the spool"},
    {"mail_owner", "hongyan", CONFIG_STRING, NULL,
     "the unprivileged user the server runs as once started by root"},
    {"keeper_user", "hongyan-keys", CONFIG_STRING, NULL,
     "user (with its own group) that alone reads the TLS and DKIM private keys and the users file"},
    {"setgid_group", "hongyan-drop", CONFIG_STRING, NULL,
     "the group of maildrop/ and public/, which hongyan-postdrop is setgid to (local submission)"},
    {"authorized_submit_users", "static:anyone", CONFIG_LIST, NULL,
     "local users who may submit mail with sendmail: names, !name, type:table, /file; "
     "static:anyone for all, empty for none (root and mail_owner always may)"},
    {"authorized_flush_users", "static:anyone", CONFIG_LIST, NULL,
     "local users who may flush the queue (sendmail -q), as authorized_submit_users"},
    {"maillog_file", "", CONFIG_STRING, NULL, "a file to write the mail log to, besides stderr"},
    {"syslog_name", "hongyan", CONFIG_STRING, NULL,
     "the first part of the program name in log lines (NAME/smtpd[PID]); postfix makes a plain "
     "pflogsumm read the log"},
    {"delay_logging_resolution_limit", "2", CONFIG_INT, "6",
     "decimals at most in delay= and delays= of the delivery log (0 to 6; two significant digits "
     "are shown either way)"},

    /* Listeners (hongyan's own). */
    {"smtpd_listen", "127.0.0.1:2525", CONFIG_LISTEN, NULL,
     "addresses for inbound SMTP (MX traffic); when not set but inet_interfaces or inet_protocols "
     "is, port 25 on those"},
    {"inet_interfaces", "all", CONFIG_LIST, NULL,
     "Postfix's: all, loopback-only or addresses; port 25 on these becomes smtpd_listen when "
     "smtpd_listen is not set"},
    {"inet_protocols", "all", CONFIG_ENUM_LIST, "all ipv4 ipv6",
     "Postfix's: which address families inet_interfaces yields (all, ipv4, ipv6)"},
    {"submission_listen", "127.0.0.1:2587", CONFIG_LISTEN, NULL,
     "addresses for STARTTLS submission (RFC 6409); AUTH required to relay"},
    {"smtps_listen", "", CONFIG_LISTEN, NULL, "addresses for implicit-TLS submission (RFC 8314)"},
    {"metrics_listen", "", CONFIG_LISTEN, NULL,
     "host:port for GET /metrics (Prometheus) and GET / (status page); empty: off. Another "
     "address than loopback exposes queue data to whoever reaches it"},

    /* Server limits. */
    {"message_size_limit", "10240000", CONFIG_INT, NULL, "largest message accepted, in bytes"},
    {"header_size_limit", "102400", CONFIG_INT, NULL, "largest header block accepted, in bytes"},
    {"mailbox_size_limit", "51200000", CONFIG_INT, NULL,
     "largest message written to a Maildir, in bytes (0: no limit); not below message_size_limit"},
    {"queue_minfree", "0", CONFIG_INT, NULL,
     "free bytes the queue file system needs for MAIL FROM (0: 1.5 x message_size_limit)"},
    {"smtpd_recipient_limit", "1000", CONFIG_INT, NULL, "recipients per message"},
    {"smtpd_recipient_overshoot_limit", "1000", CONFIG_INT, NULL,
     "recipients beyond smtpd_recipient_limit refused without counting as errors"},
    {"smtpd_peername_lookup", "yes", CONFIG_BOOL, NULL,
     "look up the client's name (PTR, then forward-confirmed) before the greeting"},
    {"smtpd_timeout", "300s", CONFIG_TIME, "s", "idle time before a session is closed"},
    {"smtpd_session_timeout", "3600s", CONFIG_TIME, "s", "longest a session may last in total"},
    {"smtpd_hard_error_limit", "20", CONFIG_INT, NULL, "errors in a session before it is closed"},
    {"smtpd_client_connection_count_limit", "50", CONFIG_INT, NULL,
     "simultaneous sessions per client address"},
    {"smtpd_client_connection_limit", "10000", CONFIG_INT, NULL, "simultaneous sessions in total"},
    {"smtpd_client_ipv6_prefix_length", "64", CONFIG_INT, "128",
     "IPv6 clients count against per-client limits (connections, rates, AUTH failures) by this "
     "prefix, as one host owns a /64 (Postfix 3.9's default is 84); read when smtpd starts"},
    {"smtpd_inbound_memory_limit", "268435456", CONFIG_INT, NULL,
     "bytes of messages held in memory for the SPF/DKIM/DMARC checks, all sessions together; "
     "beyond it a message waits for its checks in a file"},

    /* SMTP server restrictions (Postfix's access restrictions; docs/smtpd.md "Restrictions"). */
    {"smtpd_client_restrictions", "", CONFIG_LIST, NULL,
     "restrictions on the client's address and name (with smtpd_delay_reject: applied at RCPT)"},
    {"smtpd_helo_restrictions", "", CONFIG_LIST, NULL, "restrictions on the HELO/EHLO name"},
    {"smtpd_sender_restrictions", "", CONFIG_LIST, NULL, "restrictions on the MAIL FROM address"},
    {"smtpd_relay_restrictions",
     "permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination", CONFIG_LIST, NULL,
     "relay control at RCPT, before smtpd_recipient_restrictions"},
    {"smtpd_recipient_restrictions", "", CONFIG_LIST, NULL,
     "restrictions on each RCPT TO address (spam blocking)"},
    {"smtpd_data_restrictions", "", CONFIG_LIST, NULL, "restrictions applied at DATA"},
    {"smtpd_end_of_data_restrictions", "", CONFIG_LIST, NULL,
     "restrictions applied after the message, before it is queued"},
    {"smtpd_etrn_restrictions", "", CONFIG_LIST, NULL,
     "restrictions on ETRN (ETRN is not offered: checked only, see docs/smtpd.md)"},
    {"smtpd_delay_reject", "yes", CONFIG_BOOL, NULL,
     "give client, HELO and sender rejections at RCPT, as Postfix does"},
    {"smtpd_helo_required", "no", CONFIG_BOOL, NULL, "refuse MAIL until the client sent HELO/EHLO"},
    {"smtpd_restriction_classes", "", CONFIG_LIST, NULL,
     "names of keys defined in main.cf that hold a restriction list (access map results)"},
    {"rbl_reply_maps", "", CONFIG_LIST, NULL,
     "tables from a DNS list domain (d or d=addr) to a reply template, as default_rbl_reply"},
    {"default_rbl_reply",
     "$rbl_code Service unavailable; $rbl_class [$rbl_what] blocked using "
     "$rbl_domain${rbl_reason?; $rbl_reason}",
     CONFIG_TEMPLATE, NULL,
     "reply for a DNS list hit; $rbl_code $rbl_domain $rbl_reason $rbl_txt $rbl_what $rbl_class"},
    {"maps_rbl_reject_code", "554", CONFIG_INT, NULL, "$rbl_code: the code of a DNS list reply"},
    {"access_map_reject_code", "554", CONFIG_INT, NULL,
     "code for REJECT in an access table or policy reply"},
    {"access_map_defer_code", "450", CONFIG_INT, NULL,
     "code for DEFER in an access table or policy reply"},
    {"reject_code", "554", CONFIG_INT, NULL, "code for the reject restriction"},
    {"defer_code", "450", CONFIG_INT, NULL, "code for the defer restriction"},
    {"relay_domains_reject_code", "554", CONFIG_INT, NULL,
     "code for reject_unauth_destination (defer_unauth_destination: this minus 100)"},
    {"unknown_address_reject_code", "450", CONFIG_INT, NULL,
     "code for reject_unknown_sender_domain / _recipient_domain when the domain does not exist"},
    {"unknown_client_reject_code", "450", CONFIG_INT, NULL,
     "code for reject_unknown_client_hostname / _reverse_client_hostname"},
    {"unknown_hostname_reject_code", "450", CONFIG_INT, NULL,
     "code for reject_unknown_helo_hostname"},
    {"invalid_hostname_reject_code", "501", CONFIG_INT, NULL,
     "code for reject_invalid_helo_hostname"},
    {"non_fqdn_reject_code", "504", CONFIG_INT, NULL,
     "code for the reject_non_fqdn_* restrictions"},
    {"unlisted_recipient_reject_code", "550", CONFIG_INT, NULL,
     "code for reject_unlisted_recipient / _sender"},
    {"smtpd_policy_service_max_idle", "300s", CONFIG_TIME, "s",
     "how long an idle policy server connection is kept"},
    {"smtpd_policy_service_max_ttl", "1000s", CONFIG_TIME, "s",
     "how long a policy server connection is used at most"},
    {"smtpd_policy_service_timeout", "100s", CONFIG_TIME, "s",
     "time allowed to connect, send the request and read the reply"},
    {"smtpd_policy_service_default_action", "451 4.3.5 Server configuration problem", CONFIG_STRING,
     NULL, "the action when the policy server cannot be reached or answers badly"},
    {"smtpd_policy_service_request_limit", "0", CONFIG_INT, NULL,
     "requests per policy server connection (0: no limit)"},
    {"smtpd_policy_service_try_limit", "2", CONFIG_INT, NULL,
     "attempts per policy request before the default action"},
    {"smtpd_policy_service_retry_delay", "1s", CONFIG_TIME, "s",
     "pause between attempts of a policy request"},
    {"smtpd_policy_service_policy_context", "", CONFIG_STRING, NULL,
     "sent as policy_context= in every policy request"},
    {"anvil_rate_time_unit", "60s", CONFIG_TIME, "s", "the time unit of the rate limits below"},
    {"smtpd_client_connection_rate_limit", "0", CONFIG_INT, NULL,
     "connections per client and time unit (0: no limit)"},
    {"smtpd_client_message_rate_limit", "0", CONFIG_INT, NULL,
     "MAIL commands per client and time unit (0: no limit)"},
    {"smtpd_client_recipient_rate_limit", "0", CONFIG_INT, NULL,
     "RCPT commands per client and time unit (0: no limit)"},
    {"smtpd_client_new_tls_session_rate_limit", "0", CONFIG_INT, NULL,
     "STARTTLS handshakes per client and time unit (0: no limit)"},
    {"smtpd_client_auth_rate_limit", "0", CONFIG_INT, NULL,
     "AUTH commands per client and time unit (0: no limit)"},
    {"smtpd_client_event_limit_exceptions", "$mynetworks", CONFIG_LIST, NULL,
     "clients the connection count and rate limits never apply to"},
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
    {"smtpd_sender_login_maps", "", CONFIG_MAPS, NULL,
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
    {"smtpd_sasl_global_failure_limit", "1000", CONFIG_INT, NULL,
     "failed AUTH attempts from all clients together within smtpd_sasl_failure_window before AUTH "
     "answers 454 to everyone (0: never)"},

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
     "parallel deliveries per next hop (Maildir: all local mailboxes count as one)"},
    {"default_process_limit", "100", CONFIG_INT, NULL,
     "parallel deliveries in all, over every next hop"},
    {"qmgr_message_active_limit", "20000", CONFIG_INT, NULL,
     "messages the queue manager holds in its per-next-hop lines at once"},

    /* SMTP client. */
    {"smtp_connect_timeout", "30s", CONFIG_TIME, "s", "time allowed to connect to a remote server"},
    {"smtp_sasl_auth_enable", "no", CONFIG_BOOL, NULL,
     "log in to the next hop with smtp_sasl_password_maps"},
    {"smtp_sasl_password_maps", "", CONFIG_MAPS, NULL,
     "tables of host -> user:password for AUTH to the next hop; their files are opened by "
     "the root supervisor (keep them root:root 0600)"},
    {"smtp_sasl_security_options", "noplaintext, noanonymous", CONFIG_ENUM_LIST,
     "noplaintext noanonymous noactive nodictionary mutual_auth",
     "mechanism restrictions for AUTH to the next hop"},
    {"smtp_tls_policy_maps", "", CONFIG_MAPS, NULL,
     "tables of next hop -> TLS level and attributes (match=) overriding smtp_tls_security_level"},
    {"smtp_tls_security_level", "may", CONFIG_ENUM, "none may encrypt verify secure dane",
     "TLS when delivering (Postfix's Debian default, may)"},
    {"smtp_dns_support_level", "", CONFIG_ENUM_LIST, "disabled enabled dnssec",
     "Postfix's: dnssec (or empty) lets smtp_tls_security_level = dane validate; enabled or "
     "disabled make dane act as may"},
    {"smtp_tls_CAfile", "", CONFIG_STRING, NULL,
     "CA certificates for verify/secure (empty: the system's)"},
    {"smtp_tls_CApath", "", CONFIG_STRING, NULL,
     "a directory of hashed CA certificates (c_rehash) for verify/secure, besides smtp_tls_CAfile"},
    {"smtp_tls_session_cache_database", "", CONFIG_TABLE, NULL,
     "turns on the client's TLS session cache (resumption per next hop); the sessions stay in the "
     "delivery process's memory, the type:file named is not written"},
    {"smtp_tls_session_cache_timeout", "3600s", CONFIG_TIME, "s",
     "how long a cached client TLS session is offered for resumption"},
    {"smtp_tls_wrappermode", "no", CONFIG_BOOL, NULL,
     "TLS from the first byte, for port-465 relays"},
    {"smtp_mta_sts", "yes", CONFIG_BOOL, NULL,
     "hongyan's own: apply the recipient domain's MTA-STS policy (RFC 8461) to delivery by MX"},
    {"smtp_tls_reporting", "yes", CONFIG_BOOL, NULL,
     "hongyan's own: record TLS sessions of delivery by MX and send the daily TLS reports "
     "(RFC 8460) to domains that publish _smtp._tls"},
    {"smtp_tls_report_sender", "postmaster@$mydomain", CONFIG_STRING, NULL,
     "hongyan's own: From: and envelope sender of the TLS reports hongyan sends"},
    {"smtp_mta_sts_port", "443", CONFIG_INT, NULL,
     "hongyan's own, for tests: the HTTPS port MTA-STS policies are fetched from (RFC 8461: 443)"},
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
    {"dns_resolver", "", CONFIG_NEXTHOP, NULL,
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
    {"smtpd_dmarc_reporting", "no", CONFIG_BOOL, NULL,
     "hongyan's own: record inbound DMARC evaluations and send daily aggregate reports "
     "(RFC 7489 7.2) to the rua= of the domains evaluated"},
    {"dmarc_report_sender", "postmaster@$mydomain", CONFIG_STRING, NULL,
     "hongyan's own: From: and envelope sender of the DMARC aggregate reports"},
    {"authserv_id", "$myhostname", CONFIG_STRING, NULL,
     "the id in Authentication-Results headers (at most 255 octets)"},

    /* Milters (Postfix twins). */
    {"smtpd_milters", "", CONFIG_STRING, NULL,
     "mail filters for SMTP mail: inet:host:port, unix:/path, or { endpoint, setting=value... }"},
    {"non_smtpd_milters", "", CONFIG_STRING, NULL,
     "mail filters for sendmail (pickup) mail, same syntax as smtpd_milters"},
    {"milter_protocol", "6", CONFIG_STRING, NULL,
     "milter protocol version sent to filters (2, 3, 4 or 6; may add no_header_reply)"},
    {"milter_default_action", "tempfail", CONFIG_ENUM, "tempfail accept reject quarantine",
     "what a filter that is down, times out or misbehaves stands for"},
    {"milter_connect_timeout", "30s", CONFIG_TIME, "s",
     "time to connect to a filter and negotiate"},
    {"milter_command_timeout", "30s", CONFIG_TIME, "s",
     "time a filter has to answer CONNECT, HELO, MAIL, RCPT, DATA"},
    {"milter_content_timeout", "300s", CONFIG_TIME, "s",
     "time a filter has to answer a header, the body or the end of message"},
    {"milter_connect_macros", "j {daemon_name} {daemon_addr} v _", CONFIG_STRING, NULL,
     "macros sent with the connect event"},
    {"milter_helo_macros", "{tls_version} {cipher} {cipher_bits} {cert_subject} {cert_issuer}",
     CONFIG_STRING, NULL, "macros sent with HELO/EHLO"},
    {"milter_mail_macros",
     "i {auth_type} {auth_authen} {auth_author} {mail_addr} {mail_host} "
     "{mail_mailer}",
     CONFIG_STRING, NULL, "macros sent with MAIL FROM"},
    {"milter_rcpt_macros", "i {rcpt_addr} {rcpt_host} {rcpt_mailer}", CONFIG_STRING, NULL,
     "macros sent with RCPT TO"},
    {"milter_data_macros", "i", CONFIG_STRING, NULL, "macros sent with DATA"},
    {"milter_end_of_header_macros", "i", CONFIG_STRING, NULL,
     "macros sent with the headers and their end"},
    {"milter_end_of_data_macros", "i", CONFIG_STRING, NULL,
     "macros sent with the body and the end of message"},
    {"milter_macro_daemon_name", "$myhostname", CONFIG_STRING, NULL, "the {daemon_name} macro"},
    {"milter_macro_v", "$mail_name $mail_version", CONFIG_STRING, NULL, "the v macro"},

    /* doctor. */
    {"doctor_public_address", "", CONFIG_STRING, NULL,
     "the address the world sees, for a host behind NAT"},
};

const size_t config_key_count = sizeof config_keys / sizeof config_keys[0];

/*
 * The table's indexes by the hash of their names (open addressing, at most
 * half full): config_get() runs for every message on the loop and the
 * work-queue threads, about forty times per session. A walk over the whole
 * table with strcmp was a few percent of the worker's CPU; a binary search
 * (nine strcmp, mostly deep into a shared "smtpd_" prefix) still 1.3% of
 * smtpd's. Built once, by whichever thread asks first; a slot holds index + 1.
 */
#define CONFIG_KEY_SLOTS 2048
static unsigned short config_key_slots[CONFIG_KEY_SLOTS];
static pthread_once_t config_key_slots_once = PTHREAD_ONCE_INIT;

static void config_key_index_build(void)
{
    _Static_assert(sizeof config_keys / sizeof config_keys[0] <= CONFIG_KEY_SLOTS / 2,
                   "the key table outgrew its hash index");
    for (size_t i = 0; i < config_key_count; i++) {
        unsigned slot = hash_str(config_keys[i].name) & (CONFIG_KEY_SLOTS - 1);
        while (config_key_slots[slot] != 0)
            slot = (slot + 1) & (CONFIG_KEY_SLOTS - 1);
        config_key_slots[slot] = (unsigned short)(i + 1);
    }
}

int config_key_index(const char *name)
{
    pthread_once(&config_key_slots_once, config_key_index_build);
    unsigned slot = hash_str(name) & (CONFIG_KEY_SLOTS - 1);
    for (; config_key_slots[slot] != 0; slot = (slot + 1) & (CONFIG_KEY_SLOTS - 1)) {
        int i = config_key_slots[slot] - 1;
        if (strcmp(config_keys[i].name, name) == 0)
            return i;
    }
    return -1;
}
