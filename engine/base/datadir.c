/* Bundled-data lookup (see datadir.h). */
#include "datadir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef CS_DATA_DIR
#define CS_DATA_DIR "config"
#endif

static bool exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

static bool try_dir(const char *dir, const char *rel, char *out, size_t size) {
    if (!dir || !*dir) return false;
    int len = snprintf(out, size, "%s/%s", dir, rel);
    return len > 0 && (size_t)len < size && exists(out);
}

bool datadir_find(const char *rel, char *out, size_t size) {
    if (try_dir(getenv("CFGSERVE_DATA_DIR"), rel, out, size)) return true;
    char exe[4096];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len > 0) {
        exe[len] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) *slash = '\0';
        static const char *const up[] = {"/../share/cfgserve", "/../config", "/../../config"};
        char dir[4200];
        for (size_t i = 0; i < sizeof up / sizeof up[0]; i++) {
            snprintf(dir, sizeof dir, "%s%s", exe, up[i]);
            if (try_dir(dir, rel, out, size)) return true;
        }
    }
    return try_dir(CS_DATA_DIR, rel, out, size);
}
