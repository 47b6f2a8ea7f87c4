/*
 * The tokenizer's loaded state, shared by tokenizer_load.c (which builds it from the files,
 * with tokenizer_config.c reading the configs) and tokenizer.c (which encodes with it).
 * Immutable once tokenizer_load returns.
 */
#ifndef CS_TOKENIZER_INTERNAL_H
#define CS_TOKENIZER_INTERNAL_H

#include "strmap.h"
#include "tokenizer.h"

/* transformers' CLIPTokenizer reads at most this many merges (merges.txt lines
 * [1 : 49152 - 256 - 2 + 1]): CLIP's 49408-token vocabulary. */
enum { TOK_MAX_MERGES = 49152 - 256 - 2 };

/* Ids must be below this (CLIP: 49408). */
#define TOK_MAX_ID 10000000

/* The special-token attributes, in transformers' SPECIAL_TOKENS_ATTRIBUTES order (which is
 * also the order in which missing ones receive new ids). */
enum { SP_BOS, SP_EOS, SP_UNK, SP_SEP, SP_PAD, SP_CLS, SP_MASK, SP_COUNT };
extern const char *const tok_special_keys[SP_COUNT]; /* "bos_token", ... */

/* One token as a config file describes it: a string or an AddedToken object. */
typedef struct tok_spec {
    char *content; /* NULL: absent or null */
    bool is_null;  /* given as null (no such token), rather than absent */
    bool lstrip, rstrip;
    int64_t id; /* added_tokens_decoder entries only */
} tok_spec;

/* What tokenizer_config.json and special_tokens_map.json say. */
typedef struct tok_config {
    tok_spec special[SP_COUNT];
    tok_spec *extra; /* additional_special_tokens */
    size_t n_extra;
    tok_spec *decoder; /* added_tokens_decoder */
    size_t n_decoder;
    bool has_decoder;
    int max_length;
} tok_config;

typedef struct cJSON cJSON;

/* Reads and strictly parses dir/name as a JSON object (unique keys, no \u0000). A missing
 * optional file gives CS_OK and *out NULL. */
cs_status tok_read_json(const char *dir, const char *name, bool required, cJSON **out, char *msg,
                        size_t msg_size);
/* Fills c (zero-initialised by the caller) from dir's configs; tok_config_deinit frees it,
 * also after a failure. */
cs_status tok_config_load(const char *dir, tok_config *c, char *msg, size_t msg_size);
void tok_config_deinit(tok_config *c);

/* An added token: split out of the raw text before any normalisation. */
typedef struct tok_added {
    uint32_t *cps; /* content as code points */
    size_t n;
    int64_t id;
    bool lstrip, rstrip; /* eat the whitespace on that side of the token */
} tok_added;

struct cs_tokenizer {
    strmap vocab;       /* vocab.json: token string -> id */
    strmap added_index; /* added token content (UTF-8) -> index into added[] */
    tok_added *added;
    size_t n_added;

    /* BPE symbols: every byte's bytes_to_unicode character (with and without "</w>") and
     * every merge's parts and result, interned as dense indices. */
    strmap symbols; /* symbol string -> symbol index */
    int32_t n_symbols;
    int64_t *sym_token;        /* symbol -> token id (added tokens, then vocab), -1: unknown */
    int32_t byte_sym[256];     /* bytes_to_unicode(b) */
    int32_t byte_sym_end[256]; /* bytes_to_unicode(b) + "</w>" */
    strmap pairs;              /* (left symbol, right symbol) as 8 bytes -> merge rank */
    int32_t *merge_result;     /* rank -> merged symbol */
    int32_t n_merges;

    int64_t bos_id, eos_id, pad_id; /* pad_id -1: no pad token */
    int64_t unk_id;                 /* -1: unk_token not in vocab.json */
    /* Ids of "<|startoftext|>" / "<|endoftext|>" when CLIP's regex matches them inside
     * normalised text (e.g. from "<|EndOfText|>"): CLIPTokenizer.bpe's cache returns
     * them whole. -1: unknown (then unk_id). */
    int64_t sot_literal_id, eot_literal_id;
    int max_length;
    int64_t vocab_size; /* 1 + the largest id */
};

#endif
