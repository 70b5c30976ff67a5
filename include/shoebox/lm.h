/* lm.h - a decoder-only language model runtime: the Llama family (LlamaForCausalLM: RMSNorm,
 * rotary position embeddings with the checkpoint's rope_theta and rope_scaling, grouped-query
 * attention, SwiGLU MLP) and Qwen2 (Qwen2ForCausalLM: the same with q/k/v biases), computed as
 * transformers' modeling_llama.py / modeling_qwen2.py do, with a KV cache and greedy decoding.
 *
 * Weights are read from model.safetensors (or a sharded index) in F32, F16 or BF16 and used
 * where they lie (mmapped): 16-bit weights stay 16-bit and are widened to f32 inside the
 * matrix kernels. Prefill runs T rows at a time through cblas_sgemm; a decode step (one row)
 * is a matrix-vector product over the 16-bit weights, memory-bound by design; a batched step
 * (lm_gen_step) reads them once for the next token of several contexts.
 *
 * Inputs are token ids or, for vision-language models, embedding rows (image tokens) given by
 * the caller: see lm_prefill().
 *
 * Thread rules: a struct lm_model is read-only after lm_model_load() and may be shared. A
 * struct lm_ctx (KV cache, activations, logits) belongs to one thread at a time; its forward
 * passes split work over the sb_pool given to lm_ctx_new() (NULL: the calling thread only).
 * OpenBLAS is called from the pool's workers on column blocks: set its thread count to 1
 * (lm_load_params.blas_threads) when a pool is used, so workers x BLAS threads <= cores. */
#ifndef SHOEBOX_LM_H
#define SHOEBOX_LM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sb_err;
struct sb_pool;
struct lm_model; /* opaque: src/model/lm_internal.h */
struct lm_ctx;   /* opaque: src/model/lm.c */

#define LM_MAX_STOP 16 /* stop ids a model or a generation carries at most */

struct lm_load_params {
    /* Tensor name prefix of the decoder: "model." for *ForCausalLM checkpoints (the default,
     * NULL means it), "model.text_model." in Idefics3, "language_model.model." in LLaVA. */
    const char *prefix;
    /* Name of the output projection; NULL: "lm_head.weight" (unless tie_word_embeddings). */
    const char *lm_head;
    /* Key of config.json holding the decoder's config ("text_config" in VLMs); NULL: top. */
    const char *config_key;
    int blas_threads; /* > 0: openblas_set_num_threads(n) at load; 0: leave as is */
};

/* prefix "model.", lm_head "lm_head.weight", config at top level, blas_threads 0. */
struct lm_load_params lm_load_default_params(void);

/* Loads config.json (+ generation_config.json when present) and the weights of folder dir.
 * Every tensor is checked by name, dtype (F32/F16/BF16) and shape against the config; a
 * missing or wrong one fails with SB_EMODEL naming it. An unsupported model_type, hidden_act
 * or rope_scaling type is SB_EMODEL too. SB_ENOENT/SB_EIO, SB_EFORMAT/SB_ECORRUPT, SB_ENOMEM.
 * On success *out is a model the caller frees with lm_model_free(). p NULL: defaults. */
int lm_model_load(const char *dir, const struct lm_load_params *p, struct lm_model **out,
                  struct sb_err *err);
void lm_model_free(struct lm_model *m); /* NULL is a no-op */

int lm_model_vocab_size(const struct lm_model *m);    /* V: rows of the logits */
int lm_model_hidden_size(const struct lm_model *m);   /* C: width of an embedding row */
int lm_model_max_positions(const struct lm_model *m); /* max_position_embeddings */
/* Bytes of key and value cache that this many positions of one context fill (what a context
 * commits as its sequence grows: the cache is allocated untouched). */
size_t lm_model_kv_bytes(const struct lm_model *m, int positions);
/* The end-of-sequence ids: generation_config.json's eos_token_id (an int or a list) when the
 * file exists, else config.json's. Writes at most cap ids to ids; returns how many exist. */
int lm_model_eos_ids(const struct lm_model *m, int32_t *ids, int cap);

/* A context for up to max_ctx positions (KV cache) and prefills of up to max_batch rows at a
 * time (longer prefills are split). max_ctx 0 means max_position_embeddings (capped at 8192),
 * max_batch 0 means 256. pool may be NULL. *out is freed with lm_ctx_free(). SB_EINVAL,
 * SB_ETOOBIG (a cache larger than 16 GiB), SB_ENOMEM. */
