/*
 * A message as milters see and edit it: its header fields one by one and its
 * body, plus the envelope changes they ask for. Header edits follow
 * Postfix's (Sendmail-compatible) rules: a change or delete picks the Nth
 * field of that name, 1-based (0 counts as 1), and a change of a field that
 * is not there appends it; an insert at index N puts the field before the
 * Nth field (0: at the top). Header values travel with "\n" between the
 * lines of a folded field, as Sendmail sends them.
 *
 * Ownership: everything is owned by the struct; milter_msg_free().
 */
#ifndef HONGYAN_MILTER_MSG_H
#define HONGYAN_MILTER_MSG_H

#include <stddef.h>

#include "lib/buf.h"

struct milter_hdr {
    char *raw; /* "Name: value\r\n" with its continuation lines, as in the message */
};

enum milter_env_op {
    MILTER_ENV_CHGFROM,
    MILTER_ENV_ADDRCPT,
    MILTER_ENV_DELRCPT,
};

struct milter_env_edit {
    enum milter_env_op op;
    char *addr; /* without the <> */
    char *args; /* ESMTP parameters ("" if none) */
};

struct milter_msg {
    struct milter_hdr *hdrs;
    size_t nhdrs;
    struct buf body;  /* after the empty line, CRLF line ends */
    int body_changed; /* a filter replaced the body */
    struct milter_env_edit *edits;
    size_t nedits;
};

/* Splits a message (CRLF line ends) into fields and body. */
void milter_msg_parse(struct milter_msg *m, const char *msg, size_t len);
void milter_msg_free(struct milter_msg *m);
/* The message again, as bytes (out is appended to). */
void milter_msg_serialize(const struct milter_msg *m, struct buf *out);

/*
 * A field's name and value as a filter gets them: the value without the
 * space after the colon (unless leadspc), folded lines joined by "\n".
 */
void milter_hdr_split(const struct milter_hdr *h, int leadspc, struct buf *name, struct buf *value);

/*
 * Edits. space is what goes between the colon and the value (" ", or ""
 * when the filter sends its own leading space). 0, or -1 when name is not
 * a valid field name (the request is refused).
 */
int milter_msg_add_header(struct milter_msg *m, const char *name, const char *space,
                          const char *value);
int milter_msg_insert_header(struct milter_msg *m, size_t index, const char *name,
                             const char *space, const char *value);
/* An empty value deletes the field. */
int milter_msg_change_header(struct milter_msg *m, size_t index, const char *name,
                             const char *space, const char *value);
/* Body replacement: begin, then chunks as they come (any line ends). */
void milter_msg_body_begin(struct milter_msg *m);
void milter_msg_body_chunk(struct milter_msg *m, const char *data, size_t len);
void milter_msg_body_end(struct milter_msg *m);
void milter_msg_env_edit(struct milter_msg *m, enum milter_env_op op, const char *addr,
                         const char *args);

/* "<a@b>" or "a@b" to a@b (the brackets a filter may send). */
char *milter_addr_strip(const char *addr);

#endif
