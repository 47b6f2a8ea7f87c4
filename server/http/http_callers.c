/*
 * Which jobs belong to which caller, for the A1111 routes that act on "the current job"
 * (GET /sdapi/v1/progress, POST /sdapi/v1/interrupt and /skip): the web UI has one user,
 * a server has many, so these act on the caller's own jobs only.
 *
 * A caller is the client's IP address plus a digest of its Authorization header (so two
 * API keys behind one proxy are two callers, and one client's connections are one caller
 * whatever port they come from). The table keeps the last few jobs of the most recent
 * callers; the oldest caller is forgotten first.
 *
 * Threads: MHD's polling thread; a mutex keeps it safe anyway.
 */
#include "http_internal.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

enum { CALLERS = 256, JOBS_PER_CALLER = 8 };

typedef struct caller_jobs {
    char caller[96];
    uint64_t jobs[JOBS_PER_CALLER]; /* most recent first; 0 = empty */
    uint64_t last_use;
    bool skipped; /* the last stop was POST skip, not interrupt */
} caller_jobs;

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static caller_jobs g_callers[CALLERS];
static uint64_t g_clock;

void http_caller_identify(http_req *r) {
    char addr[INET6_ADDRSTRLEN] = "?";
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;
    if (sa && sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, addr, sizeof addr);
    else if (sa && sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, addr, sizeof addr);
    /* FNV-1a of the credentials: tells keys apart without keeping them. */
    const char *auth = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Authorization");
    uint64_t h = 0xcbf29ce484222325ull;
    for (const char *p = auth ? auth : ""; *p; p++) h = (h ^ (unsigned char)*p) * 0x100000001b3ull;
    snprintf(r->caller, sizeof r->caller, "%s/%016llx", addr, (unsigned long long)h);
}

void http_caller_track(http_req *r) {
    pthread_mutex_lock(&g_mu);
    caller_jobs *slot = NULL, *oldest = &g_callers[0];
    for (int i = 0; i < CALLERS && !slot; i++) {
        if (!strcmp(g_callers[i].caller, r->caller)) slot = &g_callers[i];
        if (g_callers[i].last_use < oldest->last_use) oldest = &g_callers[i];
    }
    if (!slot) {
        slot = oldest;
        memset(slot, 0, sizeof *slot);
        snprintf(slot->caller, sizeof slot->caller, "%s", r->caller);
    }
    memmove(slot->jobs + 1, slot->jobs, (JOBS_PER_CALLER - 1) * sizeof slot->jobs[0]);
    slot->jobs[0] = r->job_id;
    slot->last_use = ++g_clock;
    pthread_mutex_unlock(&g_mu);
}

int http_caller_jobs(const http_req *r, uint64_t *out, int max) {
    int n = 0;
    pthread_mutex_lock(&g_mu);
    for (int i = 0; i < CALLERS; i++)
        if (g_callers[i].caller[0] && !strcmp(g_callers[i].caller, r->caller))
            for (int k = 0; k < JOBS_PER_CALLER && n < max && g_callers[i].jobs[k]; k++)
                out[n++] = g_callers[i].jobs[k];
    pthread_mutex_unlock(&g_mu);
    return n;
}

void http_caller_set_skipped(const http_req *r, bool skipped) {
    pthread_mutex_lock(&g_mu);
    for (int i = 0; i < CALLERS; i++)
        if (g_callers[i].caller[0] && !strcmp(g_callers[i].caller, r->caller))
            g_callers[i].skipped = skipped;
    pthread_mutex_unlock(&g_mu);
}

bool http_caller_skipped(const http_req *r) {
    bool skipped = false;
    pthread_mutex_lock(&g_mu);
    for (int i = 0; i < CALLERS; i++)
        if (g_callers[i].caller[0] && !strcmp(g_callers[i].caller, r->caller))
            skipped = g_callers[i].skipped;
    pthread_mutex_unlock(&g_mu);
    return skipped;
}
