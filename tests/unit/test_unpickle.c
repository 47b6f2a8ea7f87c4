/* Restricted unpickler and .ckpt reader: a valid state dict, hostile opcodes and globals,
 * limits, strided tensors, and broken zip archives; every error names file and problem. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zip.h>

#include "check.h"
#include "ckpt.h"
#include "unpickle.h"

typedef struct buf {
    uint8_t p[4096];
    size_t n;
} buf;

static void put(buf *b, const void *s, size_t n) {
    memcpy(b->p + b->n, s, n);
    b->n += n;
}
#define PUT(b, lit) put(b, lit, sizeof lit - 1)
static void str(buf *b, const char *s) {
    uint8_t op[2] = {0x8c, (uint8_t)strlen(s)};
    put(b, op, 2);
    put(b, s, strlen(s));
}

/* {"state_dict": OrderedDict(w=<tensor (2,3) with `stride`>), "global_step": 875000} */
static buf state_dict(const char *rebuild_global, const char *stride) {
    buf b = {.n = 0};
    PUT(&b, "\x80\x02}(");
    str(&b, "state_dict");
    PUT(&b, "ccollections\nOrderedDict\n)R(");
    str(&b, "w");
    put(&b, rebuild_global, strlen(rebuild_global));
    PUT(&b, "((");
    str(&b, "storage");
    PUT(&b, "ctorch\nFloatStorage\n");
    str(&b, "0");
    str(&b, "cpu");
    PUT(&b, "K\x07tQK\x01K\x02K\x03\x86");
    put(&b, stride, strlen(stride));
    PUT(&b, "\x89" "ccollections\nOrderedDict\n)RtRu");
    str(&b, "global_step");
    PUT(&b, "J\xf8\x59\x0d\x00u.");
    return b;
}

static cs_status parse(const buf *b, pk_state_dict *sd, char *msg, size_t n) {
    return unpickle_state_dict(b->p, b->n, "t.ckpt", sd, msg, n);
}

static void expect_refused(const buf *b, const char *needle) {
    char msg[512] = "";
    pk_state_dict sd;
    CHECK(parse(b, &sd, msg, sizeof msg) == CS_ERR_FORMAT);
    CHECK_STR_CONTAINS(msg, "t.ckpt");
    CHECK_STR_CONTAINS(msg, needle);
    CHECK_EQ_INT(sd.count, 0);
}

static void test_valid(void) {
    buf b = state_dict("ctorch._utils\n_rebuild_tensor_v2\n", "K\x03K\x01\x86");
    char msg[512];
    pk_state_dict sd;
    CHECK(parse(&b, &sd, msg, sizeof msg) == CS_OK);
    CHECK_EQ_INT(sd.count, 1);
    CHECK_EQ_INT(sd.global_step, 875000);
    if (sd.count == 1) {
        CHECK(strcmp(sd.tensors[0].name, "w") == 0);
        CHECK_EQ_INT(sd.tensors[0].ndim, 2);
        CHECK_EQ_INT(sd.tensors[0].shape[1], 3);
        CHECK_EQ_INT(sd.tensors[0].storage_offset, 1);
        CHECK_EQ_INT(sd.tensors[0].storage_numel, 7);
    }
    pk_state_dict_free(&sd);
}

static void test_hostile(void) {
    buf b = {.n = 0};
    PUT(&b, "\x80\x02" "cos\nsystem\n");
    str(&b, "echo pwned");
    PUT(&b, "\x85R.");
    expect_refused(&b, "refusing global os.system");
    expect_refused(&b, "byte 2");
    /* an allowed-looking reduce target that is not on the list */
    b = state_dict("ctorch._utils\n_rebuild_qtensor\n", "K\x03K\x01\x86");
    expect_refused(&b, "torch._utils._rebuild_qtensor");
    /* REDUCE whose callable is not a global */
    b.n = 0;
    PUT(&b, "\x80\x02K\x01)R.");
    expect_refused(&b, "REDUCE");
    /* INST, OBJ, NEWOBJ, EXT1/2/4, PERSID (text), BINBYTES */
    static const char *const ops[] = {"i", "o", "\x81", "\x82", "\x83", "\x84", "P", "B"};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        b.n = 0;
        PUT(&b, "\x80\x02(");
        put(&b, ops[i], 1);
        PUT(&b, "os\nsystem\n.");
        expect_refused(&b, "refusing opcode");
        expect_refused(&b, "byte 3");
    }
    /* BUILD on anything but a dict */
    b.n = 0;
    PUT(&b, "\x80\x02K\x01}b.");
    expect_refused(&b, "BUILD");
}

