/*
 * libFuzzer target for single-file checkpoints' key map: the input (after one layout
 * byte) is a safetensors file whose names are LDM / CompVis names. ldm_config_build infers
 * the configuration from it; ldm_view then renames every component under the inferred
 * layout when there is one, else under a layout taken from the first byte (level counts,
 * EMA, OpenCLIP), so the rule tables are reached even when inference refuses the file.
 * Every tensor of a view must be found by its name and lie inside the source's bytes.
 * Seeds: tests/fuzz/corpus/fuzz_ldm (tests/fuzz/make_seeds.py).
 */
#include "fuzz_common.h"

#include "ldm_config.h"
#include "ldm_keymap.h"

#include <string.h>

static void check_view(const st_file *src, const st_file *v) {
    for (int64_t i = 0; i < v->count; i++) {
        const st_tensor *t = &v->tensors[i];
        FUZZ_REQUIRE(st_find(v, t->name) == t);
        FUZZ_REQUIRE(t->offset <= src->size && t->nbytes <= src->size - t->offset);
        if (t->nbytes) {
            volatile uint8_t b = src->data[t->offset + t->nbytes - 1];
            (void)b;
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const uint8_t b = data[0];
    uint8_t *file = malloc(size - 1 ? size - 1 : 1);
    if (!file) return 0;
    memcpy(file, data + 1, size - 1);
    char msg[512];
    st_file *src = NULL;
    if (st_parse(file, size - 1, "fuzz", &src, msg, sizeof msg) != CS_OK) {
        free(file);
        return 0;
    }
    static ldm_config cfg; /* large (three JSON buffers) */
    memset(&cfg, 0, sizeof cfg);
    ldm_layout lay;
    msg[0] = '\0';
    if (ldm_config_build(src, NULL, NULL, NULL, -1, &cfg, msg, sizeof msg) == CS_OK) {
        lay = cfg.layout;
    } else {
        FUZZ_REQUIRE(msg[0]);
        lay = (ldm_layout){.unet_layers = 1 + (b & 3), .vae_levels = 1 + ((b >> 2) & 3),
                           .openclip = b & 16, .unet_ema = b & 32, .text_layers = 1 + (b >> 6),
                           .vae_prefix = "first_stage_model."};
    }
    (void)ldm_has_ema(src);
    (void)ldm_count_index(src, "model.diffusion_model.input_blocks.");
    for (int c = LDM_UNET; c <= LDM_TEXT; c++) {
        st_file *v = NULL;
        msg[0] = '\0';
        if (ldm_view(src, (ldm_component)c, &lay, &v, msg, sizeof msg) == CS_OK) {
            check_view(src, v);
            st_close(v);
        } else {
            FUZZ_REQUIRE(v == NULL && msg[0]);
        }
    }
    msg[0] = '\0';
    if (ldm_vae_config(src, 0.18215, &cfg, msg, sizeof msg) != CS_OK) FUZZ_REQUIRE(msg[0]);
    st_close(src);
    free(file);
    return 0;
}
