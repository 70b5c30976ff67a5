/* bpe.h - tokenizer.json BPE tokenizers of decoder LMs, giving the ids of Hugging Face
 * tokenizers (the fast tokenizer AutoTokenizer loads), and the chat templates of the target
 * vision-language models.
 *
 * Two styles of tokenizer.json are supported, the ones the target models ship:
 *   byte-level  (GPT-2, SmolLM2, Qwen2): optional NFC normalizer; pre-tokenizers Digits
 *               (individual_digits), ByteLevel (use_regex: GPT-2's pattern) and Split with
 *               Qwen2's / Llama 3's pattern (behavior Isolated); GPT-2's byte alphabet; BPE by
 *               merge rank; ByteLevel decoder.
 *   metaspace   (Llama 2, llava-1.5): normalizer Prepend("▁") + Replace(" ", "▁"), no
 *               pre-tokenizer, BPE over characters with byte_fallback (<0xXX> tokens) and
 *               fuse_unk; decoder Replace("▁", " ") + ByteFallback + Fuse + Strip(" ", 1, 0).
 *               Gemma (SigLIP 2's tokenizer): the same without Prepend and Strip, optionally
 *               Lowercase first (Siglip2Tokenizer) and a no-op Split(" ", MergedWithPrevious)
 *               pre-tokenizer (Gemma 3).
 * Added tokens (added_tokens, special or not, with lstrip/rstrip) are split out of the raw
 * text first, leftmost-longest, as tokenizers' AddedVocabulary does; the normalizer and
 * pre-tokenizers then run on each piece between them. A TemplateProcessing post-processor
 * adds its special tokens (e.g. Llama's "<s>") when add_special is set. Any other pipeline
 * element is refused at load with SB_EFORMAT naming it.
 *
 * A struct bpe_tokenizer is immutable after loading: any number of threads may use one. */
#ifndef SHOEBOX_BPE_H
#define SHOEBOX_BPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sb_err;
struct sb_buf;
struct bpe_tokenizer; /* opaque: src/model/bpe_internal.h */

#define BPE_MAX_FILE  ((size_t)64 << 20) /* largest tokenizer.json / tokenizer_config.json */
#define BPE_MAX_INPUT ((size_t)1 << 20)  /* longest text bpe_encode() accepts, in bytes */

/* Loads tokenizer.json and (when present) tokenizer_config.json and chat_template.json of a
 * Hugging Face model folder. *out is freed with bpe_free(). SB_ENOENT (no tokenizer.json),
 * SB_ECORRUPT (bad JSON, merges naming unknown tokens, ids out of range), SB_EFORMAT (a
 * pipeline element not listed above), SB_ETOOBIG, SB_ENOMEM, SB_EIO. */
int bpe_load(const char *model_dir, struct bpe_tokenizer **out, struct sb_err *err);
/* The same from bytes in memory (need no NUL; not kept). config may be NULL with length 0. */
int bpe_load_mem(const char *tokenizer_json, size_t json_len, const char *config_json,
                 size_t config_len, struct bpe_tokenizer **out, struct sb_err *err);
void bpe_free(struct bpe_tokenizer *tok); /* NULL is a no-op */

/* Encodes len bytes of UTF-8 text (invalid bytes become U+FFFD, as Python's "replace") into
 * ids[0..*n_ids). add_special applies the post-processor's template (Llama's leading "<s>").
 * SB_ETOOBIG when len > BPE_MAX_INPUT or the ids do not fit in cap; SB_EINVAL; SB_ENOMEM. */
int bpe_encode(const struct bpe_tokenizer *tok, const char *text, size_t len, bool add_special,
               int32_t *ids, size_t cap, size_t *n_ids, struct sb_err *err);

/* As bpe_encode, then truncation=True with max_length = max_len, as tokenizers truncates: the
 * text's ids are cut from the right so that they and the post-processor's specials (kept
 * whole) fit in max_len. ids has room for max_len. SB_EINVAL when the specials alone do not
 * fit; SB_ETOOBIG, SB_ENOMEM as bpe_encode. */
