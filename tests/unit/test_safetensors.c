/* safetensors reader: a well-formed file with every dtype reads back exactly (including
 * F16/BF16 subnormals, infinities and NaN, at misaligned offsets); every malformed header
 * is refused with CS_ERR_FORMAT and a message naming the file and the tensor; the real
 * reference files in the golden folder load. */
#include "check.h"
#include "safetensors.h"
#include "st_build.h"

#include <dirent.h>
#include <math.h>
#include <sys/stat.h>

static char *g_dir;
static int g_case;

/* Bit-exact float comparison (so -0 and NaN payloads are checked too). */
static uint32_t fbits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static void test_conversions(void) {
    /* F16: zeros, one, min subnormal, max subnormal, min normal, max, infinities, NaN. */
    CHECK_EQ_INT(fbits(st_f16_to_f32(0x0000)), fbits(0.0f));
    CHECK_EQ_INT(fbits(st_f16_to_f32(0x8000)), fbits(-0.0f));
    CHECK(st_f16_to_f32(0x3c00) == 1.0f);
    CHECK(st_f16_to_f32(0xc000) == -2.0f);
    CHECK(st_f16_to_f32(0x3555) == 0.333251953125f);
    CHECK(st_f16_to_f32(0x0001) == ldexpf(1.0f, -24));
    CHECK(st_f16_to_f32(0x8001) == -ldexpf(1.0f, -24));
    CHECK(st_f16_to_f32(0x03ff) == ldexpf(1023.0f, -24));
    CHECK(st_f16_to_f32(0x0200) == ldexpf(1.0f, -15));
    CHECK(st_f16_to_f32(0x0400) == ldexpf(1.0f, -14));
    CHECK(st_f16_to_f32(0x7bff) == 65504.0f);
    CHECK(isinf(st_f16_to_f32(0x7c00)) && st_f16_to_f32(0x7c00) > 0);
    CHECK(isinf(st_f16_to_f32(0xfc00)) && st_f16_to_f32(0xfc00) < 0);
    CHECK(isnan(st_f16_to_f32(0x7e00)));
    CHECK(isnan(st_f16_to_f32(0x7c01))); /* signalling NaN stays a NaN */
    CHECK(isnan(st_f16_to_f32(0xfe00)));
    /* Every finite F16 value converts exactly: compare with the textbook formula. */
    for (uint32_t h = 0; h < 0x10000; h++) {
        unsigned e = (h >> 10) & 0x1f, m = h & 0x3ff;
        if (e == 31) continue;
        float want = e ? ldexpf((float)(m | 0x400), (int)e - 25) : ldexpf((float)m, -24);
        if (h & 0x8000) want = -want;
        if (fbits(st_f16_to_f32((uint16_t)h)) != fbits(want)) {
            CHECK_EQ_INT(fbits(st_f16_to_f32((uint16_t)h)), fbits(want));
            break;
        }
    }
    /* BF16 is the top half of an fp32; subnormals and specials pass through. */
    CHECK(st_bf16_to_f32(0x3f80) == 1.0f);
    CHECK(st_bf16_to_f32(0xc049) == -3.140625f);
    CHECK(st_bf16_to_f32(0x0001) == ldexpf(1.0f, -133));
    CHECK_EQ_INT(fbits(st_bf16_to_f32(0x8000)), fbits(-0.0f));
    CHECK(isinf(st_bf16_to_f32(0xff80)) && st_bf16_to_f32(0xff80) < 0);
    CHECK(isnan(st_bf16_to_f32(0x7fc0)));
}

/* A file with every dtype; a 1-byte tensor first puts every later tensor at an odd
 * offset, so reads must not assume alignment. */
