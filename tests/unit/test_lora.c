/* LoRA loading and application: the name rule (path-like names refused), the folder
 * (symlink escapes refused), the kohya key mapping (every key of the golden LoRA maps to
 * a layer), clear errors for unknown keys and misfit shapes, the side path of Linear and
 * LoCon conv layers against fused weights on odd shapes (and per item in a batch), and
 * reference counting (run under ASan). */
#include <math.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "layers.h"
#include "lora_build.h"
#include "lora_registry.h"
#include "model_lora.h"

#define MODEL_DIR CS_GOLDEN_DIR "/pipeline_tiny/model"
#define GOLDEN_LORA CS_GOLDEN_DIR "/pipeline_tiny_lora/ddim_scale_1_5/lora.safetensors"

static void test_names(void) {
    char msg[256];
    const char *bad[] = {"", "../x", "a/b", "/etc/passwd", ".hidden", "a\\b", "x.ckpt", "y.pt",
                         "\xff\xfe", "tab\there", ".safetensors", NULL};
    for (const char **p = bad; *p; p++) {
        CHECK(lora_name_check(*p, msg, sizeof msg) != CS_OK);
        CHECK(msg[0] != '\0');
    }
    const char *good[] = {"style", "style.safetensors", "my lora v2", "ünïcode", "a..b", NULL};
    for (const char **p = good; *p; p++) CHECK(lora_name_check(*p, msg, sizeof msg) == CS_OK);
    char longname[300];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    CHECK(lora_name_check(longname, msg, sizeof msg) != CS_OK);
}

static void test_folder(const cs_model *m) {
    char *dir = stb_tmpdir(), *other = stb_tmpdir();
    char msg[512], canon[256], path[4096];
    lora_registry *r = lora_registry_new();
    CHECK(lora_registry_resolve(r, "x", canon, path, msg, sizeof msg) != CS_OK);
    CHECK_STR_CONTAINS(msg, "no LoRA folder");
    CHECK(lora_registry_set_dir(r, "/nonexistent/folder", msg, sizeof msg) != CS_OK);
    CHECK(lora_registry_set_dir(r, dir, msg, sizeof msg) == CS_OK);
    const lora_module_table *tables[LORA_COMPONENTS];
    model_lora_tables(m, tables);
    lb_write(dir, "in.safetensors", tables, 7, 0, 2, false, 5);
    lb_write(other, "out.safetensors", tables, 7, 0, 2, false, 5);
    char link[4096], target[4096];
    snprintf(link, sizeof link, "%s/evil.safetensors", dir);
    snprintf(target, sizeof target, "%s/out.safetensors", other);
    CHECK(symlink(target, link) == 0);
    CHECK(lora_registry_resolve(r, "in", canon, path, msg, sizeof msg) == CS_OK);
    CHECK(strcmp(canon, "in") == 0);
    CHECK(lora_registry_resolve(r, "in.safetensors", canon, path, msg, sizeof msg) == CS_OK);
    CHECK(lora_registry_resolve(r, "evil", canon, path, msg, sizeof msg) != CS_OK);
    CHECK_STR_CONTAINS(msg, "outside the LoRA folder");
    CHECK(lora_registry_resolve(r, "missing", canon, path, msg, sizeof msg) != CS_OK);
    CHECK_STR_CONTAINS(msg, "not found");
    int count;
    char **names = lora_registry_list(r, &count);
    CHECK_EQ_INT(count, 1); /* the escaping symlink is not listed */
    CHECK(names && strcmp(names[0], "in") == 0);
    cs_lora_list_free(names);

    /* Refcounts: the cache holds one, each get another; everything freed (ASan). */
    lora_file *a, *b;
    CHECK(lora_registry_get(r, "in", tables, &a, msg, sizeof msg) == CS_OK);
    CHECK(lora_registry_get(r, "in.safetensors", tables, &b, msg, sizeof msg) == CS_OK);
    CHECK(a == b);
    CHECK_EQ_INT(atomic_load(&a->refs), 3);
    lora_file_unref(a);
    lora_file_unref(b);
    CHECK_EQ_INT(atomic_load(&a->refs), 1);
    lora_registry_free(r);
    stb_rmtree(dir);
    stb_rmtree(other);
    free(dir);
    free(other);
}

