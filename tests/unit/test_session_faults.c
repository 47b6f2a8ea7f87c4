/* Faults inside the engine that must fail one job or one call cleanly:
 *  1. a job whose latents go NaN/Inf (here: a LoRA with huge but finite values, which the
 *     loader accepts, overflows the UNet's rows of that job) fails alone with "numerical
 *     error at step 1", is refused by later cs_step calls, and its batch companion runs on
 *     to the bit-identical result of a solo run;
 *  2. out of memory (RLIMIT_AS in a child process) while loading the model or allocating
 *     a session's arena gives an error message, never a crash. Skipped under ASan, whose
 *     shadow memory needs more address space than any useful limit.
 * Uses the golden tiny pipeline. */
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "golden_model.h"
#include "lora_build.h"
#include "model_lora.h"
#include "job.h"
#include "session.h"

#define MODEL_DIR CS_GOLDEN_DIR "/pipeline_tiny/model"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define UNDER_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define UNDER_SANITIZER 1
#endif
#endif

static cs_job *make_job(cs_session *s, const cs_model *m, const char *lora) {
    cs_gen_params p = cs_gen_default_params(m);
    p.prompt = "a red cube";
    p.steps = 4;
    p.seed = 11;
    const cs_lora_spec spec = {lora, 1.0};
    p.loras = lora ? &spec : NULL;
    p.num_loras = lora ? 1 : 0;
    char msg[1024];
    cs_job *j = NULL;
    if (cs_job_new(s, &p, &j, msg, sizeof msg) != CS_OK) {
        fprintf(stderr, "job: %s\n", msg);
        check_failures++;
    }
    return j;
}