static void test_valid(void) {
    stb_file b = {0};
    const uint8_t odd[1] = {7};
    stb_tensor(&b, "pad.u8", "U8", 1, (int64_t[]){1}, odd, 1);
    const float f32[6] = {1.5f, -2.25f, 0.0f, -0.0f, INFINITY, 3.0e-39f /* subnormal */};
    stb_tensor(&b, "a.f32", "F32", 2, (int64_t[]){2, 3}, f32, sizeof f32);
    const uint16_t f16[6] = {0x3c00, 0x0001, 0x7c00, 0xfe00, 0x8000, 0x7bff};
    stb_tensor(&b, "b.f16", "F16", 3, (int64_t[]){1, 2, 3}, f16, sizeof f16);
    const uint16_t bf16[4] = {0x3f80, 0xc049, 0x0001, 0x7fc0};
    stb_tensor(&b, "c.bf16", "BF16", 1, (int64_t[]){4}, bf16, sizeof bf16);
    const int64_t i64[3] = {-1, INT64_MAX, 42};
    stb_tensor(&b, "d.i64", "I64", 1, (int64_t[]){3}, i64, sizeof i64);
    const double f64[2] = {0.1, -1e300};
    stb_tensor(&b, "e.f64", "F64", 1, (int64_t[]){2}, f64, sizeof f64);
    const int32_t i32[2] = {INT32_MIN, 5};
    stb_tensor(&b, "f.i32", "I32", 1, (int64_t[]){2}, i32, sizeof i32);
    const int16_t i16[2] = {-300, 300};
    stb_tensor(&b, "g.i16", "I16", 1, (int64_t[]){2}, i16, sizeof i16);
    const int8_t i8[2] = {-128, 127};
    stb_tensor(&b, "h.i8", "I8", 1, (int64_t[]){2}, i8, sizeof i8);
    const uint8_t flags[2] = {0, 1};
    stb_tensor(&b, "i.bool", "BOOL", 1, (int64_t[]){2}, flags, sizeof flags);
    const float scalar = 6.5f;
    stb_tensor(&b, "j.scalar", "F32", 0, NULL, &scalar, sizeof scalar);
    stb_tensor(&b, "k.empty", "F32", 2, (int64_t[]){0, 4}, NULL, 0);
    stb_buf img = stb_finish(&b);
    char *path = stb_write(g_dir, "valid.safetensors", img.p, img.len);

    char msg[512] = "";
    st_file *f = NULL;
    cs_status st = st_open(path, &f, msg, sizeof msg);
    CHECK_EQ_INT(st, CS_OK);
    if (st != CS_OK) {
        fprintf(stderr, "%s\n", msg);
        goto out;
    }
    CHECK_EQ_INT(f->count, 12);
    CHECK(st_find(f, "nope") == NULL);
    CHECK(st_find(f, "__metadata__") == NULL);

    const st_tensor *t = st_find(f, "a.f32");
    float fv[8];
    CHECK(t && t->dtype == ST_F32 && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3);
    CHECK(t && t->numel == 6 && t->nbytes == 24 && t->offset % 4 != 0);
    CHECK_EQ_INT(st_read_f32(f, t, fv, msg, sizeof msg), CS_OK);
    for (int i = 0; i < 6; i++)
        CHECK_EQ_INT(fbits(fv[i]), fbits(f32[i]));

    t = st_find(f, "b.f16");
    CHECK(t && t->ndim == 3 && t->numel == 6 && t->shape[2] == 3);
    CHECK_EQ_INT(st_read_f32(f, t, fv, msg, sizeof msg), CS_OK);
    CHECK(fv[0] == 1.0f && fv[1] == ldexpf(1.0f, -24) && isinf(fv[2]) && isnan(fv[3]));
    CHECK(fbits(fv[4]) == fbits(-0.0f) && fv[5] == 65504.0f);

    t = st_find(f, "c.bf16");
    CHECK_EQ_INT(st_read_f32(f, t, fv, msg, sizeof msg), CS_OK);
    CHECK(fv[0] == 1.0f && fv[1] == -3.140625f && fv[2] == ldexpf(1.0f, -133) && isnan(fv[3]));

    t = st_find(f, "e.f64");
    CHECK_EQ_INT(st_read_f32(f, t, fv, msg, sizeof msg), CS_OK);
    CHECK(fv[0] == 0.1f && isinf(fv[1]) && fv[1] < 0);

    int64_t iv[4];
    t = st_find(f, "d.i64");
    CHECK(t && t->dtype == ST_I64 && t->offset % 8 != 0);
    CHECK_EQ_INT(st_read_i64(f, t, iv, msg, sizeof msg), CS_OK);
    CHECK(iv[0] == -1 && iv[1] == INT64_MAX && iv[2] == 42);
    CHECK_EQ_INT(st_read_i64(f, st_find(f, "f.i32"), iv, msg, sizeof msg), CS_OK);
    CHECK(iv[0] == INT32_MIN && iv[1] == 5);
    CHECK_EQ_INT(st_read_i64(f, st_find(f, "g.i16"), iv, msg, sizeof msg), CS_OK);
    CHECK(iv[0] == -300 && iv[1] == 300);
    CHECK_EQ_INT(st_read_i64(f, st_find(f, "h.i8"), iv, msg, sizeof msg), CS_OK);
    CHECK(iv[0] == -128 && iv[1] == 127);
    CHECK_EQ_INT(st_read_i64(f, st_find(f, "i.bool"), iv, msg, sizeof msg), CS_OK);
    CHECK(iv[0] == 0 && iv[1] == 1);
    CHECK_EQ_INT(st_read_i64(f, st_find(f, "pad.u8"), iv, msg, sizeof msg), CS_OK);
    CHECK(iv[0] == 7);

    t = st_find(f, "j.scalar");
    CHECK(t && t->ndim == 0 && t->numel == 1);
    CHECK_EQ_INT(st_read_f32(f, t, fv, msg, sizeof msg), CS_OK);
    CHECK(fv[0] == 6.5f);
    t = st_find(f, "k.empty");
    CHECK(t && t->numel == 0 && t->nbytes == 0);
    CHECK_EQ_INT(st_read_f32(f, t, fv, msg, sizeof msg), CS_OK);

    /* Wrong-kind reads are refused, naming file and tensor, even for an empty tensor. */
    CHECK_EQ_INT(st_read_f32(f, st_find(f, "d.i64"), fv, msg, sizeof msg), CS_ERR_FORMAT);
    CHECK_STR_CONTAINS(msg, "d.i64");
    CHECK_STR_CONTAINS(msg, path);
    CHECK_EQ_INT(st_read_i64(f, st_find(f, "a.f32"), iv, msg, sizeof msg), CS_ERR_FORMAT);
    CHECK_STR_CONTAINS(msg, "a.f32");
    CHECK_EQ_INT(st_read_i64(f, st_find(f, "k.empty"), iv, msg, sizeof msg), CS_ERR_FORMAT);
    st_close(f);

    /* The same image parsed from memory, and every strict prefix of it refused. */
    CHECK_EQ_INT(st_parse(img.p, img.len, "mem", &f, msg, sizeof msg), CS_OK);
    st_close(f);
    for (size_t n = 0; n < img.len; n++) {
        uint8_t *copy = malloc(n ? n : 1); /* exact size, so ASan sees any over-read */
        memcpy(copy, img.p, n);
        st = st_parse(copy, n, "prefix", &f, msg, sizeof msg);
        if (st != CS_ERR_FORMAT || f != NULL) {
            fprintf(stderr, "prefix of %zu bytes: status %d\n", n, st);
            check_failures++;
            st_close(f);
        }
        free(copy);
    }
out:
    free(path);
    free(img.p);
}

