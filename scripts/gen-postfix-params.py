#!/usr/bin/python3
"""Makes src/config/postfix_params.def, the class of every Postfix 3.7 parameter.

Run once (2026-12) to seed the table; since then the .def file is the source
of truth and is edited by hand (flip one word to change a key's class).

The names come from the real Postfix, without installing it:

    apt-get download postfix            # postfix_3.7.11-0+deb12u1_amd64.deb
    dpkg -x postfix_*.deb root
    mkdir cfg && cp root/usr/share/postfix/main.cf.debian cfg/main.cf
    cp root/usr/share/postfix/master.cf.dist cfg/master.cf
    LD_LIBRARY_PATH=root/usr/lib/postfix root/usr/sbin/postconf -c cfg -d \
        | sed 's/ =.*//' | sort -u > data/postfix-3.7-parameters.txt

(With Debian's master.cf, postconf -d also names the per-transport keys
such as relay_destination_concurrency_limit: 1043 names.)

Usage: scripts/gen-postfix-params.py > src/config/postfix_params.def
       scripts/gen-postfix-params.py --check   (every name is in the .def)
"""
import re
import sys
from pathlib import Path

TOP = Path(__file__).resolve().parent.parent
NAMES = (TOP / "data/postfix-3.7-parameters.txt").read_text().split()

# Keys hongyan implements with Postfix's meaning (also in config_keys.c).
OURS = set(re.findall(r'^\s*\{"([A-Za-z0-9_]+)"', (TOP / "src/config/config_keys.c").read_text(), re.M))

TRANSPORTS = ("bsmtp|default|error|ifmail|local|lmtp|maildrop|mailman|relay|retry|"
              "scalemail-backend|smtp|uucp|virtual")
SCHED = ("delivery_slot_cost|delivery_slot_discount|delivery_slot_loan|"
         "destination_concurrency_failed_cohort_limit|destination_concurrency_limit|"
         "destination_concurrency_negative_feedback|destination_concurrency_positive_feedback|"
         "destination_rate_delay|destination_recipient_limit|extra_recipient_limit|"
         "initial_destination_concurrency|minimum_delivery_slots|recipient_limit|"
         "recipient_refill_delay|recipient_refill_limit|time_limit|transport_rate_delay")

