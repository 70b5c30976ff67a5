/* tokenizer.h - the CLIP text tokenizer: byte-level BPE with "</w>" word ends, giving the same
 * ids as Hugging Face's CLIPTokenizerFast (what AutoTokenizer and CLIPProcessor load).
 *
 * Pipeline (HF tokenizer.json of openai/clip-vit-base-patch32):
 *   added tokens split out ("<|startoftext|>", "<|endoftext|>" typed in the text stay specials)
 *   -> NFC -> `\s+` to " " -> lowercase (per code point, as Rust's char::to_lowercase)
 *   -> split on 's|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+ (whitespace dropped)
 *   -> UTF-8 bytes mapped to GPT-2's bytes_to_unicode alphabet -> BPE by merge rank, "</w>"
 *   on the last symbol of each word -> <|startoftext|> ids... <|endoftext|>.
 * Invalid UTF-8 in the input is replaced by U+FFFD, one per maximal invalid subpart, exactly
 * as Python's bytes.decode("utf-8", "replace") does. src/model/tokenizer.c lists where the
 * slow CLIPTokenizer differs.
 *
 * A struct clip_tokenizer is immutable after loading: any number of threads may call
 * clip_tokenize() on one tokenizer at once. */
#ifndef SHOEBOX_TOKENIZER_H
#define SHOEBOX_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

struct sb_err;
struct clip_tokenizer; /* opaque: fields live in src/model/tokenizer_internal.h */

/* Longest text clip_tokenize() accepts, in bytes (longer: SB_ETOOBIG). */
#define CLIP_TOKENIZER_MAX_INPUT ((size_t)256 << 10)
/* Largest tokenizer file read (vocab.json, merges.txt, tokenizer.json), in bytes. */
#define CLIP_TOKENIZER_MAX_FILE ((size_t)64 << 20)

/* Loads the tokenizer of a Hugging Face model folder. Uses tokenizer.json when present (the
 * fast tokenizer, which HF prefers too), else vocab.json + merges.txt; tokenizer_config.json
 * and special_tokens_map.json, when present, name the special tokens and model_max_length.
 * On success *out is a tokenizer the caller owns; release it with clip_tokenizer_free().
 * Errors: SB_ENOENT (no tokenizer files), SB_ECORRUPT (bad JSON, a merge naming an unknown
 * token, a vocab id out of range, ...), SB_EFORMAT (a tokenizer.json pipeline that is not
 * CLIP's), SB_ETOOBIG, SB_ENOMEM, SB_EIO. */
int clip_tokenizer_load(const char *model_dir, struct clip_tokenizer **out, struct sb_err *err);

/* Loads from explicit slow-tokenizer files. config_json (tokenizer_config.json) may be NULL. */
int clip_tokenizer_load_files(const char *vocab_json, const char *merges_txt,
                              const char *config_json, struct clip_tokenizer **out,
                              struct sb_err *err);

/* Loads from an explicit tokenizer.json; config_json may be NULL. */
int clip_tokenizer_load_json(const char *tokenizer_json, const char *config_json,
                             struct clip_tokenizer **out, struct sb_err *err);

/* Loaders from bytes in memory, for tests and fuzzing (the bytes need no NUL terminator and
 * are not kept). merges_txt / config may be NULL with length 0 where the file is optional. */
int clip_tokenizer_load_mem(const char *vocab_json, size_t vocab_len, const char *merges_txt,
                            size_t merges_len, const char *config_json, size_t config_len,
                            struct clip_tokenizer **out, struct sb_err *err);
int clip_tokenizer_load_json_mem(const char *tokenizer_json, size_t json_len,
                                 const char *config_json, size_t config_len,
                                 struct clip_tokenizer **out, struct sb_err *err);

void clip_tokenizer_free(struct clip_tokenizer *tok); /* NULL is a no-op */

/* Tokenizes len bytes of text (UTF-8; may contain NUL) into ids[0..*n_ids), which starts
 * with the bos id and ends with the eos id. At most max_ids ids are written: longer texts are
 * truncated as HF's truncation=True does, to [bos, first max_ids-2 tokens, eos]. Pass
 * max_ids = clip_tokenizer_max_length() for CLIP's 77. Padding is the caller's: fill
 * ids[*n_ids..] with clip_tokenizer_pad_id() when a fixed length is wanted.
 * Returns SB_OK; SB_EINVAL (max_ids < 2, NULL arguments), SB_ETOOBIG (len >
 * CLIP_TOKENIZER_MAX_INPUT), SB_ENOMEM. Thread-safe: tok is only read. */
int clip_tokenize_len(const struct clip_tokenizer *tok, const char *text, size_t len, int32_t *ids,
                      size_t max_ids, size_t *n_ids, struct sb_err *err);
/* The same for a NUL-terminated text. */
int clip_tokenize(const struct clip_tokenizer *tok, const char *text, int32_t *ids, size_t max_ids,
                  size_t *n_ids, struct sb_err *err);

int32_t clip_tokenizer_bos_id(const struct clip_tokenizer *tok); /* 49406 for CLIP */
int32_t clip_tokenizer_eos_id(const struct clip_tokenizer *tok); /* 49407 for CLIP */
int32_t clip_tokenizer_pad_id(const struct clip_tokenizer *tok); /* pad_token, else eos */
/* Number of ids the vocabulary and added tokens use: 1 + the largest id (49408 for CLIP). */
size_t clip_tokenizer_vocab_size(const struct clip_tokenizer *tok);
/* model_max_length from tokenizer_config.json when it is sane (<= 65536), else 77. */
size_t clip_tokenizer_max_length(const struct clip_tokenizer *tok);
/* The vocabulary string of id (byte-level alphabet, e.g. "cat</w>"), or NULL when no token
 * has that id. Borrowed: valid until clip_tokenizer_free(). */
const char *clip_tokenizer_token(const struct clip_tokenizer *tok, int32_t id);

#endif