int bpe_encode_truncated(const struct bpe_tokenizer *tok, const char *text, size_t len,
                         bool add_special, size_t max_len, int32_t *ids, size_t *n_ids,
                         struct sb_err *err);

/* Adds a Lowercase normalizer before the others, as transformers' Siglip2Tokenizer does to
 * the Gemma tokenizer SigLIP 2 ships (its text was lower-cased in training). Call it right
 * after loading, before the tokenizer is shared between threads. */
void bpe_set_lowercase(struct bpe_tokenizer *tok);

/* Decodes ids into text appended to out (NUL-terminated, valid UTF-8: bytes that do not form
 * UTF-8 become U+FFFD), as tokenizers' decode() with its decoder does; skip_special drops
 * special added tokens (skip_special_tokens=True). Unknown ids are SB_EINVAL. */
int bpe_decode(const struct bpe_tokenizer *tok, const int32_t *ids, size_t n, bool skip_special,
               struct sb_buf *out, struct sb_err *err);

/* The id of a vocabulary or added token given by its exact string, or -1. */
int32_t bpe_token_id(const struct bpe_tokenizer *tok, const char *s);
/* The string of id (vocabulary alphabet, e.g. "Ġcat" or "▁cat"), or NULL. Borrowed: valid
 * until bpe_free(). */
const char *bpe_token_str(const struct bpe_tokenizer *tok, int32_t id);
size_t bpe_vocab_size(const struct bpe_tokenizer *tok); /* 1 + the largest id */
/* bos_token / eos_token of tokenizer_config.json as ids, or -1. */
int32_t bpe_bos_id(const struct bpe_tokenizer *tok);
int32_t bpe_eos_id(const struct bpe_tokenizer *tok);

/* ------------------------------------------------------------------------------------------ */
/* Chat templates (src/model/chat.c). There is no Jinja engine: the chat_template of
 * tokenizer_config.json (or chat_template.json) is recognised as one of the templates below
 * and applied by hard-coded C that gives the same text. */

enum bpe_chat_kind {
    BPE_CHAT_IDEFICS3, /* SmolVLM / Idefics3: "<|im_start|>User:<image>Hi<end_of_utterance>\n
                          Assistant:" */
    BPE_CHAT_CHATML,   /* Qwen2 / llava-interleave-qwen: "<|im_start|>user\n<image>\nHi
                          <|im_end|>\n<|im_start|>assistant\n" (Qwen2-Instruct's default system
                          message when its template has one) */
    BPE_CHAT_LLAVA15,  /* llava-1.5: "USER: <image>\nHi ASSISTANT:" */
};

/* One message: role "system", "user" or "assistant"; n_images <image> placeholders (each
 * template puts them where its Jinja source does), then text. */
struct bpe_chat_msg {
    const char *role;
    const char *text;
    int n_images;
};

/* Which template the tokenizer carries. SB_ENOENT when it has none, SB_EFORMAT when it is
 * not one of enum bpe_chat_kind (the message quotes its start). */
int bpe_chat_kind(const struct bpe_tokenizer *tok, enum bpe_chat_kind *out, struct sb_err *err);
/* Appends the templated conversation to out; add_generation_prompt ends it with the
 * assistant's turn opening. Errors as bpe_chat_kind, SB_EINVAL for an unknown role. */
int bpe_chat_apply(const struct bpe_tokenizer *tok, const struct bpe_chat_msg *msgs, size_t n,
                   bool add_generation_prompt, struct sb_buf *out, struct sb_err *err);
/* Ids that end an assistant turn under the template (e.g. <|im_end|>, <end_of_utterance>,
 * and eos_token). Writes at most cap; returns how many exist. */
int bpe_chat_stop_ids(const struct bpe_tokenizer *tok, int32_t *ids, int cap);

#endif