/* Every key of the golden kohya LoRA maps to a layer of the golden model. */
static void test_golden_keys(const cs_model *m) {
    struct stat sb;
    if (stat(GOLDEN_LORA, &sb) != 0) return;
    const lora_module_table *tables[LORA_COMPONENTS];
    model_lora_tables(m, tables);
    char msg[512];
    lora_file *f = NULL;
    CHECK(lora_file_load(GOLDEN_LORA, "golden", tables, &f, msg, sizeof msg) == CS_OK);
    if (!f) {
        fprintf(stderr, "%s\n", msg);
        return;
    }
    printf("golden LoRA: %d UNet + %d text-encoder layers patched\n", f->patched[LORA_UNET],
           f->patched[LORA_TE]);
    CHECK_EQ_INT(f->patched[LORA_UNET] + f->patched[LORA_TE], 108); /* case.json modules_patched */
    CHECK(f->patched[LORA_TE] > 0);
    bool conv = false;
    for (int i = 0; i < f->slots[LORA_UNET]; i++)
        conv |= f->deltas[LORA_UNET][i] && tables[LORA_UNET]->items[i].conv &&
                tables[LORA_UNET]->items[i].kernel == 3;
    CHECK(conv); /* the LoCon 3×3 resnet conv1 layers map */
    lora_file_unref(f);
}

/* A file with one tensor `key` (shape dims) besides a valid module. */
static void write_bad(const char *dir, const char *key, int ndim, const int64_t *dims) {
    stb_file f = {0};
    uint64_t seed = 9;
    lb_tensor(&f, key, false, ndim, dims, &seed, 1);
    stb_buf img = stb_finish(&f);
    free(stb_write(dir, "bad.safetensors", img.p, img.len));
    free(img.p);
}

static void test_errors(const cs_model *m) {
    char *dir = stb_tmpdir(), msg[512], path[4096];
    const lora_module_table *tables[LORA_COMPONENTS];
    model_lora_tables(m, tables);
    snprintf(path, sizeof path, "%s/bad.safetensors", dir);
    lora_file *f;
    write_bad(dir, "lora_te2_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight", 2,
              (const int64_t[]){2, 32});
    CHECK(lora_file_load(path, "bad", tables, &f, msg, sizeof msg) != CS_OK);
    CHECK_STR_CONTAINS(msg, "lora_te2_text_model_encoder_layers_0_self_attn_q_proj");
    CHECK_STR_CONTAINS(msg, "bad.safetensors");
    char key[300];
    snprintf(key, sizeof key, "%s.lora_down.weight", tables[LORA_TE]->items[0].name);
    write_bad(dir, key, 2, (const int64_t[]){2, tables[LORA_TE]->items[0].in + 1});
    CHECK(lora_file_load(path, "bad", tables, &f, msg, sizeof msg) != CS_OK);
    CHECK_STR_CONTAINS(msg, tables[LORA_TE]->items[0].name); /* no lora_up: the module is named */
    {   /* both halves, but down does not fit the layer: the tensor is named */
        stb_file sf = {0};
        uint64_t seed = 3;
        const lora_module *mod = &tables[LORA_TE]->items[0];
        lb_tensor(&sf, key, false, 2, (const int64_t[]){2, mod->in + 1}, &seed, 1);
        char upkey[300];
        snprintf(upkey, sizeof upkey, "%s.lora_up.weight", mod->name);
        lb_tensor(&sf, upkey, false, 2, (const int64_t[]){mod->out, 2}, &seed, 1);
        stb_buf img = stb_finish(&sf);
        free(stb_write(dir, "bad.safetensors", img.p, img.len));
        free(img.p);
        CHECK(lora_file_load(path, "bad", tables, &f, msg, sizeof msg) == CS_ERR_FORMAT);
        CHECK_STR_CONTAINS(msg, key);
        CHECK_STR_CONTAINS(msg, "does not fit");
    }
    snprintf(key, sizeof key, "%s.hada_w1_a", tables[LORA_TE]->items[0].name);
    write_bad(dir, key, 2, (const int64_t[]){2, 2});
    CHECK(lora_file_load(path, "bad", tables, &f, msg, sizeof msg) == CS_ERR_UNSUPPORTED);
    CHECK_STR_CONTAINS(msg, "hada_w1_a");
    stb_rmtree(dir);
    free(dir);
}