/* Writes an image to its own file and expects CS_ERR_FORMAT with every needle (and the
 * path) in the message. */
static void expect_bad_image(stb_buf img, const char *needle1, const char *needle2) {
    char name[64];
    snprintf(name, sizeof name, "bad%02d.safetensors", ++g_case);
    char *path = stb_write(g_dir, name, img.p, img.len);
    char msg[512] = "";
    st_file *f = (st_file *)&msg; /* must be reset to NULL on failure */
    cs_status st = st_open(path, &f, msg, sizeof msg);
    if (st != CS_ERR_FORMAT) fprintf(stderr, "case %d (%s): status %d\n", g_case, needle1, st);
    CHECK_EQ_INT(st, CS_ERR_FORMAT);
    CHECK(f == NULL);
    if (st == CS_OK) st_close(f);
    CHECK_STR_CONTAINS(msg, path);
    if (needle1) CHECK_STR_CONTAINS(msg, needle1);
    if (needle2) CHECK_STR_CONTAINS(msg, needle2);
    free(path);
    free(img.p);
}

static void expect_bad(const char *hdr, size_t data_len, const char *needle1, const char *needle2) {
    uint8_t *data = calloc(data_len ? data_len : 1, 1);
    expect_bad_image(stb_image(hdr, data, data_len), needle1, needle2);
    free(data);
}

