/* tokenizer_internal.h - private parts of the CLIP tokenizer: the string and merge hash tables
 * shared by the loaders (tokenizer_load.c) and the encoder (tokenizer.c).
 *
 * Token strings live in one blob; the vocabulary is an open-addressing hash table from string
 * to id, and the merges one from the id pair (a, b) to (rank, id of a+b), as HF tokenizers'
 * BPE keeps its merge map. Both tables are filled by the loader and only read afterwards. */
#ifndef SHOEBOX_MODEL_TOKENIZER_INTERNAL_H
#define SHOEBOX_MODEL_TOKENIZER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shoebox/tokenizer.h"

struct sb_err;

#define TOK_MAX_VOCAB   ((size_t)1 << 22)  /* entries: far above any real BPE vocabulary */
#define TOK_MAX_ID      ((int64_t)1 << 22) /* id_str costs 4 bytes per id up to the largest */
#define TOK_MAX_MERGES  ((size_t)1 << 22)
#define TOK_MAX_ADDED   4096
#define TOK_MAX_TOKEN   1024 /* bytes in one vocabulary or added token */
#define TOK_DEFAULT_CTX 77
#define TOK_CLIP_MERGES (49152 - 256 - 2) /* HF CLIPTokenizer reads merges.txt lines 1..48894 */
#define TOK_MAX_CTX     65536

struct tok_vslot {
    uint32_t off; /* into strs; UINT32_MAX = empty slot */
    uint32_t len;
    int32_t id;
};

struct tok_mslot {
    uint64_t key; /* (uint64)a << 32 | b; UINT64_MAX = empty slot */
    uint32_t rank;
    int32_t new_id;
};

struct tok_added {
    char *content;
    size_t len;
    int32_t id;
    bool normalized;  /* matched on the normalized text, not the raw input */
    bool single_word; /* only when not touching a word character on either side */
};

struct clip_tokenizer {
    char *strs; /* NUL-separated token strings */
    size_t strs_len, strs_cap;
    struct tok_vslot *vslots; /* capacity vcap, a power of two */
    size_t vcap, vcount;
    struct tok_mslot *mslots;
    size_t mcap, mcount;
    uint32_t *id_str; /* id -> offset in strs, UINT32_MAX = none; n_id_str entries */
    size_t n_id_str;
    int32_t byte_id[256];     /* id of bytes_to_unicode(b), -1 if absent */
    int32_t byte_eow_id[256]; /* id of bytes_to_unicode(b) + "</w>" */
    struct tok_added *added;
    size_t n_added;
    uint8_t added_first[256]; /* 1 when some added token starts with this byte */
    int32_t unk_id, bos_id, eos_id, pad_id;
    size_t max_length;
};

/* Table building (tokenizer.c). Each returns 0 or an SB_* code with err filled. */
int tok_new(struct clip_tokenizer **out, struct sb_err *err);
/* Adds or replaces (the last duplicate wins, as in Python's json and HF's vocab map). */
int tok_vocab_put(struct clip_tokenizer *tok, const char *s, size_t len, int32_t id,
                  struct sb_err *err);
int32_t tok_vocab_get(const struct clip_tokenizer *tok, const char *s, size_t len); /* -1 */
/* Records merge (a, b) -> new_id at rank; a later duplicate pair replaces the earlier. */
int tok_merge_put(struct clip_tokenizer *tok, int32_t a, int32_t b, uint32_t rank, int32_t new_id,
                  struct sb_err *err);
int tok_add_token(struct clip_tokenizer *tok, const char *s, size_t len, int32_t id,
                  bool normalized, bool single_word, struct sb_err *err);
/* Fills byte ids and id_str; call once the vocabulary is complete. */
int tok_finish(struct clip_tokenizer *tok, struct sb_err *err);

/* GPT-2 bytes_to_unicode(): the code point standing for byte b. */
uint32_t tok_byte_to_unicode(uint8_t b);

#endif