int lm_ctx_new(const struct lm_model *m, struct sb_pool *pool, int max_ctx, int max_batch,
               struct lm_ctx **out, struct sb_err *err);
void lm_ctx_free(struct lm_ctx *c); /* NULL is a no-op */
/* Forgets every cached position (a new conversation); allocates nothing. */
void lm_ctx_reset(struct lm_ctx *c);
int lm_ctx_position(const struct lm_ctx *c); /* positions held in the cache */

/* Runs n new positions after those already cached (prefill, or one decode step for n = 1)
 * and leaves the logits of the last one in lm_ctx_logits(). Row i is the embedding of token
 * ids[i] when ids[i] >= 0; when ids[i] == LM_EMBED_ROW it is embeds[i * C .. i * C + C)
 * instead (an image token's projected features, C = lm_model_hidden_size()). embeds may be
 * NULL when no id is LM_EMBED_ROW. SB_EINVAL (an id outside [0, V), LM_EMBED_ROW without
 * embeds, n < 1), SB_ETOOBIG (the cache would exceed max_ctx). On failure the cache is left as
 * it was. Allocates nothing. */
#define LM_EMBED_ROW (-1)
int lm_prefill(struct lm_ctx *c, const int32_t *ids, const float *embeds, int n,
               struct sb_err *err);
/* The (V) logits of the last position run; valid until the next call on c. */
const float *lm_ctx_logits(const struct lm_ctx *c);
/* The (V) logits after the prompt of the last lm_generate() (before any generated token);
 * valid until the next lm_generate() on c. */
const float *lm_ctx_prefill_logits(const struct lm_ctx *c);

struct lm_gen_params {
    int max_new_tokens;       /* length cap (>= 1) */
    float repetition_penalty; /* 1 = off; HF RepetitionPenaltyLogitsProcessor (> 0) */
    /* Stop ids: generation ends after emitting one (it is included in the output, as HF's
     * generate() returns it). n_stop 0 means lm_model_eos_ids(). */
    int32_t stop_ids[LM_MAX_STOP];
    int n_stop;
};

/* max_new_tokens 64, repetition_penalty 1, the model's eos ids. */
struct lm_gen_params lm_gen_default_params(void);

/* Greedy decoding: resets c, prefills the prompt (ids/embeds as in lm_prefill, n_prompt rows),
 * then appends argmax tokens until a stop id is emitted, max_new_tokens are made or the cache
 * is full. The repetition penalty applies to every id of the prompt and of the output so far
 * (LM_EMBED_ROW rows are not ids and do not count): a positive logit is divided by it, a
 * negative one multiplied. Writes the generated ids to out (capacity cap >= max_new_tokens)
 * and their count to *n_out. p NULL: lm_gen_default_params(). Errors as lm_prefill, and
 * SB_EINVAL for bad params. */
int lm_generate(struct lm_ctx *c, const int32_t *ids, const float *embeds, int n_prompt,
                const struct lm_gen_params *p, int32_t *out, int cap, int *n_out,
                struct sb_err *err);

/* lm_generate() in steps, for decoding several prompts side by side (batched decoding: each
 * decode step reads the weights once for all of them, where decoding one at a time is bound by
 * reading them once per token of each). lm_gen_start() resets c, prefills the prompt and
 * picks the first token; lm_gen_step() then adds one token to each context of cs that is not
 * done, all in one forward pass, until lm_gen_done() says each is. Every context keeps its own
 * cache, position, parameters and stop state, and its tokens are exactly lm_generate()'s for
 * its prompt alone, whatever the batch and whenever the others stop. The contexts of one step
 * must share the model and the pool (the pass runs on the first unfinished one's activations
 * and pool, at most its max_batch rows at a time) and be distinct. lm_prefill() or
 * lm_ctx_reset() ends a context's generation. lm_gen_start: errors as lm_generate(), and a
 * failed start leaves c done with no ids; lm_gen_step: SB_EINVAL for bad cs (nothing run). */
int lm_gen_start(struct lm_ctx *c, const int32_t *ids, const float *embeds, int n_prompt,
                 const struct lm_gen_params *p, struct sb_err *err);
int lm_gen_step(struct lm_ctx *const *cs, int n, struct sb_err *err);
bool lm_gen_done(const struct lm_ctx *c);
/* The ids generated since lm_gen_start() (*n of them); valid until the next call on c. */
const int32_t *lm_gen_ids(const struct lm_ctx *c, int *n);

#endif
