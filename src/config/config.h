/*
 * The configuration: Postfix main.cf syntax (SPEC.md) read into a table of
 * known keys. Every key has a name, a default, a check and a one-line doc in
 * config_keys.c; values are checked when the file is loaded, so the typed
 * getters below cannot fail at run time.
 *
 * Ownership: config_load() returns a struct the caller frees with
 * config_free(). Strings returned by getters live as long as the config.
 */
#ifndef HONGYAN_CONFIG_CONFIG_H
#define HONGYAN_CONFIG_CONFIG_H

#include <stddef.h>

#include "lib/buf.h"

/*
 * Longest myhostname and authserv_id accepted: host names, 253 octets in
 * text (RFC 1035 2.3.4), with room for a final dot and one more. Code that
 * keeps them in fixed buffers sizes them CONFIG_HOSTNAME_MAX + 1; loading
 * refuses anything longer, so a copy is never cut.
 */
#define CONFIG_HOSTNAME_MAX 255
/* Longest data_directory accepted; the same promise to fixed buffers. */
#define CONFIG_DATA_DIR_MAX 1023

struct config;

/*
 * Which file to read: cli_path (-c) if given, else $HONGYAN_CONFIG, else
 * /etc/hongyan/main.cf if it exists, else NULL: the embedded default.
 */
const char *config_locate(const char *cli_path);

/*
 * Reads and checks path (NULL: the embedded default, under ./hongyan-data
 * and listening on 127.0.0.1 only). On error returns NULL and puts
 * "FILE:LINE: what is wrong" in err.
 */
struct config *config_load(const char *path, struct buf *err);
void config_free(struct config *cfg);
/* The same from text in memory (name is used in error messages); for -e and fuzzing. */
struct config *config_load_text(const char *name, const char *text, size_t len, struct buf *err);
/* Defaults only: embedded (./hongyan-data) or as with a configuration file. */
struct config *config_defaults(int embedded);

/* The file read, or NULL for the embedded default. */
const char *config_file(const struct config *cfg);

/*
 * Values after $name expansion. Asking for a key that is not in the table
 * is a programming error and aborts (remote input never names keys).
 */
const char *config_get(const struct config *cfg, const char *key);
long long config_get_int(const struct config *cfg, const char *key);
int config_get_bool(const struct config *cfg, const char *key);
long long config_get_time(const struct config *cfg, const char *key); /* seconds */
/* The list split as main.cf lists are (commas and/or space); strlist_free(). */
char **config_get_list(const struct config *cfg, const char *key, size_t *count);
/* The value as written (or the default), before expansion. */
const char *config_get_raw(const struct config *cfg, const char *key);
/*
 * The value of a restriction class (a key main.cf defines and names in
 * smtpd_restriction_classes), as written; NULL when there is none.
 */
const char *config_get_class(const struct config *cfg, const char *name);
/* A time value ("30s", "5m", "300" in default_unit); 0, or -1 when malformed. */
int config_parse_time(const char *s, const char *default_unit, long long *out);
/* Whether the key was set in the file (postconf -n). */
int config_is_set(const struct config *cfg, const char *key);

/*
 * What loading found that is not an error: keys set twice with different
 * values ("FILE, line N: overriding earlier entry: KEY=OLD", as Postfix says),
 * one per line; "" when none.
 */
const char *config_warnings(const struct config *cfg);
/* Postfix keys set in the file that have no effect here, in file order; i < count. */
size_t config_ignored_count(const struct config *cfg);
const char *config_ignored(const struct config *cfg, size_t i, const char **value,
                           const char **reason, int *line);
/* The value of an ignored key set in the file, or NULL. */
const char *config_ignored_value(const struct config *cfg, const char *key);
/* Logs the warnings and, with with_ignored, one line per ignored key (serve start). */
void config_log_notes(const struct config *cfg, int with_ignored);

/*
 * From now on, the defaults taken from the host (myhostname from the
 * resolver, mynetworks from the interfaces) are those of this call, not
 * looked up again at each load: for the keeper, whose sandbox has no
 * socket (keeper/keeper.c).
 */
void config_freeze_host_defaults(void);

/*
 * For a process the supervisor exec'd: path as a SIGHUP would read it (it
 * may have changed since the supervisor started); when it does not load,
 * the snapshot of the last one that did, read from snapshot_fd (a sealed
 * memfd; -1 for none), with both reasons logged. NULL when neither loads.
 */
struct config *config_load_or_snapshot(const char *path, int snapshot_fd);

#endif