static void test_nan_job_fails_alone(cs_model *m, const char *dir) {
    char msg[1024];
    const lora_module_table *tables[LORA_COMPONENTS];
    model_lora_tables(m, tables);
    /* Finite values up to 1e30 in every UNet layer: up·down·x overflows float. */
    const lora_module_table empty = {.prefix = "lora_te_"};
    const lora_module_table *unet_only[LORA_COMPONENTS] = {tables[LORA_UNET], &empty};
    stb_file f = {0};
    char name[LORA_MODULE_NAME + 32];
    uint64_t seed = 5;
    for (int i = 0; i < unet_only[0]->count; i++) {
        const lora_module *mod = &unet_only[0]->items[i];
        const int64_t k = mod->conv ? mod->kernel : 1;
        snprintf(name, sizeof name, "%s.lora_down.weight", mod->name);
        lb_tensor(&f, name, false, mod->conv ? 4 : 2, (const int64_t[]){1, mod->in, k, k}, &seed,
                  1e30f);
        snprintf(name, sizeof name, "%s.lora_up.weight", mod->name);
        lb_tensor(&f, name, false, mod->conv ? 4 : 2, (const int64_t[]){mod->out, 1, 1, 1}, &seed,
                  1e30f);
    }
    stb_buf img = stb_finish(&f);
    free(stb_write(dir, "overflow.safetensors", img.p, img.len));
    free(img.p);
    CHECK(cs_model_set_lora_dir(m, dir, msg, sizeof msg) == CS_OK);

    cs_session_params sp = cs_session_default_params(m);
    sp.max_images = 2;
    cs_session *s;
    if (cs_session_new(m, &sp, &s, msg, sizeof msg) != CS_OK) {
        fprintf(stderr, "session: %s\n", msg);
        check_failures++;
        return;
    }
    cs_job *solo = make_job(s, m, NULL);
    while (solo && !cs_job_done(solo)) CHECK(cs_step(s, &solo, 1, msg, sizeof msg) == CS_OK);
    cs_job *bad = make_job(s, m, "overflow"), *good = make_job(s, m, NULL);
    if (!solo || !bad || !good) return;
    cs_job *both[2] = {bad, good};
    CHECK(cs_job_error(bad) == NULL);
    CHECK(cs_step(s, both, 2, msg, sizeof msg) == CS_OK); /* the batch itself succeeds */
    const char *err = cs_job_error(bad);
    printf("bad job: %s\n", err ? err : "(no error)");
    CHECK_STR_CONTAINS(err ? err : "", "numerical error at step 1");
    CHECK(cs_job_error(good) == NULL);
    /* The failed job is refused, naming why; the companion goes on alone. */
    CHECK(cs_step(s, both, 2, msg, sizeof msg) == CS_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(msg, "numerical error");
    while (!cs_job_done(good)) CHECK(cs_step(s, &good, 1, msg, sizeof msg) == CS_OK);
    CHECK(cs_job_error(good) == NULL);
    const size_t bytes = (size_t)(good->n_images * good->image_numel) * sizeof(float);
    CHECK(memcmp(good->latents, solo->latents, bytes) == 0);
    cs_job_free(solo);
    cs_job_free(bad);
    cs_job_free(good);
    cs_session_free(s);
}

#ifndef UNDER_SANITIZER
/* Runs fn in a child under an address-space limit of `extra` bytes beyond the current
 * size; returns the child's exit status (0 done, 1 refused with a message), or 128+signal. */
static int in_child_with_limit(size_t extra, int (*fn)(void *), void *arg) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        FILE *f = fopen("/proc/self/statm", "r");
        unsigned long pages = 0;
        if (!f || fscanf(f, "%lu", &pages) != 1) _exit(3);
        fclose(f);
        struct rlimit rl;
        rl.rlim_cur = rl.rlim_max = pages * (size_t)sysconf(_SC_PAGESIZE) + extra;
        if (setrlimit(RLIMIT_AS, &rl) != 0) _exit(3);
        int rc = fn(arg);
        fflush(stdout);
        _exit(rc);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int load_model(void *arg) {
    (void)arg;
    char msg[1024];
    cs_model *m;
    cs_status st = cs_model_load(MODEL_DIR, &m, msg, sizeof msg);
    if (st != CS_OK) {
        printf("  load refused: %s: %s\n", cs_status_str(st), msg);
        /* Out of memory must be named as such, not as a malformed file. */
        return msg[0] && !strstr(msg, "invalid JSON") ? 1 : 4;
    }
    cs_model_free(m);
    return 0;
}

static int new_session(void *arg) {
    const cs_model *m = arg;
    cs_session_params sp = cs_session_default_params(m);
    sp.max_images = 64; /* an arena far beyond the limit */
    sp.max_width = sp.max_height = 1024;
    char msg[1024];
    cs_session *s;
    cs_status st = cs_session_new(m, &sp, &s, msg, sizeof msg);
    if (st != CS_OK) {
        printf("  session refused: %s: %s\n", cs_status_str(st), msg);
        return st == CS_ERR_NOMEM && msg[0] ? 1 : 4;
    }
    cs_session_free(s);
    return 0;
}

#endif

static void test_out_of_memory(const cs_model *m) {
#ifdef UNDER_SANITIZER
    (void)m;
    printf("out-of-memory checks skipped under a sanitizer\n");
#else
    /* Limits from tight to roomy: every load either completes or says why; one of them must
     * be refused (the limit bites) and the roomiest must succeed. */
    int refused = 0, done = 0;
    for (size_t mb = 1; mb <= 256; mb *= 2) {
        int rc = in_child_with_limit(mb << 20, load_model, NULL);
        printf("model load with %zu MiB of address space to spare: %s\n", mb,
               rc == 0 ? "loaded" : rc == 1 ? "refused with a message" : "CRASHED");
        CHECK(rc == 0 || rc == 1);
        refused += rc == 1;
        done += rc == 0;
    }
    CHECK(refused > 0 && done > 0);
    int rc = in_child_with_limit(64u << 20, new_session, (void *)m);
    printf("session arena beyond the limit: %s\n", rc == 1 ? "refused with a message" : "NOT refused");
    CHECK(rc == 1);
#endif
}

/* 3. An assertion in a worker thread takes the whole process down (SIGABRT, message on
 *    stderr): the main thread, blocked in pthread_join, must not be left hanging. */
static void *failing_thread(void *arg) {
    (void)arg;
    CS_ASSERT(arg != NULL);
    return NULL;
}

static void test_assert_in_thread_aborts(void) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(20); /* a hang would end as SIGALRM, which the check below tells apart */
        if (!freopen("/dev/null", "w", stderr)) _exit(3);
        pthread_t t;
        if (pthread_create(&t, NULL, failing_thread, NULL) != 0) _exit(3);
        pthread_join(t, NULL);
        _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    printf("assertion in a worker thread: %s\n",
           WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT ? "process aborted" : "NOT aborted");
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
}

int main(void) {
    test_assert_in_thread_aborts();
    cs_model *m;
    const int loaded = golden_model_load(MODEL_DIR, &m);
    if (loaded != GOLDEN_LOADED) return loaded == GOLDEN_ABSENT ? 0 : 1;
    char *dir = stb_tmpdir();
    test_nan_job_fails_alone(m, dir);
    test_out_of_memory(m);
    cs_model_free(m);
    stb_rmtree(dir);
    free(dir);
    CHECK_DONE();
}
