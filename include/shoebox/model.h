/* model.h - the CLIP engine: loads a Hugging Face CLIPModel folder (config.json,
 * model.safetensors or a sharded index, preprocessor_config.json, tokenizer files) and turns
 * images and texts into L2-normalised embeddings, computed as transformers' CLIPModel does.
 *
 * Model families: the same API serves SiglipModel folders (model_type "siglip": SigLIP, and
 * SigLIP 2's fixed-resolution checkpoints). clip_model_load() reads model_type and dispatches:
 * SigLIP's preprocessing (square resize, no crop, mean/std 0.5), its vision tower (patch conv
 * with bias, no class token, post_layernorm on every token, attention-pooling head), its text
 * tower (non-causal, padded to max_position_embeddings with the pad token, pooled at the last
 * position, `head` linear) and its tokenizers (SentencePiece spiece.model as SiglipTokenizer, or
 * tokenizer.json as GemmaTokenizerFast for SigLIP 2). Callers need not care, except for scores:
 * a SigLIP pair's probability is sigmoid(cosine * logit_scale.exp() + logit_bias)
 * (clip_model_probability()); search cuts text queries at probability >= 0.1 for SigLIP
 * (clip_model_text_min_score()), at cosine 0.20 for CLIP.
 *
 * Thread rules: a struct clip_model is read-only after clip_model_load() and may be shared by
 * any number of threads. Each thread that runs a forward pass owns a struct clip_ctx (the
 * activations for its largest batch); a ctx is used by one thread at a time.
 *
 * Threading inside a forward pass (2-core Sapphire Rapids, measured with bench/embed/run.sh):
 * - give clip_ctx_new() the process's sb_pool. An image batch with at least one image per
 *   worker is then split by images: each worker runs the whole vision tower on its group alone
 *   (one hand-off per batch, each worker's rows stay in its cache). Smaller batches and text
 *   share every op out over the pool: products by output columns (fp32: one cblas_sgemm per
 *   worker, or with fast_text a text query's on gemm_f32.c's panels; bias and activation
 *   fused while the columns are in cache) or by rows (bf16),
 *   attention by (image, head), layer norms by rows. OpenBLAS is set to one thread
 *   (process-wide) and each oneDNN call is single-threaded (Debian's libdnnl runs on OpenMP:
 *   its thread count is set to 1 on the calling thread around each call), so no BLAS or
 *   OpenMP team spins beside the pool while it runs the small ops. ViT-B/32 batch 16, bf16:
 *   ~17 ms of CPU per image against 42 with oneDNN's own team next to the pool.
 * - pool NULL: everything on the caller, with clip_load_params.blas_threads OpenBLAS threads
 *   (fp32) or OpenMP's default team (bf16) inside the products.
 * A caller that runs several ctx in parallel on its own workers should pass pool NULL and
 * blas_threads 1, so workers x BLAS threads stays <= cores. */
#ifndef SHOEBOX_MODEL_H
#define SHOEBOX_MODEL_H

#include "shoebox/image.h"

#include <stdbool.h>
#include <stdint.h>

struct sb_err;
struct sb_pool;
struct clip_model; /* opaque: src/model/internal.h */
struct clip_ctx;   /* opaque: src/model/clip.c */

/* Which architecture a folder holds (config.json model_type). */
enum clip_family { CLIP_FAMILY_CLIP = 0, CLIP_FAMILY_SIGLIP };

/* Which towers to load: a text query needs only the text tower (fast start). */
enum clip_towers { CLIP_TOWER_TEXT = 1, CLIP_TOWER_VISION = 2, CLIP_TOWER_BOTH = 3 };

/* Arithmetic of the matrix products. FP32 is the exact mode (cosine >= 0.99999 against the
 * reference). BF16 converts the weights once at load to bf16 and runs the products on oneDNN
 * (AMX / AVX512-BF16) with fp32 accumulation; layer norms, softmax, residuals and the
 * attention scores stay fp32 (embeddings cosine >= 0.999 against fp32). AUTO is BF16 when the
 * build has oneDNN and the CPU multiplies bf16 natively, else FP32. A BF16 request in a build
 * without oneDNN computes in FP32. clip_model_precision() tells what was chosen. */
