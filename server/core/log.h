/*
 * The server's log: one line per event, "2024-05-01T12:00:00.123Z INFO message", to a
 * file (appended, reopened on SIGHUP for log rotation) or to stderr. The engine's log
 * callback (cs_set_log) lands here too. Lines about a request carry its id ("req 12").
 *
 * Threads: every function is thread-safe (one mutex around the stream); log_open and
 * log_close belong to main's thread, before other threads start and after they end.
 */
#ifndef CS_LOG_H
#define CS_LOG_H

#include <cfgserve/cfgserve.h>

/* Opens path for appending ("" or NULL: stderr) and sets the least severe level logged. */
cs_status log_open(const char *path, cs_log_level min_level, char *msg, size_t msg_size);
/* Reopens the file (after logrotate moved it); a failure keeps the old stream. */
void log_reopen(void);
void log_close(void);

/* Parses "debug" / "info" / "warn" / "error"; -1 when unknown. */
int log_level_parse(const char *name);
int log_enabled(cs_log_level level);

void log_msg(cs_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* text (NULL = "") made safe for one log line: quotes, backslashes and control bytes
 * escaped (\", \\, \xNN), cut at a character boundary with "..." when it does not fit
 * in buf. Returns buf. */
const char *log_quote(const char *text, char *buf, size_t size);
/* A cs_log_fn for cs_set_log: engine lines, prefixed "engine: ". */
void log_engine(cs_log_level level, const char *line, void *user);

#endif