#define T(name, rest) "\"" name "\":{" rest "}"
#define F32(shape, b, e) "\"dtype\":\"F32\",\"shape\":" shape ",\"data_offsets\":[" b "," e "]"

static void test_malformed(void) {
    /* Sizes of the file and the header. */
    stb_buf seven = {0};
    stb_put(&seven, "\x02\0\0\0\0\0\0", 7);
    expect_bad_image(seven, "too short", NULL);
    expect_bad_image(stb_image_len(0, "", 0, NULL, 0), "not valid JSON", NULL); /* 8 zeros */
    expect_bad_image(stb_image_len(1000, "{}", 2, NULL, 0), "header length 1000", NULL);
    expect_bad_image(stb_image_len(UINT64_MAX, "{}", 2, NULL, 0), "header length", NULL);
    expect_bad_image(stb_image_len((uint64_t)1 << 63, "{}", 2, NULL, 0), "header length", NULL);
    expect_bad_image(stb_image_len(0, "{}", 2, NULL, 0), "not valid JSON", NULL);

    /* JSON syntax and shape of the header. */
    expect_bad("{\"a\":{\"dtype\":\"F32\",", 0, "not valid JSON", NULL);
    expect_bad("[1, 2]", 0, "not a JSON object", NULL);
    expect_bad("\"str\"", 0, "not a JSON object", NULL);
    expect_bad("{} x", 0, "after the JSON value", NULL);
    expect_bad("{}{}", 0, "after the JSON value", NULL);
    expect_bad_image(stb_image_len(4, "{}\0\0", 4, NULL, 0), "control byte 0x00", NULL);
    expect_bad("{\"a\xff\":{}}", 0, "UTF-8", NULL);
    expect_bad("{\"\xc0\xae\":{}}", 0, "UTF-8", NULL); /* overlong encoding */
    expect_bad("{\"a\tb\x01\":{}}", 0, "control byte 0x01", NULL);
    expect_bad("{\"a\":5}", 0, "'a'", "not a JSON object");
    expect_bad("{\"a\":[]}", 0, "'a'", "not a JSON object");
    expect_bad("{\"__metadata__\":[]}", 0, "__metadata__", "not an object");
    expect_bad("{\"__metadata__\":{\"format\":1}}", 0, "__metadata__", "'format'");
    expect_bad("{\"__metadata__\":{\"f\":\"a\",\"f\":\"b\"}}", 0, "'f'", "twice");
    expect_bad("{\"__metadata__\":{},\"__metadata__\":{}}", 0, "__metadata__", "twice");

    /* Entries. */
    expect_bad("{" T("w", "\"dtype\":\"F8\",\"shape\":[1],\"data_offsets\":[0,1]") "}", 1, "'w'",
               "dtype 'F8'");
    expect_bad("{" T("w", "\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]") "}", 4, "'w'",
               "dtype");
    expect_bad("{" T("w", "\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]") "}", 4, "'w'",
               "dtype");
    expect_bad("{" T("w", "\"shape\":[1],\"data_offsets\":[0,4]") "}", 4, "'w'", "dtype");
    expect_bad("{" T("w", "\"dtype\":\"F32\",\"data_offsets\":[0,4]") "}", 4, "'w'", "shape");
    expect_bad("{" T("w", "\"dtype\":\"F32\",\"shape\":1,\"data_offsets\":[0,4]") "}", 4, "'w'",
               "shape");
    expect_bad("{" T("w", F32("[1]", "0", "4") ",\"extra\":1") "}", 4, "'w'", "'extra'");
    expect_bad("{" T("w", F32("[1]", "0", "4") ",\"dtype\":\"I32\"") "}", 4, "'w'",
               "'dtype' appears twice");
    expect_bad("{" T("w", F32("[1,1,1,1,1,1,1,1,1]", "0", "4")) "}", 4, "'w'", "rank 9");

    /* Shapes: negative, fractional, non-numeric, huge, overflowing. */
    expect_bad("{" T("w", F32("[-1]", "0", "4")) "}", 4, "'w'", "shape[0]");
    expect_bad("{" T("w", F32("[2, 1.5]", "0", "12")) "}", 12, "'w'", "shape[1]");
    expect_bad("{" T("w", F32("[\"2\"]", "0", "8")) "}", 8, "'w'", "shape[0]");
    expect_bad("{" T("w", F32("[null]", "0", "8")) "}", 8, "'w'", "shape[0]");
    expect_bad("{" T("w", F32("[9223372036854775807]", "0", "4")) "}", 4, "'w'", "shape[0]");
    expect_bad("{" T("w", F32("[1e400]", "0", "4")) "}", 4, "'w'", "shape[0]");
    expect_bad("{" T("w", F32("[9007199254740992, 4096]", "0", "4")) "}", 4, "'w'",
               "element count overflows");
    expect_bad("{" T("w", F32("[4294967296, 4294967296]", "0", "4")) "}", 4, "'w'",
               "element count overflows");
    expect_bad("{" T("w", F32("[2147483648, 2147483648]", "0", "4")) "}", 4, "'w'",
               "byte size overflows");
    expect_bad("{" T("w", "\"dtype\":\"U8\",\"shape\":[2147483648,2147483648],"
                          "\"data_offsets\":[0,4]") "}",
               4, "'w'", "need 4611686018427387904");

    /* Offsets: arity, type, sign, order, range, size. */
    expect_bad("{" T("w", "\"dtype\":\"F32\",\"shape\":[1]") "}", 4, "'w'", "data_offsets");
    expect_bad("{" T("w", "\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4]") "}", 4, "'w'",
               "[begin, end]");
    expect_bad("{" T("w", "\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]") "}", 8, "'w'",
               "[begin, end]");
    expect_bad("{" T("w", "\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":\"0-4\"") "}", 4, "'w'",
               "[begin, end]");
    expect_bad("{" T("w", F32("[1]", "-4", "0")) "}", 4, "'w'", "data_offsets");
    expect_bad("{" T("w", F32("[1]", "0.5", "4.5")) "}", 8, "'w'", "data_offsets");
    expect_bad("{" T("w", F32("[1]", "\"0\"", "4")) "}", 4, "'w'", "data_offsets");
    expect_bad("{" T("w", F32("[1]", "8", "4")) "}", 8, "'w'", "data_offsets [8, 4]");
    expect_bad("{" T("w", F32("[2]", "0", "8")) "}", 4, "'w'", "outside the data area of 4");
    expect_bad("{" T("w", F32("[1]", "18446744073709551612", "18446744073709551616")) "}", 4, "'w'",
               "data_offsets");
    expect_bad("{" T("w", F32("[1]", "0", "1e300")) "}", 4, "'w'", "data_offsets");
    expect_bad("{" T("w", F32("[2]", "0", "4")) "}", 8, "'w'", "need 8");
    expect_bad("{" T("w", F32("[1]", "0", "8")) "}", 8, "'w'", "holds 8 bytes");
    expect_bad("{" T("w", F32("[0]", "0", "4")) "}", 4, "'w'", "need 0");

    /* Overlaps, including one hidden behind an empty tensor between the two, and names. */
    expect_bad("{" T("a", F32("[2]", "0", "8")) "," T("b", F32("[2]", "4", "12")) "}", 12,
               "'a' and 'b' overlap", NULL);
    expect_bad("{" T("a", F32("[4]", "0", "16")) "," T("z", F32("[0]", "4", "4")) "," T(
                   "b", F32("[1]", "8", "12")) "}",
               16, "'a' and 'b' overlap", NULL);
    expect_bad("{" T("a", F32("[1]", "4", "8")) "," T("b", F32("[1]", "4", "8")) "}", 8, "overlap",
               NULL);
    expect_bad("{" T("a", F32("[1]", "0", "4")) "," T("a", F32("[1]", "4", "8")) "}", 8,
               "tensor 'a' appears twice", NULL);
    expect_bad("{" T("a", F32("[1]", "0", "4")) "," T("a", F32("[1]", "0", "4")) "}", 4,
               "tensor 'a' appears twice", NULL);
}

