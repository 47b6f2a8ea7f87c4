/*
 * libFuzzer target for LoRA loading: the first byte picks the part.
 *   odd:  the rest is a LoRA name from a request (lora_name_check): an accepted name must
 *         be a plain file name (no separators, no leading '.', no control bytes).
 *   even: the rest is a LoRA .safetensors file, read by lora_file_load against small
 *         module tables (one Linear and one 3x3 conv in the UNet table, two Linears in the
 *         text encoder's), i.e. the kohya key -> module name mapping, the shape checks and
 *         the alpha/rank rule; an accepted file is fused into the tables' weights.
 * Seeds: tests/fuzz/corpus/fuzz_lora (tests/fuzz/make_seeds.py).
 */
#define _GNU_SOURCE
#include "fuzz_common.h"

#include "lora.h"
#include "lora_registry.h"

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static lora_module_table unet = {.prefix = "lora_unet_"}, te = {.prefix = "lora_te_"};
static float *weights[4];
static gemm_weights packed[4]; /* the layers' view of weights[] */
static int memfd = -1;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    static const struct {
        lora_module_table *t;
        const char *path;
        bool conv;
        int64_t in, out, k;
    } mods[4] = {
        {&unet, "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q", false, 8, 8, 1},
        {&unet, "mid_block.resnets.0.conv1", true, 4, 6, 3},
        {&te, "text_model.encoder.layers.0.self_attn.q_proj", false, 8, 8, 1},
        {&te, "text_model.encoder.layers.0.mlp.fc1", false, 8, 16, 1},
    };
    for (int i = 0; i < 4; i++) {
        weights[i] = calloc((size_t)(mods[i].out * mods[i].in * mods[i].k * mods[i].k), sizeof(float));
        packed[i] = gemm_f32(weights[i]);
        if (!weights[i] || !lora_module_add(mods[i].t, mods[i].path, mods[i].conv, mods[i].in,
                                            mods[i].out, mods[i].k, &packed[i]))
            abort();
    }
    memfd = memfd_create("fuzz_lora", 0);
    if (memfd < 0) abort();
    return 0;
}

static void check_name(const uint8_t *d, size_t n) {
    char *name = malloc(n + 1);
    if (!name) return;
    memcpy(name, d, n);
    name[n] = '\0';
    char msg[256];
    msg[0] = '\0';
    if (lora_name_check(name, msg, sizeof msg) == CS_OK) {
        size_t len = strlen(name);
        FUZZ_REQUIRE(len > 0 && len <= 200 && name[0] != '.');
        FUZZ_REQUIRE(!strchr(name, '/') && !strchr(name, '\\'));
        for (size_t i = 0; i < len; i++) FUZZ_REQUIRE((unsigned char)name[i] >= 0x20 && name[i] != 0x7f);
        FUZZ_REQUIRE(strcmp(name, "..") && strcmp(name, "."));
    } else {
        FUZZ_REQUIRE(msg[0]);
    }
    free(name);
}

static void load_file(const uint8_t *d, size_t n) {
    if (ftruncate(memfd, 0) != 0 || pwrite(memfd, d, n, 0) != (ssize_t)n) abort();
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", memfd);
    const lora_module_table *const tables[LORA_COMPONENTS] = {&unet, &te};
    lora_file *f = NULL;
    char msg[512];
    msg[0] = '\0';
    cs_status st = lora_file_load(path, "fuzz", tables, &f, msg, sizeof msg);
    if (st != CS_OK) {
        FUZZ_REQUIRE(f == NULL && msg[0] && memchr(msg, 0, sizeof msg));
        return;
    }
    FUZZ_REQUIRE(f && f->patched[LORA_UNET] + f->patched[LORA_TE] > 0);
    for (int c = 0; c < LORA_COMPONENTS; c++)
        for (int i = 0; i < f->slots[c]; i++) {
            const lora_delta *dl = f->deltas[c][i];
            if (!dl) continue;
            FUZZ_REQUIRE(dl->rank >= 1 && dl->rank <= LORA_MAX_RANK && dl->down && dl->up);
        }
    lora_fuse(f, tables, 0.5);
    lora_row row;
    double w = 1.0;
    lora_row_fill(&row, &f, &w, 1, LORA_UNET);
    FUZZ_REQUIRE(row.n <= 1);
    lora_file_unref(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    if (data[0] & 1)
        check_name(data + 1, size - 1);
    else
        load_file(data + 1, size - 1);
    return 0;
}
