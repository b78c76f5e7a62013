/*
 * The Sendmail 8 milter protocol on the wire (what libmilter speaks):
 * packets are a 4-byte length in network order, a command byte and its
 * data. This file only encodes MTA-to-filter packets and decodes
 * filter-to-MTA ones, with every length checked; the conversation itself
 * (milter/milter.c) and the message edits (milter/milter_msg.c) live apart.
 */
#ifndef HONGYAN_MILTER_PROTO_H
#define HONGYAN_MILTER_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

/* Commands from the MTA. */
enum {
    MILTER_C_ABORT = 'A',
    MILTER_C_BODY = 'B',
    MILTER_C_CONNECT = 'C',
    MILTER_C_MACRO = 'D',
    MILTER_C_BODYEOB = 'E',
    MILTER_C_HELO = 'H',
    MILTER_C_HEADER = 'L',
    MILTER_C_MAIL = 'M',
    MILTER_C_EOH = 'N',
    MILTER_C_OPTNEG = 'O',
    MILTER_C_QUIT = 'Q',
    MILTER_C_RCPT = 'R',
    MILTER_C_DATA = 'T',
};

/* Replies from the filter. */
enum {
    MILTER_R_ADDRCPT = '+',
    MILTER_R_DELRCPT = '-',
    MILTER_R_ADDRCPT_PAR = '2',
    MILTER_R_SHUTDOWN = '4',
    MILTER_R_ACCEPT = 'a',
    MILTER_R_REPLBODY = 'b',
    MILTER_R_CONTINUE = 'c',
    MILTER_R_DISCARD = 'd',
    MILTER_R_CHGFROM = 'e',
    MILTER_R_CONN_FAIL = 'f',
    MILTER_R_ADDHEADER = 'h',
    MILTER_R_INSHEADER = 'i',
    MILTER_R_SETSYMLIST = 'l',
    MILTER_R_CHGHEADER = 'm',
    MILTER_R_PROGRESS = 'p',
    MILTER_R_QUARANTINE = 'q',
    MILTER_R_REJECT = 'r',
    MILTER_R_SKIP = 's',
    MILTER_R_TEMPFAIL = 't',
    MILTER_R_REPLYCODE = 'y',
};

/* Actions the filter may ask for (SMFIF_*): we offer all that Postfix offers. */
enum {
    MILTER_F_ADDHDRS = 1 << 0,
    MILTER_F_CHGBODY = 1 << 1,
    MILTER_F_ADDRCPT = 1 << 2,
    MILTER_F_DELRCPT = 1 << 3,
    MILTER_F_CHGHDRS = 1 << 4,
    MILTER_F_QUARANTINE = 1 << 5,
    MILTER_F_CHGFROM = 1 << 6,
    MILTER_F_ADDRCPT_PAR = 1 << 7,
    MILTER_F_SETSYMLIST = 1 << 8,
};
#define MILTER_F_ALL 0x1ffu

/* Protocol flags (SMFIP_*): events the filter does not want, replies it will not send. */
enum {
    MILTER_P_NOCONNECT = 1 << 0,
    MILTER_P_NOHELO = 1 << 1,
    MILTER_P_NOMAIL = 1 << 2,
    MILTER_P_NORCPT = 1 << 3,
    MILTER_P_NOBODY = 1 << 4,
    MILTER_P_NOHDRS = 1 << 5,
    MILTER_P_NOEOH = 1 << 6,
    MILTER_P_NR_HDR = 1 << 7,
    MILTER_P_NOUNKNOWN = 1 << 8,
    MILTER_P_NODATA = 1 << 9,
    MILTER_P_SKIP = 1 << 10,
    MILTER_P_RCPT_REJ = 1 << 11,
    MILTER_P_NR_CONN = 1 << 12,
    MILTER_P_NR_HELO = 1 << 13,
    MILTER_P_NR_MAIL = 1 << 14,
    MILTER_P_NR_RCPT = 1 << 15,
    MILTER_P_NR_DATA = 1 << 16,
    MILTER_P_NR_UNKN = 1 << 17,
    MILTER_P_NR_EOH = 1 << 18,
    MILTER_P_NR_BODY = 1 << 19,
    MILTER_P_HDR_LEADSPC = 1 << 20,
};

/* Macro classes in an OPTNEG reply's symbol lists (SMFIM_*). */
enum milter_stage {
    MILTER_M_CONNECT,
    MILTER_M_HELO,
    MILTER_M_ENVFROM,
    MILTER_M_ENVRCPT,
    MILTER_M_DATA,
    MILTER_M_EOM,
    MILTER_M_EOH,
    MILTER_M_COUNT,
};

/* The largest packet we accept from a filter; more is an error, never an allocation. */
#define MILTER_PKT_MAX (1024u * 1024)
/* Body chunks we send (libmilter's MILTER_CHUNK_SIZE). */
#define MILTER_CHUNK_MAX 65535u

/*
 * Packet building: milter_pkt_begin() reserves the header, the put
 * functions append data, milter_pkt_end() fills the length in.
 */
size_t milter_pkt_begin(struct buf *out, char cmd);
void milter_pkt_put_str(struct buf *out, const char *s); /* with its NUL */
void milter_pkt_put_u32(struct buf *out, uint32_t v);
void milter_pkt_put_u16(struct buf *out, uint16_t v);
void milter_pkt_end(struct buf *out, size_t start);
/* A packet with raw data (body chunks, empty events). */
void milter_pkt_raw(struct buf *out, char cmd, const void *data, size_t len);

/*
 * Splits one packet off the front of in. 1: cmd, data and *used set (data
 * points into in); 0: incomplete, read more; -1: a length of 0 or beyond
 * max (the connection cannot recover: give up on the filter).
 */
int milter_pkt_split(const char *in, size_t len, size_t max, char *cmd, const char **data,
                     size_t *dlen, size_t *used);

/*
 * A filter's reply, decoded. Strings point into the packet data (which
 * must stay alive) and are NUL-terminated there; checked to be so.
 */
struct milter_reply {
    char cmd;
    uint32_t index;    /* INSHEADER, CHGHEADER */
    const char *name;  /* header name; address for ADDRCPT*, DELRCPT, CHGFROM */
    const char *value; /* header value; ESMTP args for CHGFROM, ADDRCPT_PAR ("" if none) */
    const char *text;  /* REPLYCODE text, QUARANTINE reason */
    const char *body;  /* REPLBODY chunk */
    size_t body_len;
};

/* 0, or -1 with *why when the packet is malformed for its command. */
int milter_reply_decode(char cmd, const char *data, size_t len, struct milter_reply *r,
                        const char **why);

/* The filter's OPTNEG answer. */
struct milter_optneg {
    uint32_t version, actions, protocol;
    const char *macros[MILTER_M_COUNT]; /* symbol lists it asked for, or NULL */
};
int milter_optneg_decode(const char *data, size_t len, struct milter_optneg *o, const char **why);

/*
 * A REPLYCODE text as a valid SMTP reply: 4xx or 5xx, "ddd " or "ddd-"
 * lines joined by CRLF, the same code on each, no NUL; 1 if valid.
 */
int milter_reply_text_valid(const char *text);

#endif