# (class, reason id, pattern): the first match wins. The reason texts are in
# config_keys.c (config_postfix_reasons).
RULES = [
    ("UNSUPPORTED", "RESTRICTIONS", r"^smtpd_\w+_restrictions$|^smtpd_restriction_classes$"),
    ("UNSUPPORTED", "POLICY", r"^smtpd_policy_service_"),
    ("UNSUPPORTED", "MILTER", r"milter"),
    ("UNSUPPORTED", "CONTENT", r"(^|_)(header|body)_checks$|^content_filter$|^smtpd_proxy_"
                               r"|^receive_override_options$"),
    ("UNSUPPORTED", "REWRITE", r"canonical_maps$|^canonical_classes$|_canonical_classes$"
                               r"|_generic_maps$|^masquerade_|^always_bcc$|_bcc_maps$"
                               r"|^relocated_maps$|^luser_relay$|^virtual_alias_domains$"
                               r"|^local_recipient_maps$|^relay_recipient_maps$"),
    ("UNSUPPORTED", "TRANSPORT", r"^(default|relay|local|fallback)_transport(_maps)?$"
                                 r"|^mailbox_command|^mailbox_transport_maps$|^home_mailbox$"
                                 r"|^mail_spool_directory$|^forward_path$|_fallback_relay$"
                                 r"|^sender_dependent_default_transport_maps$|^defer_transports$"
                                 r"|^soft_bounce$|^best_mx_transport$|^allow_mail_to_"
                                 r"|^virtual_(uid|gid)_maps$|^virtual_minimum_uid$"),
    ("UNSUPPORTED", "RATE", r"^smtpd_client_\w+_rate_limit$|^smtpd_client_event_limit_exceptions$"),
    ("UNSUPPORTED", "SASL", r"^smtpd_sasl_(type|path|security_options|tls_security_options"
                            r"|local_domain|exceptions_networks|mechanism_filter)$"
                            r"|^smtp_sasl_(type|path|mechanism_filter|tls_security_options"
                            r"|tls_verified_security_options)$"
                            r"|^smtp_sender_dependent_authentication$"),
    ("UNSUPPORTED", "PROXY", r"^smtpd_upstream_proxy_protocol$"),
    ("UNSUPPORTED", "LMTP_TLS", r"^lmtp_(tls_(?!loglevel|session_cache|note_starttls)|sasl_(?!auth_cache)"
                                r"|use_tls|enforce_tls)"),
    ("IGNORED", "FIXED", r"^(2bounce|bounce|delay|error)_notice_recipient$|^notify_classes$"
                         r"|^bounce_(size_limit|template_file)$|^allow_(percent_hack|untrusted_routing)$"
                         r"|^always_add_missing_headers$|^append_at_myorigin$|^cleanup_replace_stray"
                         r"|_delivery_status_filter$|verp_delimiter|^disable_verp_bounces$"
                         r"|^detect_8bit_encoding_header$|^disable_mime_|^dns_ncache_ttl_fix_enable$"
                         r"|^dont_remove$|^double_bounce_sender$|^enable_original_recipient$"
                         r"|^enable_threaded_bounces$|^header_address_token_limit$|^header_from_format$"
                         r"|^hopcount_limit$|^ignore_mx_lookup_error$|^internal_mail_filter_classes$"
                         r"|^line_length_limit$|^mime_(boundary_length|nesting)_limit$"
                         r"|^propagate_unmatched_extensions$|^resolve_|^sendmail_fix_line_endings$"
                         r"|^(smtp|lmtp)_(address_preference|balance_inet_protocols|always_send_ehlo"
                         r"|cname_overrides_servername|connection_reuse_count_limit"
                         r"|defer_if_no_mx_address_found|dns_resolver_options|line_length_limit"
                         r"|mx_session_limit|quote_rfc821_envelope|randomize_addresses|rset_timeout"
                         r"|skip_5xx_greeting|skip_quit_response|send_dummy_mail_auth"
                         r"|sasl_auth_soft_bounce|address_verify_target|assume_final)$"
                         r"|^smtpd_(error_sleep_time|junk_command_limit|noop_commands"
                         r"|recipient_overshoot_limit|soft_error_limit|starttls_timeout"
                         r"|delay_open_until_valid_rcpt|upstream_proxy_timeout)$|^smtputf8_"
                         r"|^strict_|^swap_bangpath$|^undisclosed_recipients_header$"
                         r"|^virtual_alias_\w+_limit$|^queue_minfree$|^disable_vrfy_command$"
                         r"|^tls_(append_default_CA|dane_digests|disable_workarounds|eecdh_"
                         r"|fast_shutdown_enable|legacy_public_key_fingerprints|preempt_cipherlist"
                         r"|ssl_options|wildcard_matches_multiple_labels)"
                         r"|^smtpd_tls_(eecdh_grade|dh1024_param_file|dh512_param_file"
                         r"|fingerprint_digest)$|^smtp_tls_(fingerprint_digest|scert_verifydepth"
                         r"|connection_reuse|block_early_mail_reply)$|^lmtp_"),
    ("IGNORED", "LOG", r"loglevel|^syslog_facility$|^maillog_file_|^debug_peer_|^debugger_command$"
                       r"|^info_log_address_format$|_client_port_logging$"
                       r"|^delay_logging_resolution_limit$|^respectful_logging$|^postlog"
                       r"|^smtpd_tls_received_header$|_note_starttls_offer$"
                       r"|^smtpd_log_access_permit_actions$|^destination_concurrency_feedback_debug$"),
    ("IGNORED", "MASTER", r"^postscreen_|^tlsproxy_|^dnsblog_|^qmqpd_|^master_service_disable$"),
    ("IGNORED", "SCHEDULER", r"^(%s)_(%s)$|^qmgr_|^initial_destination_concurrency$"
                             r"|^default_(process_limit|recipient_limit|extra_recipient_limit)$"
                             % (TRANSPORTS, SCHED)),
    ("IGNORED", "LAYOUT", r"_directory$|_directories$|^(sendmail|mailq|newaliases|openssl)_path$"
                          r"|^setgid_group$|^multi_instance_|^postmulti_|_service_name$"
                          r"|^service_name$|^process_(id|name)$|^tls_config_(file|name)$"),
    ("IGNORED", "PROCESS", r"^daemon_|^ipc_|^max_(idle|use)$|^fork_|^stress$|^trigger_timeout$"
                           r"|^application_event_drain_time$|^berkeley_db_|^lmdb_map_size$"
                           r"|^hash_queue_|^enable_long_queue_ids$|^in_flow_delay$"
                           r"|^service_throttle_time$|_watchdog_timeout$|^known_tcp_ports$"
                           r"|^tcp_windowsize$|^default_database_type$|^anvil_"
                           r"|^connection_cache_|^duplicate_filter_limit$|^stale_lock_time$"
                           r"|^deliver_lock_|^fault_injection_code$|^transport_retry_time$"
                           r"|^queue_file_attribute_count_limit$|^tls_(random|daemon_random)"
                           r"|^tls_(low|medium|high|null|export)_cipherlist$|^confirm_delay_cleared$"
                           r"|^smtpd_history_flush_threshold$|^dnssec_probe$"
                           r"|^(smtp|lmtp)_connection_cache_(on_demand|destinations)$"
                           r"|^(smtp|lmtp)_sasl_auth_cache_|^(smtpd|smtp|lmtp)_tls_session_cache_timeout$"
                           r"|^smtpd_tls_session_cache_database$|^smtpd_tls_always_issue_session_ids$"
                           r"|_per_request_deadline$|_min_data_rate$|_pix_workaround"
                           r"|^lmtp_tls_session_cache_database$|^tls_session_ticket_cipher$"),
    ("IGNORED", "COMPAT", r"^compatibility_level$|^biff$|^helpful_warnings$|_compatibility$"
                          r"|^enable_idna2003_compatibility$|^readme_directory$|^mynetworks_style$"
                          r"|^broken_sasl_auth_clients$|^cyrus_sasl_config_path$"
                          r"|^smtpd_sasl_(service|response_limit)$|^send_cyrus_sasl_authzid$"
                          r"|^mail_release_date$|^alternate_config_directories$"
                          r"|^import_environment$|^export_environment$"),
    ("IGNORED", "NO_LOCAL", r"^local_|^command_|^execution_directory_expansion_filter$"
                            r"|^forward_expansion_filter$|^prepend_delivered_header$"
                            r"|^expand_owner_alias$|^owner_request_special$|^reset_owner_alias$"
                            r"|^require_home_directory$|^strict_mailbox_ownership$"
                            r"|^mailbox_delivery_lock$|^virtual_mailbox_lock$|^frozen_delivered_to$"
                            r"|^sun_mailtool|^default_privs$|^allow_min_user$"
                            r"|^virtual_mailbox_limit$|^biff$"),
    ("IGNORED", "FLUSH", r"^fast_flush_|^authorized_flush_users$|^smtpd_etrn"),
    ("IGNORED", "XCLIENT", r"^smtpd_authorized_(xclient|xforward|verp)_"
                           r"|^smtp_send_xforward_command$|^lmtp_send_xforward_command$"
                           r"|_xforward_timeout$"),
    ("IGNORED", "RESTRICT_PARAM", r"_reject_code$|_defer_code$|^reject_code$|^defer_code$"
                                  r"|_tempfail_action$|^reject_tempfail_action$"
                                  r"|^address_verify_|^unverified_|^maps_rbl_domains$"
                                  r"|^rbl_reply_maps$|^default_rbl_reply$|^permit_mx_backup_networks$"
                                  r"|^smtpd_null_access_lookup_key$|^smtpd_reject_footer"
                                  r"|^smtpd_delay_reject$|^smtpd_helo_required$"
                                  r"|^smtpd_reject_unlisted_|^relay_clientcerts$"
                                  r"|^show_user_unknown_table_name$|^parent_domain_matches_subdomains$"
                                  r"|^smtpd_relay_before_recipient_restrictions$"
                                  r"|^empty_address_|^smtpd_sender_login_maps$"),
]

def classify(name):
    if name in OURS:
        return "IMPLEMENTED", "NONE"
    for cls, reason, pattern in RULES:
        if re.search(pattern, name):
            return cls, reason
    return "UNSUPPORTED", "NOT_IMPLEMENTED"

def main():
    if sys.argv[1:] == ["--check"]:
        text = (TOP / "src/config/postfix_params.def").read_text()
        have = set(re.findall(r'^PF\("([^"]+)"', text, re.M))
        missing = [n for n in NAMES if n not in have]
        print("\n".join(missing))
        return 1 if missing else 0
    print("/*\n * Every Postfix 3.7 parameter (data/postfix-3.7-parameters.txt) and its class:\n"
          " * IMPLEMENTED (in config_keys.c, Postfix's meaning), IGNORED (accepted, not\n"
          " * applicable: `hongyan config` says why) or UNSUPPORTED (refused: ignoring it\n"
          " * would change security or delivery). Seeded by scripts/gen-postfix-params.py;\n"
          " * edit by hand: the class is one word. The reason ids are in config_keys.c.\n */")
    for name in NAMES:
        cls, reason = classify(name)
        print('PF("%s", %s, %s)' % (name, cls, reason))
    return 0

sys.exit(main())
