/* Strict config.json reader (see config.h). */
#include "config.h"

#include "json_strict.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

cs_status cs_read_file(const char *path, size_t max_bytes, char **out, size_t *len, char *msg,
                       size_t msg_size) {
    *out = NULL;
    if (len) *len = 0;
    /* O_NONBLOCK: opening a FIFO must not hang; it is refused as not a regular file. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return cs_errf(CS_ERR_IO, msg, msg_size, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return cs_errf(CS_ERR_IO, msg, msg_size, "%s: not a regular file", path);
    }
    FILE *fp = fdopen(fd, "rb");
    if (!fp) {
        int e = errno;
        close(fd);
        return cs_errf(CS_ERR_IO, msg, msg_size, "%s: cannot open: %s", path, strerror(e));
    }
    if ((uint64_t)sb.st_size > max_bytes) {
        fclose(fp);
        return cs_errf(CS_ERR_FORMAT, msg, msg_size, "%s: %lld bytes exceeds the limit of %zu",
                       path, (long long)sb.st_size, max_bytes);
    }
    size_t n = (size_t)sb.st_size;
    char *buf = cs_malloc(n + 1);
    if (!buf) {
        fclose(fp);
        return cs_errf(CS_ERR_NOMEM, msg, msg_size, "%s: out of memory", path);
    }
    size_t got = fread(buf, 1, n, fp);
    fclose(fp);
    if (got != n) {
        free(buf);
        return cs_errf(CS_ERR_IO, msg, msg_size, "%s: short read", path);
    }
    buf[n] = '\0';
    *out = buf;
    if (len) *len = n;
    return CS_OK;
}

void cfg_fail(cfg_reader *r, const char *fmt, ...) {
    if (r->status != CS_OK) return;
    r->status = CS_ERR_UNSUPPORTED;
    if (!r->msg || !r->msg_size) return;
    int at = snprintf(r->msg, r->msg_size, "%s: ", r->path);
    if (at < 0 || (size_t)at >= r->msg_size) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->msg + at, r->msg_size - (size_t)at, fmt, ap);
    va_end(ap);
}

/* Python's json module writes the non-finite floats as the bare words Infinity and
 * -Infinity (diffusers' DPMSolverMultistepScheduler saves lambda_min_clipped: -Infinity).
 * Outside strings they become 1e999 / -1e999 of the same length, which parse as ±inf;
 * cfg_float still refuses them, so only a parser that asks for infinity gets one. */
static void python_infinity_literals(char *text, size_t len) {
    bool in_string = false;
    for (size_t i = 0; i < len; i++) {
        if (in_string) {
            if (text[i] == '\\')
                i++;
            else if (text[i] == '"')
                in_string = false;
        } else if (text[i] == '"') {
            in_string = true;
        } else if (len - i >= 8 && memcmp(text + i, "Infinity", 8) == 0) {
            memcpy(text + i, "1e999   ", 8);
            i += 7;
        }
    }
}

cs_status cfg_open(cfg_reader *r, const char *path, char *msg, size_t msg_size) {
    return cfg_open_src(r, path, NULL, msg, msg_size);
}

cs_status cfg_open_src(cfg_reader *r, const char *path, const char *json, char *msg,
                       size_t msg_size) {
    memset(r, 0, sizeof *r);
    r->msg = msg;
    r->msg_size = msg_size;
    r->path = strdup(path);
    if (!r->path) return r->status = cs_errf(CS_ERR_NOMEM, msg, msg_size, "out of memory");
    char *text;
    size_t len;
    cs_status st = json ? ((text = strdup(json)) ? CS_OK : CS_ERR_NOMEM)
                        : cs_read_file(path, 4u << 20, &text, &len, msg, msg_size);
    if (st == CS_ERR_NOMEM && json) cs_errf(st, msg, msg_size, "out of memory");
    if (st != CS_OK) return r->status = st;
    if (json) len = strlen(text);
    python_infinity_literals(text, len);
    char why[128];
    r->root = json_parse_strict(text, len, why, sizeof why);
    free(text);
    if (!r->root)
        return r->status = cs_errf(CS_ERR_FORMAT, msg, msg_size, "%s: malformed JSON: %s", path,
                                   why);
    if (!cJSON_IsObject(r->root))
        return r->status = cs_errf(CS_ERR_FORMAT, msg, msg_size, "%s: not a JSON object", path);
    r->nfields = cJSON_GetArraySize(r->root);
    r->consumed = cs_calloc((size_t)r->nfields, sizeof *r->consumed);
    if (!r->consumed) return r->status = cs_errf(CS_ERR_NOMEM, msg, msg_size, "out of memory");
    /* A JSON object may repeat a key; which value wins would be a guess, so refuse. */
    const char *dup;
    cs_status st2 = json_unique_keys(r->root, &dup);
    if (st2 == CS_ERR_NOMEM)
        return r->status = cs_errf(st2, msg, msg_size, "%s: out of memory", path);
    if (st2 != CS_OK)
        return r->status = cs_errf(CS_ERR_FORMAT, msg, msg_size, "%s: field '%s' appears twice",
                                   path, dup);
    return CS_OK;
}

void cfg_close(cfg_reader *r) {
    cJSON_Delete(r->root);
    free(r->consumed);
    free(r->path);
    memset(r, 0, sizeof *r);
}

/* The field's item (marking it consumed), or NULL when absent, null, or after an error. */
static cJSON *take(cfg_reader *r, const char *key) {
    if (r->status != CS_OK) return NULL;
    int i = 0;
    for (cJSON *c = r->root->child; c; c = c->next, i++) {
        if (strcmp(c->string, key) == 0) {
            r->consumed[i] = true;
            return cJSON_IsNull(c) ? NULL : c;
        }
    }
    return NULL;
}

bool cfg_has(cfg_reader *r, const char *key) {
    if (r->status != CS_OK) return false;
    cJSON *c = cJSON_GetObjectItemCaseSensitive(r->root, key);
    return c && !cJSON_IsNull(c);
}

static bool is_int(const cJSON *c) {
    return cJSON_IsNumber(c) && isfinite(c->valuedouble) && fabs(c->valuedouble) < 9.0e15 &&
           c->valuedouble == floor(c->valuedouble);
}

int64_t cfg_int(cfg_reader *r, const char *key, int64_t def, int64_t lo, int64_t hi) {
    cJSON *c = take(r, key);
    if (!c) return def;
    if (!is_int(c)) {
        cfg_fail(r, "field '%s' must be an integer", key);
        return def;
    }
    int64_t v = (int64_t)c->valuedouble;
    if (v < lo || v > hi) {
        cfg_fail(r, "field '%s' = %lld is outside [%lld, %lld]", key, (long long)v, (long long)lo,
                 (long long)hi);
        return def;
    }
    return v;
}

double cfg_float(cfg_reader *r, const char *key, double def, double lo, double hi) {
    cJSON *c = take(r, key);
    if (!c) return def;
    if (!cJSON_IsNumber(c) || !isfinite(c->valuedouble)) {
        cfg_fail(r, "field '%s' must be a finite number", key);
        return def;
    }
    if (c->valuedouble < lo || c->valuedouble > hi) {
        cfg_fail(r, "field '%s' = %g is outside [%g, %g]", key, c->valuedouble, lo, hi);
        return def;
    }
    return c->valuedouble;
}

bool cfg_bool(cfg_reader *r, const char *key, bool def) {
    cJSON *c = take(r, key);
    if (!c) return def;
    if (!cJSON_IsBool(c)) {
        cfg_fail(r, "field '%s' must be true or false", key);
        return def;
    }
    return cJSON_IsTrue(c);
}

const char *cfg_string(cfg_reader *r, const char *key, const char *def) {
    cJSON *c = take(r, key);
    if (!c) return def;
    if (!cJSON_IsString(c)) {
        cfg_fail(r, "field '%s' must be a string", key);
        return def;
    }
    return c->valuestring;
}

int cfg_enum(cfg_reader *r, const char *key, const char *def, const char *const *choices) {
    const char *v = cfg_string(r, key, def);
    int def_index = -1;
    for (int i = 0; choices[i]; i++) {
        if (v && strcmp(v, choices[i]) == 0) return i;
        if (def && strcmp(def, choices[i]) == 0) def_index = i;
    }
    char list[256] = "";
    size_t at = 0;
    for (int i = 0; choices[i] && at < sizeof list; i++)
        at += (size_t)snprintf(list + at, sizeof list - at, "%s%s", i ? ", " : "", choices[i]);
    if (v)
        cfg_fail(r, "field '%s' = \"%s\" is not supported (supported: %s)", key, v, list);
    else
        cfg_fail(r, "field '%s' is required (supported: %s)", key, list);
    return def_index < 0 ? 0 : def_index;
}

int cfg_int_list(cfg_reader *r, const char *key, int64_t *out, int max, int64_t lo, int64_t hi) {
    CS_ASSERT(max >= 1);
    cJSON *c = take(r, key);
    if (!c) return 0;
    int n = 0;
    if (is_int(c)) {
        out[0] = (int64_t)c->valuedouble;
        n = 1;
    } else if (cJSON_IsArray(c)) {
        for (cJSON *e = c->child; e; e = e->next) {
            if (n == max) {
                cfg_fail(r, "field '%s' has more than %d entries", key, max);
                return 0;
            }
            if (!is_int(e)) {
                cfg_fail(r, "field '%s'[%d] must be an integer", key, n);
                return 0;
            }
            out[n++] = (int64_t)e->valuedouble;
        }
    } else {
        cfg_fail(r, "field '%s' must be an integer or a list of integers", key);
        return 0;
    }
    for (int i = 0; i < n; i++) {
        if (out[i] < lo || out[i] > hi) {
            cfg_fail(r, "field '%s'[%d] = %lld is outside [%lld, %lld]", key, i,
                     (long long)out[i], (long long)lo, (long long)hi);
            return 0;
        }
    }
    return n;
}

int cfg_string_list(cfg_reader *r, const char *key, const char **out, int max) {
    cJSON *c = take(r, key);
    if (!c) return 0;
    if (!cJSON_IsArray(c)) {
        cfg_fail(r, "field '%s' must be a list of strings", key);
        return 0;
    }
    int n = 0;
    for (cJSON *e = c->child; e; e = e->next) {
        if (n == max) {
            cfg_fail(r, "field '%s' has more than %d entries", key, max);
            return 0;
        }
        if (!cJSON_IsString(e)) {
            cfg_fail(r, "field '%s'[%d] must be a string", key, n);
            return 0;
        }
        out[n++] = e->valuestring;
    }
    return n;
}

void cfg_require_null(cfg_reader *r, const char *key) {
    cJSON *c = take(r, key);
    if (c) {
        char *s = cJSON_PrintUnformatted(c);
        cfg_fail(r, "field '%s' = %.80s is not supported (only null)", key, s ? s : "?");
        free(s);
    }
}

void cfg_require_bool(cfg_reader *r, const char *key, bool value) {
    cJSON *c = take(r, key);
    if (c && (!cJSON_IsBool(c) || cJSON_IsTrue(c) != value))
        cfg_fail(r, "field '%s' is not supported unless it is %s", key, value ? "true" : "false");
}

void cfg_require_string(cfg_reader *r, const char *key, const char *value) {
    cJSON *c = take(r, key);
    if (c && (!cJSON_IsString(c) || strcmp(c->valuestring, value) != 0))
        cfg_fail(r, "field '%s' = %.80s is not supported (only \"%s\")", key,
                 cJSON_IsString(c) ? c->valuestring : "(not a string)", value);
}

void cfg_require_number(cfg_reader *r, const char *key, double value) {
    cJSON *c = take(r, key);
    if (c && (!cJSON_IsNumber(c) || c->valuedouble != value))
        cfg_fail(r, "field '%s' is not supported unless it is %g", key, value);
}

void cfg_ignore(cfg_reader *r, const char *const *keys) {
    for (; *keys; keys++) (void)take(r, *keys);
}

cs_status cfg_finish(cfg_reader *r) {
    if (r->status != CS_OK) return r->status;
    /* Name the fields nobody consumed (the first few; the count says the rest), so one run
     * shows the whole gap. A leading '_' marks bookkeeping fields (_class_name,
     * _diffusers_version, _name_or_path). */
    enum { SHOWN = 8 };
    char list[400] = "";
    size_t at = 0;
    int unread = 0, i = 0;
    for (cJSON *c = r->root->child; c; c = c->next, i++) {
        if (r->consumed[i] || c->string[0] == '_') continue;
        if (unread < SHOWN && at < sizeof list)
            at += (size_t)snprintf(list + at, sizeof list - at, "%s'%.60s'", unread ? ", " : "",
                                   c->string);
        unread++;
    }
    if (unread == 1)
        cfg_fail(r, "field %s is not supported by this engine", list);
    else if (unread > SHOWN)
        cfg_fail(r, "%d fields are not supported by this engine: %s and %d more", unread, list,
                 unread - SHOWN);
    else if (unread > 1)
        cfg_fail(r, "%d fields are not supported by this engine: %s", unread, list);
    return r->status;
}
