/*
 * libFuzzer target for the CLIP tokenizer (engine/tokenizer.c): arbitrary bytes through
 * tokenizer_encode (padded to 77) and tokenizer_encode_full. Invalid UTF-8 must be
 * refused with a message; valid text must give ids inside the vocabulary, framed by BOS
 * and EOS, and both encodings must agree on the common prefix.
 */
#include "fuzz_common.h"

#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_clip_tokenizer();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const cs_tokenizer *t = fuzz_clip_tokenizer();
    char *text = malloc(size ? size : 1);
    if (!text) return 0;
    memcpy(text, data, size);
    char msg[256];
    msg[0] = '\0';
    enum { L = 77 };
    int64_t ids[L];
    int n = -1;
    cs_status st = tokenizer_encode(t, text, size, ids, L, &n, msg, sizeof msg);
    int64_t *full = NULL, count = 0;
    cs_status st2 = tokenizer_encode_full(t, text, size, &full, &count, msg, sizeof msg);
    FUZZ_REQUIRE((st == CS_OK) == (st2 == CS_OK));
    if (st == CS_OK) {
        const int64_t vocab = tokenizer_vocab_size(t);
        FUZZ_REQUIRE(n >= 2 && n <= L);
        FUZZ_REQUIRE(ids[0] == tokenizer_bos_id(t) && ids[n - 1] == tokenizer_eos_id(t));
        for (int i = 0; i < L; i++) FUZZ_REQUIRE(ids[i] >= 0 && ids[i] < vocab);
        for (int i = n; i < L; i++) FUZZ_REQUIRE(ids[i] == tokenizer_pad_id(t));
        FUZZ_REQUIRE(count >= 2 && full[0] == ids[0] && full[count - 1] == tokenizer_eos_id(t));
        for (int64_t i = 0; i < count; i++) FUZZ_REQUIRE(full[i] >= 0 && full[i] < vocab);
        for (int i = 1; i < n - 1; i++) FUZZ_REQUIRE(full[i] == ids[i]);
        free(full);
    } else {
        FUZZ_REQUIRE(full == NULL && msg[0]);
    }
    free(text);
    return 0;
}