enum clip_precision { CLIP_PRECISION_FP32 = 0, CLIP_PRECISION_BF16, CLIP_PRECISION_AUTO };

struct clip_load_params {
    int towers;                    /* enum clip_towers bits */
    enum clip_precision precision; /* see above */
    int blas_threads;              /* > 0: openblas_set_num_threads(n) at load; 0: leave as is */
    /* fp32: copy the text tower's weights at load into the layout of shoebox's own few-row
     * product (~1.4x faster text queries on AVX-512 or AVX2 CPUs; ~1.7 ms per text MB at load,
     * twice the text tower's memory): for a process that runs many text queries (the web
     * server, tags at index time), not for a one-off search. bf16 packs its weights anyway. */
    bool fast_text;
};

/* towers = BOTH, precision = FP32, blas_threads = 0, fast_text = false. */
struct clip_load_params clip_load_default_params(void);

/* Loads the model in folder dir. Weights are mmapped read-only; F16/BF16 tensors (and the
 * fused q/k/v weights) are converted into memory the model owns. Every tensor the chosen
 * towers need is checked by name, dtype and shape against config.json; a missing or wrong one
 * fails with SB_EMODEL naming it. Unreadable files: SB_ENOENT/SB_EIO; malformed files:
 * SB_EFORMAT / SB_ECORRUPT; SB_ENOMEM. On success *out is a model the caller frees with
 * clip_model_free(). p NULL means clip_load_default_params(). */
int clip_model_load(const char *dir, const struct clip_load_params *p, struct clip_model **out,
                    struct sb_err *err);
void clip_model_free(struct clip_model *m); /* NULL is a no-op */

/* A stable name for the catalog: "<name>@<16 hex digits>", name from config.json's
 * _name_or_path (last component) or "clip", the digits a hash of config.json,
 * preprocessor_config.json and every safetensors header. Valid while m lives. */
const char *clip_model_id(const struct clip_model *m);
int clip_model_dim(const struct clip_model *m);        /* embedding size (projection_dim) */
int clip_model_image_size(const struct clip_model *m); /* model input side S (pixels S x S) */
int clip_model_max_text(const struct clip_model *m);   /* max_position_embeddings (77) */
int clip_model_towers(const struct clip_model *m);     /* what was loaded */
/* The precision the products run in: FP32 or BF16 (AUTO resolved at load). */
enum clip_precision clip_model_precision(const struct clip_model *m);
enum clip_family clip_model_family(const struct clip_model *m);
const char *clip_family_name(enum clip_family f); /* "clip", "siglip" */
/* logit_scale.exp() and logit_bias, as SiglipModel / CLIPModel score a pair: logits = cosine *
 * scale + bias. CLIP has no bias (0). Read from the checkpoint's logit_scale / logit_bias
 * tensors; when a checkpoint lacks them, scale is exp(logit_scale_init_value) and bias 0. */
float clip_model_logit_scale(const struct clip_model *m);
float clip_model_logit_bias(const struct clip_model *m);
/* SigLIP: the probability that an image and a text (or two embeddings) match, sigmoid(cosine *
 * scale + bias), as SiglipModel's logits_per_image.sigmoid(). CLIP's scores are only relative
 * (a softmax over candidates): NAN. */
float clip_model_probability(const struct clip_model *m, float cosine);
/* The cosine at which clip_model_probability() reaches p (0 < p < 1): (logit(p) - bias) / scale,
 * clamped to [-1, 1]; NAN for CLIP. */
float clip_model_cosine_for_probability(const struct clip_model *m, float p);
/* Default relevance cutoff of a text query, as a cosine: 0.20 for CLIP (matching photos score
 * about 0.25-0.35); for SigLIP the cosine where the probability is CLIP_SIGLIP_MIN_PROB. */
#define CLIP_TEXT_MIN_SCORE  0.20f
#define CLIP_SIGLIP_MIN_PROB 0.10f
float clip_model_text_min_score(const struct clip_model *m);

/* The smallest decoded image that preprocessing needs without upscaling: the short edge must
 * be >= *min_short (feed it to image_decode_params.min_short). */