static void test_io_errors(void) {
    char msg[512];
    st_file *f = NULL;
    /* An empty file is malformed, a folder or a missing path is an i/o error. */
    char *path = stb_write(g_dir, "empty.safetensors", NULL, 0);
    CHECK_EQ_INT(st_open(path, &f, msg, sizeof msg), CS_ERR_FORMAT);
    CHECK_STR_CONTAINS(msg, path);
    CHECK(f == NULL);
    free(path);

    char sub[4096];
    snprintf(sub, sizeof sub, "%s/folder.safetensors", g_dir);
    CHECK(mkdir(sub, 0700) == 0);
    CHECK_EQ_INT(st_open(sub, &f, msg, sizeof msg), CS_ERR_IO);
    CHECK_STR_CONTAINS(msg, sub);
    CHECK_STR_CONTAINS(msg, "not a regular file");

    snprintf(sub, sizeof sub, "%s/missing.safetensors", g_dir);
    CHECK_EQ_INT(st_open(sub, &f, msg, sizeof msg), CS_ERR_IO);
    CHECK_STR_CONTAINS(msg, sub);
    CHECK_STR_CONTAINS(msg, "cannot open");
    CHECK(f == NULL);

    /* A trailing-whitespace header (tabs, newlines) and an empty header object are fine. */
    stb_buf img = stb_image("{ \"__metadata__\" : {} }\t\r\n  ", NULL, 0);
    CHECK_EQ_INT(st_parse(img.p, img.len, NULL, &f, msg, sizeof msg), CS_OK);
    CHECK(f && f->count == 0);
    st_close(f);
    free(img.p);
    st_close(NULL);
}