/* The side path of a layer equals its fused weights; batch items are independent. */
static void test_side_path(void) {
    enum { B = 3, R = 3 };
    uint64_t seed = 42;
    /* LoCon on an odd conv: 5 -> 6 channels, 3×3, stride 2, asymmetric padding, 7×9 input. */
    conv_layer cv = {.in_ch = 5, .out_ch = 6, .kernel = 3, .stride = 2, .pad_top = 1,
                     .pad_left = 0, .pad_bottom = 1, .pad_right = 1, .lora_slot = 1};
    const int64_t h = 7, w = 9, cols = 5 * 9;
    float wt[6 * 45], bias[6], down[R * 45], up[6 * R], x[B * 5 * 63];
    for (size_t i = 0; i < sizeof wt / 4; i++) wt[i] = lb_rand(&seed);
    for (size_t i = 0; i < sizeof bias / 4; i++) bias[i] = lb_rand(&seed);
    for (size_t i = 0; i < sizeof down / 4; i++) down[i] = lb_rand(&seed);
    for (size_t i = 0; i < sizeof up / 4; i++) up[i] = lb_rand(&seed);
    for (size_t i = 0; i < sizeof x / 4; i++) x[i] = lb_rand(&seed);
    float wpk[6 * 45];
    memcpy(wpk, wt, sizeof wt);
    CHECK(gemm_pack_panels(wpk, 6, 45, CONV_PANELS));
    cv.w = gemm_f32(wpk);
    cv.b = bias;
    lora_delta d = {.rank = R, .alpha_over_r = 2.0 / R, .down = down, .up = up};
    const lora_delta *deltas[1] = {&d};
    lora_row rows[B] = {{.n = 1, .use = {{deltas, 0.8}}}, {.n = 0}, {.n = 2, .use = {{deltas, -1.5}, {deltas, 0.5}}}};
    const double total[B] = {0.8, 0, -1.0};
    lora_rowset set = {.rows = B, .row = rows};

    cs_ctx c;
    CHECK(ctx_init(&c, 1 << 20) == CS_OK);
    int64_t ho, wo;
    conv_out_size(&cv, h, w, &ho, &wo);
    const int64_t on = 6 * ho * wo;
    float *y = ctx_alloc(&c, B * on), *ref = ctx_alloc(&c, on), *one = ctx_alloc(&c, on);
    c.lora = &set;
    conv_forward(&c, &cv, y, x, B, h, w, NULL, NULL);
    float fused[6 * 45];
    double max_err = 0;
    for (int b = 0; b < B; b++) {
        const double s = total[b] * d.alpha_over_r;
        for (int64_t o = 0; o < 6; o++)
            for (int64_t j = 0; j < cols; j++) {
                double acc = 0;
                for (int r = 0; r < R; r++) acc += (double)up[o * R + r] * down[r * cols + j];
                fused[o * cols + j] = (float)(wt[o * cols + j] + s * acc);
            }
        op_conv2d_shape sh = {.batch = 1, .in_ch = 5, .height = h, .width = w, .out_ch = 6,
                              .kernel = 3, .stride = 2, .pad_top = 1, .pad_left = 0,
                              .pad_bottom = 1, .pad_right = 1};
        op_conv2d_ref(ref, x + b * 5 * h * w, fused, bias, &sh);
        for (int64_t i = 0; i < on; i++) max_err = fmax(max_err, fabs(y[b * on + i] - ref[i]));
        /* The same item alone gives the same bits. */
        lora_rowset alone = {.rows = 1, .row = &rows[b]};
        c.lora = &alone;
        conv_forward(&c, &cv, one, x + b * 5 * h * w, 1, h, w, NULL, NULL);
        CHECK(memcmp(one, y + b * on, (size_t)on * sizeof(float)) == 0);
        c.lora = &set;
    }
    printf("LoCon side path vs fused conv: max abs error %.3g\n", max_err);
    CHECK(max_err < 1e-4);

    /* Linear: 7 -> 4, rows 5. */
    float lwp[4 * 7];
    memcpy(lwp, wt, sizeof lwp);
    CHECK(gemm_pack_panels(lwp, 4, 7, LINEAR_PANELS));
    linear_layer lin = {.in = 7, .out = 4, .lora_slot = 1, .w = gemm_f32(lwp), .b = bias};
    float ly[B * 5 * 4], lref[5 * 4], lx[B * 5 * 7], ldown[R * 7], lup[4 * R];
    for (size_t i = 0; i < sizeof lx / 4; i++) lx[i] = lb_rand(&seed);
    for (size_t i = 0; i < sizeof ldown / 4; i++) ldown[i] = lb_rand(&seed);
    for (size_t i = 0; i < sizeof lup / 4; i++) lup[i] = lb_rand(&seed);
    d.down = ldown;
    d.up = lup;
    linear_forward(&c, &lin, ly, lx, B, 5);
    max_err = 0;
    for (int b = 0; b < B; b++) {
        const double s = total[b] * d.alpha_over_r;
        for (int64_t o = 0; o < 4; o++)
            for (int64_t j = 0; j < 7; j++) {
                double acc = 0;
                for (int r = 0; r < R; r++) acc += (double)lup[o * R + r] * ldown[r * 7 + j];
                fused[o * 7 + j] = (float)(wt[o * 7 + j] + s * acc);
            }
        op_linear_ref(lref, lx + b * 35, fused, bias, 5, 7, 4);
        for (int i = 0; i < 20; i++) max_err = fmax(max_err, fabs(ly[b * 20 + i] - lref[i]));
    }
    printf("Linear side path vs fused: max abs error %.3g\n", max_err);
    CHECK(max_err < 1e-4);
    c.lora = NULL;
    ctx_deinit(&c);
}

