/* bpe_internal.h - private parts of the tokenizer.json BPE tokenizer (bpe.h): the tables the
 * loader (bpe_load.c) fills and the encoder/decoder (bpe.c) and chat templates (chat.c) read.
 * Token strings live in one blob; the vocabulary is an open-addressing hash from string to id,
 * the merges one from the id pair (a, b) to (rank, id of a+b), as tokenizers' BPE keeps them. */
#ifndef SHOEBOX_MODEL_BPE_INTERNAL_H
#define SHOEBOX_MODEL_BPE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shoebox/bpe.h"

#define BPE_MAX_VOCAB  ((size_t)1 << 22)
#define BPE_MAX_ADDED  65536
#define BPE_MAX_TOKEN  1024 /* bytes in one token string */
#define BPE_MAX_SPLITS 8    /* pre-tokenizer steps */
#define BPE_MAX_POST   8    /* special ids a template adds on each side */

enum bpe_pre {
    BPE_PRE_DIGITS,     /* Digits(individual_digits = true): each digit alone */
    BPE_PRE_DIGIT_RUNS, /* Digits(individual_digits = false): digit runs */
    BPE_PRE_GPT2,       /* ByteLevel(use_regex) / Split with GPT-2's pattern */
    BPE_PRE_QWEN2,      /* Split with Qwen2's pattern (single \p{N}) */
    BPE_PRE_LLAMA3,     /* Split with Llama 3's pattern (\p{N}{1,3}) */
};

struct bpe_vslot {
    uint32_t off; /* into strs; UINT32_MAX = empty */
    uint32_t len;
    int32_t id;
    uint32_t hash; /* low 32 bits of the string's hash: the slot index, and a cheap compare */
};

struct bpe_mslot {
    uint64_t key; /* (uint64)a << 32 | b; UINT64_MAX = empty */
    uint32_t rank;
    int32_t new_id;
};

struct bpe_added {
    char *content;
    size_t len;
    int32_t id;
    bool special, lstrip, rstrip;
};

struct bpe_tokenizer {
    char *strs; /* NUL-separated token strings */
    size_t strs_len, strs_cap;
    struct bpe_vslot *vslots; /* vcap slots, a power of two */
    size_t vcap, vcount;
    struct bpe_mslot *mslots;
    size_t mcap, mcount;
    uint32_t *id_off; /* id -> offset in strs, UINT32_MAX = none; n_ids entries */
    size_t n_ids;
    struct bpe_added *added; /* sorted by content length, longest first */
    size_t n_added;
    uint8_t added_first[256];  /* 1 when some added token starts with this byte */
    unsigned char *is_special; /* (n_ids) 1 for special added tokens */
    /* pipeline */
    bool byte_level;    /* GPT-2 alphabet (else metaspace characters + byte fallback) */
    bool nfc;           /* NFC normalizer */
    bool lowercase;     /* Lowercase normalizer (Siglip2Tokenizer), or bpe_set_lowercase() */
    bool prepend_space; /* Prepend("▁") normalizer */
    bool replace_space; /* Replace(" ", "▁") normalizer */
    bool prefix_space;  /* ByteLevel add_prefix_space */
    enum bpe_pre pre[BPE_MAX_SPLITS];
    int n_pre;
    bool byte_fallback, fuse_unk;
    int32_t unk_id;
    int32_t byte_id[256]; /* byte-level: id of bytes_to_unicode(b); metaspace: of <0xXX> */
    int32_t post_pre[BPE_MAX_POST], post_post[BPE_MAX_POST]; /* template specials around A */
    int n_post_pre, n_post_post;
    int strip_start; /* metaspace decoder: Strip(" ", start, 0) */
    bool ms_decoder; /* decoder Replace + ByteFallback + Fuse (+ Strip) */
    /* tokenizer_config.json */
    int32_t bos_id, eos_id;
    char *chat_template; /* NULL when none */
};

/* Table building and lookups (bpe.c). */
int bpe_vocab_put(struct bpe_tokenizer *t, const char *s, size_t len, int32_t id,
                  struct sb_err *err);
int32_t bpe_vocab_get(const struct bpe_tokenizer *t, const char *s, size_t len); /* -1 */
int bpe_merge_put(struct bpe_tokenizer *t, int32_t a, int32_t b, uint32_t rank, int32_t new_id,
                  struct sb_err *err);
/* Sizes the hash tables for n_vocab more tokens and n_merges more merges (a hint: capped,
 * and the tables still grow past it), sparing the rehashes. */
int bpe_reserve(struct bpe_tokenizer *t, size_t n_vocab, size_t n_merges, struct sb_err *err);
/* Builds id_off once the vocabulary and added tokens are in. */
int bpe_finish(struct bpe_tokenizer *t, struct sb_err *err);
uint32_t bpe_byte_to_unicode(uint8_t b);
size_t bpe_utf8_put(char *dst, uint32_t cp);

#endif
