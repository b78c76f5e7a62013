/*
 * hongyan doctor [DOMAIN]: checks the domain's DNS and network set-up as
 * SPEC.md's doctor section lists it (A/AAAA, MX, PTR/FCrDNS, SPF evaluated,
 * DKIM against the local keys, DMARC, outbound port 25 or the relay), one
 * line per check, then the zone-file lines to publish. --json for machines.
 */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/doctor.h"
#include "cli/doctor_int.h"
#include "config/config.h"
#include "deliver/route.h"
#include "dns/dns.h"
#include "lib/dnsname.h"
#include "lib/util.h"
#include "lib/xalloc.h"

#define DOCTOR_USAGE                                                                               \
    "doctor [-c FILE] [DOMAIN] [--json] [--public-address IP] [--probe HOST[:PORT]]"
static const char *const doctor_names[CHK_COUNT] = {
    "a", "mx", "ptr", "spf", "dkim", "dmarc", "tlsa", "mta-sts", "tlsrpt", "network"};

/* ---- small helpers (doctor_int.h) ---- */

struct dns_answer *doctor_query(struct doctor *d, const char *name, int type)
{
    return dns_query_sync(d->dns, name, type);
}

int doctor_same_addr(const char *a, const char *b)
{
    unsigned char x[16], y[16];
    if (inet_pton(AF_INET, a, x) == 1)
        return inet_pton(AF_INET, b, y) == 1 && memcmp(x, y, 4) == 0;
    if (inet_pton(AF_INET6, a, x) == 1)
        return inet_pton(AF_INET6, b, y) == 1 && memcmp(x, y, 16) == 0;
    return 0;
}

int doctor_is_ip(const char *s)
{
    unsigned char tmp[16];
    return inet_pton(AF_INET, s, tmp) == 1 || inet_pton(AF_INET6, s, tmp) == 1;
}

int doctor_is_v6(const char *a)
{
    return strchr(a, ':') != NULL;
}

/* The A/AAAA addresses of name; *tempfail when either lookup failed for now. */
char **doctor_addrs(struct doctor *d, const char *name, int *tempfail, size_t *n)
{
    char **out = NULL;
    *n = 0;
    *tempfail = 0;
    unsigned char tmp[16];
    if (inet_pton(AF_INET, name, tmp) == 1 || inet_pton(AF_INET6, name, tmp) == 1) {
        doctor_push(&out, n, xstrdup(name));
        return out;
    }
    const int types[2] = {DNS_T_A, DNS_T_AAAA};
    for (int t = 0; t < 2; t++) {
        struct dns_answer *a = doctor_query(d, name, types[t]);
        if (a->status == DNS_TEMPFAIL)
            *tempfail = 1;
        if (a->status == DNS_OK)
            for (size_t i = 0; i < a->count; i++)
                doctor_push(&out, n, xstrdup(a->addrs[i]));
        dns_answer_free(a);
    }
    return out;
}

void doctor_free_list(char **list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(list[i]);
    free(list);
}

void doctor_join(char *const *list, size_t n, struct buf *out)
{
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf_puts(out, ", ");
        buf_puts(out, list[i]);
    }
}

char *doctor_addr_line(const char *name, const char *addr)
{
    if (addr == NULL)
        return xasprintf("%s. IN A <this host's public IPv4 address>", name);
    return xasprintf("%s. IN %s %s", name, doctor_is_v6(addr) ? "AAAA" : "A", addr);
}

const char *const doctor_no_public =
    "the public address of this host is unknown (no global address on its interfaces); set "
    "doctor_public_address or give --public-address IP";

/* ---- the public address ---- */

static char *doctor_interfaces_public(void)
{
    struct ifaddrs *ifa = NULL;
    if (getifaddrs(&ifa) != 0)
        return NULL;
    char **list = NULL;
    size_t n = 0;
    for (struct ifaddrs *i = ifa; i != NULL; i = i->ifa_next) {
        if (i->ifa_addr == NULL || !(i->ifa_flags & IFF_UP) || (i->ifa_flags & IFF_LOOPBACK))
            continue;
        char text[INET6_ADDRSTRLEN];
        int fam = i->ifa_addr->sa_family;
        const void *src = NULL;
        if (fam == AF_INET)
            src = &((struct sockaddr_in *)(void *)i->ifa_addr)->sin_addr;
        else if (fam == AF_INET6)
            src = &((struct sockaddr_in6 *)(void *)i->ifa_addr)->sin6_addr;
        if (src != NULL && inet_ntop(fam, src, text, sizeof(text)) != NULL)
            doctor_push(&list, &n, xstrdup(text));
    }
    freeifaddrs(ifa);
    const char *pick = doctor_pick_public(list, n);
    char *out = pick ? xstrdup(pick) : NULL;
    doctor_free_list(list, n);
    return out;
}