static void test_limits(void) {
    buf b = {.n = 0};
    PUT(&b, "\x80\x02");
    for (int i = 0; i < 300; i++) PUT(&b, "(");
    expect_refused(&b, "MARK nesting too deep");
    b.n = 0;
    PUT(&b, "\x80\x02}");
    expect_refused(&b, "ends without STOP");
    b.n = 0;
    PUT(&b, "\x80\x02X\xff\xff\xff\x00");
    expect_refused(&b, "past the end");
    b.n = 0;
    PUT(&b, "\x80\x02h\x05.");
    expect_refused(&b, "memo");
    b.n = 0;
    PUT(&b, "\x80\x02K\x01K\x02.");
    expect_refused(&b, "exactly one object");
    b.n = 0;
    PUT(&b, "\x80\x02]K\x01s.");
    expect_refused(&b, "SETITEM");
    /* transposed (non-contiguous) tensor */
    b = state_dict("ctorch._utils\n_rebuild_tensor_v2\n", "K\x01K\x02\x86");
    expect_refused(&b, "non-contiguous");
}

/* ---- zip archives ---- */

static uint8_t *make_zip(const buf *pkl, const void *storage, size_t storage_len, size_t *len) {
    zip_source_t *src = zip_source_buffer_create(NULL, 0, 0, NULL);
    zip_t *z = zip_open_from_source(src, ZIP_TRUNCATE, NULL);
    zip_source_keep(src);
    zip_file_add(z, "archive/data.pkl", zip_source_buffer(z, pkl->p, pkl->n, 0), 0);
    if (storage)
        zip_file_add(z, "archive/data/0", zip_source_buffer(z, storage, storage_len, 0), 0);
    CHECK(zip_close(z) == 0);
    zip_source_open(src);
    zip_source_seek(src, 0, SEEK_END);
    *len = (size_t)zip_source_tell(src);
    zip_source_seek(src, 0, SEEK_SET);
    uint8_t *out = malloc(*len);
    zip_source_read(src, out, *len);
    zip_source_close(src);
    zip_source_free(src);
    return out;
}

static void test_zip(void) {
    const float data[7] = {0, 1, 2, 3, 4, 5, 6};
    buf pkl = state_dict("ctorch._utils\n_rebuild_tensor_v2\n", "K\x03K\x01\x86");
    size_t len;
    uint8_t *z = make_zip(&pkl, data, sizeof data, &len);
    char msg[512];
    st_file *f;
    int64_t step;
    CHECK(ckpt_parse(z, len, "t.ckpt", &f, &step, msg, sizeof msg) == CS_OK);
    CHECK_EQ_INT(step, 875000);
    if (f) {
        const st_tensor *t = st_find(f, "w");
        float got[6];
        CHECK(t && st_read_f32(f, t, got, msg, sizeof msg) == CS_OK);
        if (t) CHECK(got[0] == 1.0f && got[5] == 6.0f); /* storage offset 1 */
        st_close(f);
    }
    /* truncated archive */
    CHECK(ckpt_parse(z, len / 2, "t.ckpt", &f, &step, msg, sizeof msg) == CS_ERR_FORMAT);
    CHECK_STR_CONTAINS(msg, "t.ckpt: not a readable zip archive");
    /* bad central directory: its offset in the end record points past the file */
    uint8_t *bad = malloc(len);
    memcpy(bad, z, len);
    bad[len - 22 + 16] ^= 0x40;
    CHECK(ckpt_parse(bad, len, "t.ckpt", &f, &step, msg, sizeof msg) == CS_ERR_FORMAT);
    CHECK_STR_CONTAINS(msg, "t.ckpt: not a readable zip archive");
    free(bad);
    free(z);
    /* storage shorter than the pickle says */
    z = make_zip(&pkl, data, sizeof data - 4, &len);
    CHECK(ckpt_parse(z, len, "t.ckpt", &f, &step, msg, sizeof msg) == CS_ERR_FORMAT);
    CHECK_STR_CONTAINS(msg, "archive/data/0 holds 24 bytes");
    free(z);
    /* missing storage member */
    z = make_zip(&pkl, NULL, 0, &len);
    CHECK(ckpt_parse(z, len, "t.ckpt", &f, &step, msg, sizeof msg) == CS_ERR_FORMAT);
    CHECK_STR_CONTAINS(msg, "missing archive member archive/data/0");
    free(z);
}

int main(void) {
    test_valid();
    test_hostile();
    test_limits();
    test_zip();
    CHECK_DONE();
}