void clip_model_min_decode(const struct clip_model *m, int *min_short);

/* CLIPImageProcessor: resize (shortest edge = size, PIL bicubic), centre crop, rescale,
 * normalise; SiglipImageProcessor: resize to S x S (PIL bicubic, no crop), rescale, normalise.
 * rgb is upright 8-bit RGB; out receives 3 x S x S floats (CHW).
 * Errors: SB_EINVAL (empty image), SB_ENOMEM, SB_EMODEL (vision tower not loaded). */
int clip_preprocess(const struct clip_model *m, const struct image *rgb, float *out,
                    struct sb_err *err);

/* The upright size clip_preprocess() resizes an upright w x h image to (CLIP: the short edge
 * to size, the long edge int(size * long / short); SigLIP: size_w x size_h) and the filter it
 * resizes with. clip_preprocess() leaves an image of exactly that size as it is, so a caller
 * may make it itself from other pixels (the indexer: from the JPEG planes its thumbnails come
 * from, with the fast resizer). Returns 0 when the preprocessing does not resize or w x h
 * resizes to nothing (clip_preprocess() then crops or fails), or no vision tower. */
int clip_preprocess_size(const struct clip_model *m, int w, int h, int *out_w, int *out_h,
                         enum image_filter *f);

/* Scratch for batches of up to max_batch images (and one text). pool may be NULL (all on the
 * calling thread); it must outlive the ctx. Free with clip_ctx_free(). */
int clip_ctx_new(const struct clip_model *m, int max_batch, struct sb_pool *pool,
                 struct clip_ctx **out, struct sb_err *err);
void clip_ctx_free(struct clip_ctx *c); /* NULL is a no-op */

/* pixels: B x 3 x S x S (from clip_preprocess); out: B x D, each row L2-normalised.
 * 1 <= B <= max_batch, else SB_EINVAL. SB_EMODEL if the vision tower is not loaded. */
int clip_embed_images(struct clip_ctx *c, const float *pixels, int B, float *out,
                      struct sb_err *err);

/* Runs the text tower on token ids (with BOS/EOS, 1 <= n <= clip_model_max_text()); out: D
 * floats, L2-normalised. Pools at the EOS position as HF CLIPTextTransformer chooses it.
 * SigLIP: the ids are padded to clip_model_max_text() with the pad token (the tokenizer's, else
 * config.json's pad_token_id), as padding="max_length" does, and pooled at the last position. */
int clip_embed_tokens(struct clip_ctx *c, const int32_t *ids, int n, float *out,
                      struct sb_err *err);

/* Tokenises text with the model folder's tokenizer (truncated to max_text) and embeds it.
 * ids_out (may be NULL) receives the ids, room for clip_model_max_text() of them; *n_ids (may
 * be NULL) their count (without SigLIP's padding). SB_EMODEL if the text tower or the
 * tokenizer is missing. */
int clip_embed_text(struct clip_ctx *c, const char *text, float *out, int32_t *ids_out, int *n_ids,
                    struct sb_err *err);

/* SigLIP's vision tower for callers that want its tokens (the captions engine: SmolVLM /
 * Idefics3 and llava-interleave use it without the head). Runs the patch embedding and the
 * first n_layers encoder layers (n_layers < 0: all) on B images (1 <= B <= max_batch, pixels as
 * clip_embed_images), then, when post_ln, post_layernorm. tokens (may be NULL) receives the
 * hidden states, B x N x C row-major (N = (S/p)^2 patches, C = vision hidden_size); pooled (may
 * be NULL; needs all layers, post_ln and the attention-pooling head) the head's output, B x C,
 * not normalised. SB_EMODEL for a CLIP model, a missing vision tower or head; SB_EINVAL. */
int siglip_vision_forward(struct clip_ctx *c, const float *pixels, int B, int n_layers,
                          bool post_ln, float *tokens, float *pooled, struct sb_err *err);
/* N and C of siglip_vision_forward()'s tokens. */
void siglip_vision_shape(const struct clip_model *m, int *n_tokens, int *hidden);

#endif