/* ---- output ---- */

static void doctor_print_text(struct doctor *d)
{
    printf("hongyan doctor: %s (myhostname %s, public address %s%s%s)\n", d->domain, d->myhostname,
           d->public_addr ? d->public_addr : "unknown", d->public_addr ? " from " : "",
           d->public_addr ? d->public_source : "");
    for (int i = 0; i < CHK_COUNT; i++) {
        struct doctor_check *c = &d->chk[i];
        printf("%-4s  %-7s found: %s; expected: %s\n", doctor_status_str(c->status), c->name,
               buf_cstr(&c->found), buf_cstr(&c->expected));
    }
    int nrec = 0, nadv = 0;
    for (int i = 0; i < CHK_COUNT; i++) {
        nrec += (int)d->chk[i].nrecords;
        nadv += (int)d->chk[i].nadvice;
    }
    if (nrec) {
        printf("\nPublish these records (zone-file lines):\n");
        for (int i = 0; i < CHK_COUNT; i++)
            for (size_t j = 0; j < d->chk[i].nrecords; j++)
                printf("%s\n", d->chk[i].records[j]);
    }
    if (nadv) {
        printf("\nAlso:\n");
        for (int i = 0; i < CHK_COUNT; i++)
            for (size_t j = 0; j < d->chk[i].nadvice; j++)
                printf("- %s: %s\n", d->chk[i].name, d->chk[i].advice[j]);
    }
}

static void doctor_json_list(char *const *list, size_t n, struct buf *out)
{
    buf_putc(out, '[');
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf_puts(out, ", ");
        doctor_json_string(list[i], out);
    }
    buf_putc(out, ']');
}

static void doctor_print_json(struct doctor *d, int failed)
{
    struct buf o = BUF_INIT;
    buf_puts(&o, "{\"domain\": ");
    doctor_json_string(d->domain, &o);
    buf_puts(&o, ", \"myhostname\": ");
    doctor_json_string(d->myhostname, &o);
    buf_puts(&o, ", \"public_address\": ");
    if (d->public_addr) {
        doctor_json_string(d->public_addr, &o);
        buf_puts(&o, ", \"public_address_source\": ");
        doctor_json_string(d->public_source, &o);
    } else {
        buf_puts(&o, "null, \"public_address_source\": null");
    }
    buf_printf(&o, ", \"failed\": %s, \"checks\": [", failed ? "true" : "false");
    for (int i = 0; i < CHK_COUNT; i++) {
        struct doctor_check *c = &d->chk[i];
        buf_puts(&o, i ? ",\n  {\"name\": " : "\n  {\"name\": ");
        doctor_json_string(c->name, &o);
        buf_puts(&o, ", \"status\": ");
        doctor_json_string(doctor_status_str(c->status), &o);
        buf_puts(&o, ", \"found\": ");
        doctor_json_string(buf_cstr(&c->found), &o);
        buf_puts(&o, ", \"expected\": ");
        doctor_json_string(buf_cstr(&c->expected), &o);
        buf_puts(&o, ", \"records_to_publish\": ");
        doctor_json_list(c->records, c->nrecords, &o);
        buf_puts(&o, ", \"advice\": ");
        doctor_json_list(c->advice, c->nadvice, &o);
        buf_putc(&o, '}');
    }
    buf_puts(&o, "\n]}\n");
    fwrite(o.data, 1, o.len, stdout);
    buf_free(&o);
}

/* ---- main ---- */

static int doctor_domain_ok(const char *s)
{
    return dnsname_ok(s, strlen(s), DNSNAME_UNDERSCORE | DNSNAME_ROOT_DOT | DNSNAME_NO_EDGE_HYPHEN);
}

