/*
 * The AUTOMATIC1111 web UI's prompt language, exact to its prompt_parser.py and
 * sd_hijack_clip.py (emphasis mode "Original"):
 *
 *   (text)         weight x 1.1          [text]       weight / 1.1
 *   (text:1.3)     weight x 1.3          \( \) \[ \] \\  the literal character
 *   BREAK          (a word of its own, upper case) ends the current 75-token chunk
 *
 * Weights multiply when nested, in double precision, in the order brackets close (so
 * "((a:1.3))" is 1.3 x 1.1 x 1.1). An unclosed "(" or "[" applies from where it opens to
 * the end; a stray ")" or "]" is text; so is "(x:y)" when y is not a number. A lone
 * backslash before another character disappears, as in the web UI. Adjacent runs of
 * equal weight merge.
 *
 * Chunking: each parsed piece is tokenized on its own (no BOS/EOS), tokens fill chunks of
 * 75; when a chunk is full and a comma came within the last 20 tokens, the tokens after
 * that comma move to the next chunk. Every chunk becomes BOS + 75 tokens (padded with EOS)
 * + EOS (ids after the first EOS become the tokenizer's pad id when it has its own, as
 * SD 2.x's does), each token carrying its piece's weight (1 for BOS/EOS/padding).
 *
 * Emphasis: after the text encoder, each chunk's hidden states (77, D) are multiplied
 * per token by its weight and then rescaled so the chunk's mean over all values is what
 * it was before ("Original"). A prompt with no brackets gives exactly the plain encoding.
 *
 * Differences, documented: `\s` and `\b` are ASCII (bytes >= 0x80 count as word
 * characters for BREAK's word boundary), and a malformed number such as "(a:1.2.3)" is a
 * clear error rather than the web UI's exception.
 */
#ifndef CS_PROMPT_SYNTAX_H
#define CS_PROMPT_SYNTAX_H

#include "tokenizer.h"

/* The web UI's chunk: 75 tokens between BOS and EOS, CLIP's 77 positions. A text encoder
 * with fewer positions gets chunks of (positions - 2) tokens, chunked by the same rules. */
enum { PROMPT_CHUNK_TOKENS = 75, PROMPT_COMMA_BACKTRACK = 20 };

typedef struct prompt_piece {
    char *text;    /* owned */
    double weight; /* -1 for a BREAK marker */
    bool is_break;
} prompt_piece;

typedef struct prompt_pieces {
    prompt_piece *items;
    int count;
} prompt_pieces;

/* Parses text (UTF-8, checked by the caller) into pieces. Errors (CS_ERR_INVALID_ARG)
 * name the byte offset of a malformed weight. */
cs_status prompt_parse_attention(const char *text, prompt_pieces *out, char *msg, size_t n);
void prompt_pieces_free(prompt_pieces *p);

typedef struct prompt_chunks {
    int64_t *ids;   /* count x (chunk_tokens + 2) */
    float *weights; /* the same shape */
    int count;
    int chunk_tokens;
} prompt_chunks;

/* Tokenizes and chunks parsed pieces into chunks of chunk_tokens tokens (1 ..
 * PROMPT_CHUNK_TOKENS; the text encoder's positions - 2); more than max_chunks chunks is
 * CS_ERR_INVALID_ARG (the prompt is too long). */
cs_status prompt_make_chunks(const cs_tokenizer *t, const prompt_pieces *p, int chunk_tokens,
                             int max_chunks, prompt_chunks *out, char *msg, size_t n);
void prompt_chunks_free(prompt_chunks *c);

/* Applies one chunk's weights to its hidden states z (len, dim) in place, keeping the
 * mean of z (emphasis "Original"). */
void prompt_apply_emphasis(float *z, const float *weights, int64_t len, int64_t dim);

#endif
