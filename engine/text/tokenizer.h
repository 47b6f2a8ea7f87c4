/*
 * CLIP byte-level BPE tokenizer, id-for-id compatible with transformers 4.37's slow
 * CLIPTokenizer when ftfy is not installed (the usual diffusers installation):
 *
 *   1. added/special tokens ("<|startoftext|>", "<|endoftext|>", SD 2.x's "!" pad token, the
 *      tokenizer_config.json added_tokens_decoder) are split out of the raw text first;
 *   2. every other piece goes through BERT's BasicTokenizer: control/format characters,
 *      NUL and U+FFFD removed, whitespace normalised, CJK ideographs made separate words,
 *      NFC, lower-casing (no accent stripping, no punctuation split);
 *   3. CLIP's regex splits words into pieces, each piece's UTF-8 bytes are mapped through
 *      bytes_to_unicode and merged by BPE (the last symbol carries "</w>");
 *   4. <|startoftext|> ... <|endoftext|> around the ids.
 *
 * A loaded tokenizer is immutable: any number of threads may encode with it at once.
 *
 *     cs_tokenizer *t;
 *     if (tokenizer_load("model/tokenizer", &t, msg, sizeof msg) != CS_OK) ...
 *     int64_t ids[77]; int n;
 *     tokenizer_encode(t, text, strlen(text), ids, tokenizer_max_length(t), &n, msg, sizeof msg);
 *     tokenizer_free(t);
 */
#ifndef CS_TOKENIZER_H
#define CS_TOKENIZER_H

#include "common.h"

typedef struct cs_tokenizer cs_tokenizer;

/* Longest text encode accepts, in bytes (prompts are far shorter; this bounds memory). */
enum { TOKENIZER_MAX_TEXT_BYTES = 1 << 20 };

/* Loads dir/vocab.json, dir/merges.txt, dir/tokenizer_config.json and (when present)
 * dir/special_tokens_map.json. Every file is validated; errors name the file (and line or
 * key). On failure *out is NULL. */
cs_status tokenizer_load(const char *dir, cs_tokenizer **out, char *msg, size_t msg_size);
void tokenizer_free(cs_tokenizer *t);

/* Encodes text[0, len) (UTF-8; invalid UTF-8 is CS_ERR_INVALID_ARG) the way
 * `tokenizer(text, padding="max_length", max_length=max_len, truncation=True).input_ids`
 * does: writes exactly max_len ids (BOS, at most max_len - 2 tokens, EOS, then the pad
 * id). *n_unpadded receives the count before padding. max_len must be >= 2. */
cs_status tokenizer_encode(const cs_tokenizer *t, const char *text, size_t len, int64_t *ids,
                           int max_len, int *n_unpadded, char *msg, size_t msg_size);

/* The complete encoding, BOS and EOS included, neither truncated nor padded (what
 * `tokenizer(text).input_ids` gives). *ids is a new array the caller frees. */
cs_status tokenizer_encode_full(const cs_tokenizer *t, const char *text, size_t len, int64_t **ids,
                                int64_t *count, char *msg, size_t msg_size);

/* tokenizer_config.json's model_max_length (77 for CLIP; 77 when absent or "unlimited"). */
int tokenizer_max_length(const cs_tokenizer *t);

/* Special ids: BOS, EOS and the padding id. */
int64_t tokenizer_bos_id(const cs_tokenizer *t);
int64_t tokenizer_eos_id(const cs_tokenizer *t);
int64_t tokenizer_pad_id(const cs_tokenizer *t);
/* One more than the largest id the tokenizer can produce (embedding rows needed). */
int64_t tokenizer_vocab_size(const cs_tokenizer *t);

#endif