/* Every safetensors file below dir loads and every tensor reads. */
static int load_tree(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int loaded = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (stat(path, &sb) != 0) continue;
        if (S_ISDIR(sb.st_mode)) {
            loaded += load_tree(path);
            continue;
        }
        size_t n = strlen(e->d_name);
        if (n < 12 || strcmp(e->d_name + n - 12, ".safetensors") != 0) continue;
        char msg[512];
        st_file *f;
        cs_status st = st_open(path, &f, msg, sizeof msg);
        CHECK_EQ_INT(st, CS_OK);
        if (st != CS_OK) {
            fprintf(stderr, "%s\n", msg);
            continue;
        }
        CHECK(f->count > 0);
        for (int64_t i = 0; i < f->count; i++) {
            const st_tensor *t = &f->tensors[i];
            bool is_float = t->dtype == ST_F32 || t->dtype == ST_F16 || t->dtype == ST_BF16 ||
                            t->dtype == ST_F64;
            void *buf = malloc((size_t)(t->numel ? t->numel : 1) * 8);
            st = is_float ? st_read_f32(f, t, buf, msg, sizeof msg)
                          : st_read_i64(f, t, buf, msg, sizeof msg);
            CHECK_EQ_INT(st, CS_OK);
            free(buf);
        }
        st_close(f);
        loaded++;
    }
    closedir(d);
    return loaded;
}

static void test_golden(void) {
    struct stat sb;
    if (stat(CS_GOLDEN_DIR, &sb) != 0) {
        printf("note: %s absent, real files not checked\n", CS_GOLDEN_DIR);
        return;
    }
    int n = load_tree(CS_GOLDEN_DIR);
    printf("golden: %d safetensors files loaded and read\n", n);
    CHECK(n > 0);
}

int main(void) {
    g_dir = stb_tmpdir();
    test_conversions();
    test_valid();
    test_malformed();
    test_io_errors();
    test_golden();
    printf("malformed cases: %d\n", g_case);
    stb_rmtree(g_dir);
    free(g_dir);
    CHECK_DONE();
}
