/* Weight binder: a matching table binds and converts F16/BF16/F32 to fp32 in one block;
 * a mismatching one reports every missing, extra (unless ignored), mis-shaped and
 * wrong-dtype tensor in a single message naming the file. */
#include "check.h"
#include "st_build.h"
#include "weights.h"

static st_file *parse(stb_buf *img, const char *label) {
    char msg[512];
    st_file *f = NULL;
    cs_status st = st_parse(img->p, img->len, label, &f, msg, sizeof msg);
    CHECK_EQ_INT(st, CS_OK);
    if (st != CS_OK) fprintf(stderr, "%s\n", msg);
    return f;
}

static void test_good(void) {
    stb_file b = {0};
    const uint16_t w16[6] = {0x3c00, 0xc000, 0x3800, 0x0001, 0x7bff, 0x8000}; /* 1 -2 .5 ... */
    stb_tensor(&b, "lin.weight", "F16", 2, (int64_t[]){3, 2}, w16, sizeof w16);
    const float bias[3] = {0.25f, -1.0f, 3.0f};
    stb_tensor(&b, "lin.bias", "F32", 1, (int64_t[]){3}, bias, sizeof bias);
    const uint16_t cw[2] = {0x3f80, 0xc049};
    stb_tensor(&b, "blocks.1.conv.weight", "BF16", 4, (int64_t[]){2, 1, 1, 1}, cw, sizeof cw);
    const int64_t ids[4] = {0, 1, 2, 3};
    stb_tensor(&b, "position_ids", "I64", 2, (int64_t[]){1, 4}, ids, sizeof ids);
    stb_buf img = stb_finish(&b);
    st_file *f = parse(&img, "good.safetensors");
    if (!f) goto out;

    float *lw = NULL, *lb = NULL, *conv = NULL;
    weight_binder wb;
    wb_init(&wb);
    wb_add2(&wb, &lw, 3, 2, "lin.weight");
    wb_add1(&wb, &lb, 3, "lin.%s", "bias");
    wb_add4(&wb, &conv, 2, 1, 1, 1, "blocks.%d.conv.weight", 1);
    const char *const ignored[] = {"position_ids", NULL};
    weight_block blk;
    char msg[1024] = "x";
    CHECK_EQ_INT(wb_bind(&wb, f, ignored, &blk, msg, sizeof msg), CS_OK);
    CHECK_EQ_INT(msg[0], 0);
    CHECK_EQ_INT(blk.numel, 11);
    CHECK(lw && lb && conv);
    if (lw && lb && conv) {
        CHECK(lw >= blk.data && lw + 6 <= blk.data + blk.numel);
        CHECK(lw[0] == 1.0f && lw[1] == -2.0f && lw[2] == 0.5f && lw[3] == ldexpf(1.0f, -24));
        CHECK(lw[4] == 65504.0f && lw[5] == 0.0f && signbit(lw[5]));
        CHECK(lb[0] == 0.25f && lb[1] == -1.0f && lb[2] == 3.0f);
        CHECK(conv[0] == 1.0f && conv[1] == -3.140625f);
    }
    weight_block_free(&blk);
    CHECK(blk.data == NULL && blk.numel == 0);
    weight_block_free(NULL);

    /* Without the ignore list the buffer is an unexpected tensor. */
    CHECK_EQ_INT(wb_bind(&wb, f, NULL, &blk, msg, sizeof msg), CS_ERR_FORMAT);
    CHECK_STR_CONTAINS(msg, "unexpected tensor 'position_ids'");
    CHECK(blk.data == NULL);
    wb_deinit(&wb);
    wb_deinit(&wb); /* deinit leaves an empty binder */
    st_close(f);
out:
    free(img.p);
}

