/* spm.h - SentencePiece unigram tokenizers read from a spiece.model file (the ModelProto
 * protobuf, parsed by hand), giving the ids of sentencepiece's SentencePieceProcessor.encode(),
 * plus the text pipeline of transformers' SiglipTokenizer on top of it.
 *
 * SentencePiece pipeline (sentencepiece normalizer.cc / unigram_model.cc):
 *   normalizer_spec: the precompiled_charsmap (a darts-clone trie of replacements, longest
 *   match; nmt_nfkc's NFKC + whitespace rules are compiled into it; invalid UTF-8 bytes become
 *   U+FFFD), remove_extra_whitespaces (leading, trailing and repeated ' ' dropped),
 *   add_dummy_prefix (a leading ' '), escape_whitespaces (' ' -> U+2581 "▁")
 *   -> Viterbi over the pieces (NORMAL by score, USER_DEFINED at length * max_score - 0.1, a
 *   character no piece covers as unk at min_score - 10), consecutive unknowns merged into one
 *   unk, or with trainer_spec.byte_fallback spelled as <0xXX> byte pieces.
 * Not supported (documented differences): a model without precompiled_charsmap but with a
 * normalization_rule_tsv (its rules are ignored: identity), treat_whitespace_as_suffix, user
 * defined symbols protected from normalization, BPE / WORD / CHAR model types (SB_EFORMAT).
 *
 * A struct spm_tokenizer is immutable after loading (spm_set_siglip() included): any number of
 * threads may encode with one. */
#ifndef SHOEBOX_SPM_H
#define SHOEBOX_SPM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sb_err;
struct spm_tokenizer; /* opaque: src/model/spm.c */

#define SPM_MAX_FILE   ((size_t)64 << 20) /* largest spiece.model read */
#define SPM_MAX_PIECES ((size_t)1 << 21)
#define SPM_MAX_INPUT  ((size_t)64 << 10) /* longest text encoded, in bytes (longer: SB_ETOOBIG) */

/* Parses a ModelProto from buf[0..len) (not kept). *out is freed with spm_free(). SB_ECORRUPT
 * (malformed protobuf, no pieces, an id out of range), SB_EFORMAT (not a unigram model),
 * SB_ETOOBIG, SB_ENOMEM. */
int spm_load_mem(const unsigned char *buf, size_t len, struct spm_tokenizer **out,
                 struct sb_err *err);
/* The same from a file: SB_ENOENT / SB_EIO besides. */
int spm_load_file(const char *path, struct spm_tokenizer **out, struct sb_err *err);
void spm_free(struct spm_tokenizer *tok); /* NULL is a no-op */

/* SentencePieceProcessor.encode(text) (out_type=int): ids[0..*n_ids), at most cap (more:
 * SB_ETOOBIG). add_dummy_prefix overrides the model's normalizer_spec when >= 0 (0 off, 1 on),
 * as SiglipTokenizer does; -1 keeps it. SB_ETOOBIG, SB_ENOMEM, SB_EINVAL. */
int spm_encode(const struct spm_tokenizer *tok, const char *text, size_t len, int add_dummy_prefix,
               int32_t *ids, size_t cap, size_t *n_ids, struct sb_err *err);

/* Makes tok tokenize as transformers' SiglipTokenizer: tokenizer_config.json of model_dir (when
 * present) gives do_lower_case (default true), model_max_length (64) and the unk / eos / pad
 * tokens ("<unk>", "</s>", "</s>"). Call once, right after loading. SB_ECORRUPT when a named
 * token is not a piece. */
int spm_set_siglip(struct spm_tokenizer *tok, const char *model_dir, struct sb_err *err);
/* SiglipTokenizer(text, truncation=True) without padding: lowercase (per code point, as
 * utf8proc's simple mapping; Python's str.lower() differs for a few characters such as U+0130),
 * "▁" + text, ASCII punctuation removed, whitespace runs to one space, stripped, then
 * SentencePiece without the dummy prefix (via the "<unk>" prefix trick), then eos. Truncated to
 * max_ids (the last one eos). Special tokens typed in the text are not split out (HF would).
 * Pad with spm_pad_id() for padding="max_length". */
int spm_tokenize_siglip(const struct spm_tokenizer *tok, const char *text, int32_t *ids,
                        size_t max_ids, size_t *n_ids, struct sb_err *err);

size_t spm_size(const struct spm_tokenizer *tok);                     /* number of pieces */
const char *spm_piece(const struct spm_tokenizer *tok, int32_t id);   /* NULL when out of range */
int32_t spm_piece_id(const struct spm_tokenizer *tok, const char *s); /* -1 when not a piece */
int32_t spm_unk_id(const struct spm_tokenizer *tok);
int32_t spm_eos_id(const struct spm_tokenizer *tok);    /* SigLIP's eos token, else trainer's */
int32_t spm_pad_id(const struct spm_tokenizer *tok);    /* SigLIP's pad token, else trainer's */
size_t spm_max_length(const struct spm_tokenizer *tok); /* model_max_length (64) */

#endif