int cli_doctor_main(int argc, char **argv)
{
    const char *domain = NULL, *public_opt = NULL, *probe = NULL;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
            cli_config_path = argv[++i];
        else if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else if (strcmp(argv[i], "--public-address") == 0 && i + 1 < argc)
            public_opt = argv[++i];
        else if (strcmp(argv[i], "--probe") == 0 && i + 1 < argc)
            probe = argv[++i];
        else if (argv[i][0] != '-' && domain == NULL)
            domain = argv[i];
        else
            return cli_usage(DOCTOR_USAGE);
    }
    if (public_opt && !doctor_is_ip(public_opt)) {
        fprintf(stderr, "hongyan: doctor: --public-address: '%s' is not an IP address\n",
                public_opt);
        return EX_USAGE;
    }
    struct buf ph = BUF_INIT;
    int pport, pbr;
    if (probe && doctor_parse_hostport(probe, 25, &ph, &pport, &pbr) != 0) {
        fprintf(stderr, "hongyan: doctor: --probe: '%s' is not HOST[:PORT]\n", probe);
        buf_free(&ph);
        return EX_USAGE;
    }
    buf_free(&ph);

    struct config *cfg = cli_config();
    struct doctor d = {.cfg = cfg, .probe = probe};
    d.domain = xstrdup(domain ? domain : config_get(cfg, "mydomain"));
    str_lower(d.domain);
    size_t dl = strlen(d.domain);
    while (dl > 0 && d.domain[dl - 1] == '.')
        d.domain[--dl] = '\0';
    if (!doctor_domain_ok(d.domain)) {
        fprintf(stderr, "hongyan: doctor: '%s' is not a domain name\n",
                domain ? domain : config_get(cfg, "mydomain"));
        free(d.domain);
        return domain ? EX_USAGE : EX_CONFIG;
    }
    d.myhostname = config_get(cfg, "myhostname");
    d.resolver = config_get(cfg, "dns_resolver");
    d.relayhost = config_get(cfg, "relayhost");
    const char *cfg_public = config_get(cfg, "doctor_public_address");
    if (cfg_public[0] && !doctor_is_ip(cfg_public)) {
        fprintf(stderr, "hongyan: %s: doctor_public_address: '%s' is not an IP address\n",
                config_file(cfg) ? config_file(cfg) : "(embedded default)", cfg_public);
        free(d.domain);
        return EX_CONFIG;
    }
    struct route rt = {0};
    struct buf rerr = BUF_INIT;
    if (d.relayhost[0] && route_parse_nexthop(d.relayhost, 25, &rt, &rerr) != 0) {
        fprintf(stderr, "hongyan: %s: relayhost: %s\n",
                config_file(cfg) ? config_file(cfg) : "(embedded default)", buf_cstr(&rerr));
        free(d.domain);
        buf_free(&rerr);
        return EX_CONFIG;
    }
    buf_free(&rerr);
    const char *relay_host = rt.host ? rt.host : "";
    /* An explicit address wins: the interfaces cannot see the NAT in front of them. */
    if (public_opt) {
        d.public_addr = xstrdup(public_opt);
        d.public_source = "--public-address";
    } else if (cfg_public[0]) {
        d.public_addr = xstrdup(cfg_public);
        d.public_source = "doctor_public_address";
    } else if ((d.public_addr = doctor_interfaces_public()) != NULL) {
        d.public_source = "the host's interfaces";
    }
    struct buf err = BUF_INIT;
    d.dns = dns_new(NULL, d.resolver, &err);
    if (d.dns == NULL) {
        fprintf(stderr, "hongyan: dns_resolver: %s\n", buf_cstr(&err));
        buf_free(&err);
        free(d.domain);
        free(d.public_addr);
        route_clear(&rt);
        return EX_CONFIG;
    }
    buf_free(&err);
    dns_set_timeout(d.dns, DOCTOR_DNS_TIMEOUT_MS);
    for (int i = 0; i < CHK_COUNT; i++)
        d.chk[i].name = doctor_names[i];

    doctor_check_a(&d, &d.chk[CHK_A]);
    doctor_check_mx(&d, &d.chk[CHK_MX], relay_host);
    doctor_check_ptr(&d, &d.chk[CHK_PTR]);
    doctor_check_spf(&d, &d.chk[CHK_SPF], relay_host);
    doctor_check_dkim(&d, &d.chk[CHK_DKIM]);
    doctor_check_dmarc(&d, &d.chk[CHK_DMARC]);
    doctor_check_tlsa(&d, &d.chk[CHK_TLSA]);
    doctor_check_mta_sts(&d.chk[CHK_STS], d.dns, cfg, d.domain);
    doctor_check_tlsrpt(&d.chk[CHK_TLSRPT], d.dns, d.domain);
    if (d.relayhost[0])
        doctor_check_relay(&d, &d.chk[CHK_NET], &rt);
    else
        doctor_check_port25(&d, &d.chk[CHK_NET]);

    int failed = 0;
    for (int i = 0; i < CHK_COUNT; i++)
        failed |= d.chk[i].status == DOCTOR_FAIL;
    if (json)
        doctor_print_json(&d, failed);
    else
        doctor_print_text(&d);

    for (int i = 0; i < CHK_COUNT; i++) {
        buf_free(&d.chk[i].found);
        buf_free(&d.chk[i].expected);
        doctor_free_list(d.chk[i].records, d.chk[i].nrecords);
        doctor_free_list(d.chk[i].advice, d.chk[i].nadvice);
    }
    dns_free(d.dns);
    free(d.domain);
    free(d.public_addr);
    route_clear(&rt);
    return failed ? 1 : 0;
}
