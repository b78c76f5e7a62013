/* DNS name syntax, one implementation for every caller (see dnsname.h). */
#include "lib/dnsname.h"

int dnsname_ok(const char *s, size_t n, unsigned flags)
{
    if ((flags & DNSNAME_ROOT_DOT) && n > 1 && s[n - 1] == '.')
        n--;
    if (n == 0 || n > 253)
        return 0;
    size_t label = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.') {
            if (label == 0 || ((flags & DNSNAME_NO_EDGE_HYPHEN) && s[i - 1] == '-'))
                return 0;
            label = 0;
            continue;
        }
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '-' || (c == '_' && (flags & DNSNAME_UNDERSCORE)) ||
                 (c >= 0x80 && (flags & DNSNAME_UTF8));
        if (!ok || (label == 0 && c == '-' && (flags & DNSNAME_NO_EDGE_HYPHEN)) || ++label > 63)
            return 0;
    }
    if (label == 0) /* an empty last label: "a." without DNSNAME_ROOT_DOT, or "a.." */
        return 0;
    return !((flags & DNSNAME_NO_EDGE_HYPHEN) && s[n - 1] == '-');
}
