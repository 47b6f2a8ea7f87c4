/*
 * The server's log (see log.h). Process-wide by nature: one stream, one mutex. Each line
 * is written with one fwrite + fflush under the lock, so lines from different threads
 * never interleave and a crash loses at most the line being written.
 */
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static FILE *log_stream;                   /* guarded by log_mu; NULL = stderr */
static char log_path[1024];                /* guarded by log_mu; "" = stderr */
static volatile int log_min = CS_LOG_INFO; /* written before threads start */

static const char *const LEVEL_NAMES[] = {"debug", "info", "warn", "error"};

int log_level_parse(const char *name) {
    for (int i = 0; i < 4; i++)
        if (!strcmp(name, LEVEL_NAMES[i])) return i;
    return -1;
}

int log_enabled(cs_log_level level) {
    return (int)level >= log_min;
}

cs_status log_open(const char *path, cs_log_level min_level, char *msg, size_t n) {
    log_min = (int)min_level;
    if (!path || !path[0]) return CS_OK;
    if (strlen(path) >= sizeof log_path) {
        snprintf(msg, n, "log file %s: path too long", path);
        return CS_ERR_INVALID_ARG;
    }
    FILE *f = fopen(path, "a");
    if (!f) {
        snprintf(msg, n, "log file %s: cannot open for appending: %s", path, strerror(errno));
        return CS_ERR_IO;
    }
    pthread_mutex_lock(&log_mu);
    if (log_stream) fclose(log_stream);
    log_stream = f;
    snprintf(log_path, sizeof log_path, "%s", path);
    pthread_mutex_unlock(&log_mu);
    return CS_OK;
}

void log_reopen(void) {
    pthread_mutex_lock(&log_mu);
    FILE *f = log_path[0] ? fopen(log_path, "a") : NULL;
    if (f) {
        fclose(log_stream);
        log_stream = f;
    }
    pthread_mutex_unlock(&log_mu);
    if (log_path[0]) {
        if (f)
            log_msg(CS_LOG_INFO, "log reopened (SIGHUP)");
        else
            log_msg(CS_LOG_ERROR, "log file %s: cannot reopen; still writing to the old file",
                    log_path);
    }
}

void log_close(void) {
    pthread_mutex_lock(&log_mu);
    if (log_stream) fclose(log_stream);
    log_stream = NULL;
    log_path[0] = '\0';
    pthread_mutex_unlock(&log_mu);
}

static void log_write(cs_log_level level, const char *prefix, const char *fmt, va_list ap) {
    char line[2048];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t at = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
    at += (size_t)snprintf(line + at, sizeof line - at, ".%03dZ %-5s %s", (int)(tv.tv_usec / 1000),
                           LEVEL_NAMES[level], prefix);
    int len = vsnprintf(line + at, sizeof line - at, fmt, ap);
    at = len < 0 ? at : at + (size_t)len >= sizeof line - 1 ? sizeof line - 2 : at + (size_t)len;
    /* One record per line: a newline inside a message (an engine error listing several
     * tensors) becomes a space. */
    for (size_t i = 0; i < at; i++)
        if (line[i] == '\n' || line[i] == '\r') line[i] = ' ';
    line[at++] = '\n';
    pthread_mutex_lock(&log_mu);
    FILE *f = log_stream ? log_stream : stderr;
    fwrite(line, 1, at, f);
    fflush(f);
    pthread_mutex_unlock(&log_mu);
}

void log_msg(cs_log_level level, const char *fmt, ...) {
    if (!log_enabled(level)) return;
    va_list ap;
    va_start(ap, fmt);
    log_write(level, "", fmt, ap);
    va_end(ap);
}

static void log_engine_line(cs_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void log_engine_line(cs_log_level level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    log_write(level, "engine: ", fmt, ap);
    va_end(ap);
}

void log_engine(cs_log_level level, const char *line, void *user) {
    (void)user;
    if ((int)level < 0 || (int)level > 3 || !log_enabled(level)) return;
    log_engine_line(level, "%s", line);
}

const char *log_quote(const char *text, char *buf, size_t size) {
    size_t at = 0;
    if (!text) text = "";
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        char piece[5];
        size_t n;
        if (*p == '"' || *p == '\\') n = (size_t)snprintf(piece, sizeof piece, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f) n = (size_t)snprintf(piece, sizeof piece, "\\x%02x", *p);
        else piece[0] = (char)*p, n = 1;
        if (at + n + 4 > size) { /* room for "..." and the NUL */
            while (at > 0 && ((unsigned char)buf[at - 1] & 0xC0) == 0x80) at--; /* continuation bytes */
            if (at > 0 && (unsigned char)buf[at - 1] >= 0xC0) at--;               /* their lead byte */
            memcpy(buf + at, "...", 3);
            at += 3;
            break;
        }
        memcpy(buf + at, piece, n);
        at += n;
    }
    buf[at] = 0;
    return buf;
}