static void test_problems(void) {
    stb_file b = {0};
    const float four[4] = {1, 2, 3, 4};
    stb_tensor(&b, "a.weight", "F32", 1, (int64_t[]){4}, four, sizeof four);
    const int64_t i2[2] = {5, 6};
    stb_tensor(&b, "c.weight", "I64", 1, (int64_t[]){2}, i2, sizeof i2);
    stb_tensor(&b, "d.bias", "F32", 1, (int64_t[]){1}, four, 4);
    stb_tensor(&b, "e.extra", "F32", 1, (int64_t[]){1}, four, 4);
    stb_tensor(&b, "f.rank", "F32", 2, (int64_t[]){1, 3}, four, 12);
    stb_tensor(&b, "position_ids", "I64", 1, (int64_t[]){2}, i2, sizeof i2);
    stb_buf img = stb_finish(&b);
    st_file *f = parse(&img, "unet/diffusion_pytorch_model.safetensors");
    if (!f) goto out;

    float *a = NULL, *bb = NULL, *c = NULL, *d = NULL, *r = NULL;
    weight_binder wb;
    wb_init(&wb);
    wb_add2(&wb, &a, 2, 2, "a.weight"); /* mis-shaped: file has [4] */
    wb_add1(&wb, &bb, 8, "b.weight");   /* missing */
    wb_add1(&wb, &c, 2, "c.weight");    /* wrong dtype */
    wb_add1(&wb, &d, 1, "d.bias");      /* fine */
    wb_add1(&wb, &r, 3, "f.rank");      /* rank differs: file has [1, 3] */
    const char *const ignored[] = {"position_ids", "not.in.file", NULL};
    weight_block blk = {(float *)&blk, 99};
    char msg[2048];
    CHECK_EQ_INT(wb_bind(&wb, f, ignored, &blk, msg, sizeof msg), CS_ERR_FORMAT);
    CHECK(blk.data == NULL && blk.numel == 0);
    CHECK(a == NULL && bb == NULL && c == NULL && d == NULL && r == NULL);
    CHECK_STR_CONTAINS(msg, "unet/diffusion_pytorch_model.safetensors");
    CHECK_STR_CONTAINS(msg, "tensor 'a.weight' has shape [4], the config needs [2, 2]");
    CHECK_STR_CONTAINS(msg, "missing tensor 'b.weight'");
    CHECK_STR_CONTAINS(msg, "tensor 'c.weight' has dtype I64");
    CHECK_STR_CONTAINS(msg, "tensor 'f.rank' has shape [1, 3], the config needs [3]");
    CHECK_STR_CONTAINS(msg, "unexpected tensor 'e.extra'");
    CHECK(strstr(msg, "d.bias") == NULL);
    CHECK(strstr(msg, "position_ids") == NULL);
    CHECK(strstr(msg, "problems in all") == NULL);

    /* A table that names one tensor twice is reported too. */
    weight_binder dup;
    wb_init(&dup);
    wb_add1(&dup, &d, 1, "d.bias");
    wb_add1(&dup, &d, 1, "d.bias");
    const char *const rest[] = {"a.weight", "c.weight", "e.extra", "f.rank", "position_ids", NULL};
    CHECK_EQ_INT(wb_bind(&dup, f, rest, &blk, msg, sizeof msg), CS_ERR_FORMAT);
    CHECK_STR_CONTAINS(msg, "'d.bias' is bound twice");
    wb_deinit(&dup);

    /* Many problems: the first dozen are listed, the count says the rest. */
    weight_binder many;
    wb_init(&many);
    float *sink[20];
    for (int i = 0; i < 20; i++)
        wb_add1(&many, &sink[i], 1, "missing.%d", i);
    CHECK_EQ_INT(wb_bind(&many, f, NULL, &blk, msg, sizeof msg), CS_ERR_FORMAT);
    CHECK_STR_CONTAINS(msg, "missing tensor 'missing.0'");
    CHECK_STR_CONTAINS(msg, "missing tensor 'missing.11'");
    CHECK(strstr(msg, "'missing.12'") == NULL);
    CHECK_STR_CONTAINS(msg, "26 problems in all"); /* 20 missing + 6 unexpected */
    /* A tiny message buffer truncates but stays terminated. */
    char small[16];
    CHECK_EQ_INT(wb_bind(&many, f, NULL, &blk, small, sizeof small), CS_ERR_FORMAT);
    CHECK_EQ_INT(strlen(small), sizeof small - 1);
    CHECK_EQ_INT(wb_bind(&many, f, NULL, &blk, NULL, 0), CS_ERR_FORMAT);
    wb_deinit(&many);

    /* A name too long for the table makes the bind fail rather than match a prefix. */
    weight_binder lng;
    wb_init(&lng);
    char name[WB_MAX_NAME + 8];
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = 0;
    wb_add1(&lng, &d, 1, "%s", name);
    CHECK(wb_bind(&lng, f, NULL, &blk, msg, sizeof msg) != CS_OK);
    CHECK_STR_CONTAINS(msg, "unet/diffusion_pytorch_model.safetensors");
    wb_deinit(&lng);

    wb_deinit(&wb);
    st_close(f);
out:
    free(img.p);
}

/* More entries than the initial table capacity, all bound to distinct slots in order. */
static void test_large_table(void) {
    enum { N = 700 };
    stb_file b = {0};
    for (int i = 0; i < N; i++) {
        char name[32];
        snprintf(name, sizeof name, "layers.%d.scale", i);
        const float v[2] = {(float)i, (float)-i};
        stb_tensor(&b, name, "F32", 1, (int64_t[]){2}, v, sizeof v);
    }
    stb_buf img = stb_finish(&b);
    st_file *f = parse(&img, "big.safetensors");
    if (!f) goto out;
    static float *ptr[N];
    weight_binder wb;
    wb_init(&wb);
    for (int i = 0; i < N; i++)
        wb_add1(&wb, &ptr[i], 2, "layers.%d.scale", i);
    weight_block blk;
    char msg[512];
    CHECK_EQ_INT(wb_bind(&wb, f, NULL, &blk, msg, sizeof msg), CS_OK);
    CHECK_EQ_INT(blk.numel, 2 * N);
    int bad = 0;
    for (int i = 0; i < N; i++)
        bad += !ptr[i] || ptr[i][0] != (float)i || ptr[i][1] != (float)-i;
    CHECK_EQ_INT(bad, 0);
    weight_block_free(&blk);
    wb_deinit(&wb);
    st_close(f);
out:
    free(img.p);
}

int main(void) {
    test_good();
    test_problems();
    test_large_table();
    CHECK_DONE();
}
