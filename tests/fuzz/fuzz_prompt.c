/*
 * libFuzzer target for the A1111 prompt syntax: arbitrary (valid UTF-8) text through
 * prompt_parse_attention, then the pieces through prompt_make_chunks with the bundled
 * CLIP tokenizer, as the text encoder does for CS_PROMPT_A1111 prompts. Chunks must be
 * well formed: BOS ... EOS/pad framing, finite positive weights where tokens are.
 */
#include "fuzz_common.h"

#include "prompt_syntax.h"

#include <math.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_clip_tokenizer();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 4096 || !cs_utf8_valid((const char *)data, size) || memchr(data, 0, size))
        return 0; /* the request layer refuses these before the engine sees them */
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    char msg[256];
    msg[0] = '\0';
    prompt_pieces pieces = {0};
    cs_status st = prompt_parse_attention(text, &pieces, msg, sizeof msg);
    if (st != CS_OK) {
        FUZZ_REQUIRE(st == CS_ERR_INVALID_ARG && msg[0] && pieces.count == 0);
        free(text);
        return 0;
    }
    for (int i = 0; i < pieces.count; i++) {
        const prompt_piece *p = &pieces.items[i];
        FUZZ_REQUIRE(p->text);
        FUZZ_REQUIRE(p->is_break || isfinite(p->weight));
    }
    const cs_tokenizer *t = fuzz_clip_tokenizer();
    prompt_chunks ch = {0};
    /* CLIP's 75-token chunks, or a short text encoder's (the bundled models: 18). */
    const int chunk = (size & 1) ? PROMPT_CHUNK_TOKENS : 18;
    st = prompt_make_chunks(t, &pieces, chunk, 8, &ch, msg, sizeof msg);
    if (st == CS_OK) {
        FUZZ_REQUIRE(ch.count >= 1 && ch.count <= 8 && ch.ids && ch.weights);
        const int w = chunk + 2;
        for (int c = 0; c < ch.count; c++) {
            FUZZ_REQUIRE(ch.ids[c * w] == tokenizer_bos_id(t));
            for (int k = 0; k < w; k++) {
                FUZZ_REQUIRE(ch.ids[c * w + k] >= 0 && ch.ids[c * w + k] < tokenizer_vocab_size(t));
                FUZZ_REQUIRE(isfinite(ch.weights[c * w + k]));
            }
        }
        prompt_chunks_free(&ch);
    } else {
        FUZZ_REQUIRE(msg[0]);
    }
    prompt_pieces_free(&pieces);
    free(text);
    return 0;
}