int main(void) {
    test_names();
    test_side_path();
    struct stat sb;
    if (stat(MODEL_DIR, &sb) != 0) {
        printf("golden model not found at %s; model tests skipped\n", MODEL_DIR);
        CHECK_DONE();
    }
    char msg[1024];
    cs_model *m;
    if (cs_model_load(MODEL_DIR, &m, msg, sizeof msg) != CS_OK) {
        fprintf(stderr, "load: %s\n", msg);
        return 1;
    }
    test_folder(m);
    test_golden_keys(m);
    test_errors(m);
    /* Request validation: field "loras". */
    cs_gen_params p = cs_gen_default_params(m);
    const cs_lora_spec bad_w = {"x", NAN}, bad_name = {"../x", 1};
    const char *field = NULL;
    p.loras = &bad_w;
    p.num_loras = 1;
    CHECK(cs_params_validate(m, &p, &field, msg, sizeof msg) == CS_ERR_INVALID_ARG);
    CHECK(field && strcmp(field, "loras") == 0);
    p.loras = &bad_name;
    CHECK(cs_params_validate(m, &p, &field, msg, sizeof msg) == CS_ERR_INVALID_ARG);
    p.num_loras = CS_MAX_LORAS_PER_JOB + 1;
    CHECK(cs_params_validate(m, &p, &field, msg, sizeof msg) == CS_ERR_INVALID_ARG);
    cs_model_free(m);
    CHECK_DONE();
}
