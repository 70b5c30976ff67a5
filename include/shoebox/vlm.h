/* vlm.h - vision-language models for captions, in their Hugging Face layouts:
 *   LlavaForConditionalGeneration  a CLIP vision tower (llava-hf/llava-1.5-7b-hf) or a SigLIP
 *                                  one (llava-hf/llava-interleave-qwen-0.5b-hf), the
 *                                  multi_modal_projector (linear, gelu, linear) and a Llama or
 *                                  Qwen2 decoder; features of config.json's vision_feature_layer,
 *                                  select strategy "default" (drop CLS) or "full".
 *   Idefics3ForConditionalGeneration  SmolVLM (HuggingFaceTB/SmolVLM-256M/500M-Instruct): a
 *                                  SigLIP tower without head, pixel shuffle by scale_factor and
 *                                  modality_projection, a Llama decoder; the global image
 *                                  (resized to the vision size square), or with split_image
 *                                  the processor's crops plus the global image.
 *   Moondream 2 (vikhyatk/moondream2, custom code "HfMoondream", model_type "moondream1"): the
 *                                  2025 revisions (2025-01-09 on; not the 2024 ones, not
 *                                  Moondream 3): SigLIP-style tower on a global crop and
 *                                  overlapping local crops, proj_mlp, Phi-style decoder with a
 *                                  bidirectional image prefix; the default prompt uses the
 *                                  model's caption template ("normal"), another prompt its query
 *                                  template. Details: src/model/moondream.h. vlm_caption() runs
 *                                  the crops; vlm_caption_pixels() / vlm_preprocess() take the
 *                                  global crop alone (exact for a photo tiled 1 x 1).
 *
 * A caption is: preprocess the photo as the model's image processor does, run the vision tower
 * and the projector to get image rows, build the chat prompt ("USER: <image>\n{prompt}
 * ASSISTANT:" and friends, from the tokenizer's chat_template) with the processor's image
 * tokens, and decode greedily with the decoder of lm.h.
 *
 * Thread rules: a struct vlm_model is read-only after loading and may be shared. A struct
 * vlm_ctx (vision activations, KV cache) is used by one thread at a time; give each thread its
 * own. Work inside one caption is split over the ctx's sb_pool (NULL: the calling thread); in
 * bf16 the vision tower's and projector's products run on oneDNN's own (OpenMP) threads. */
#ifndef SHOEBOX_VLM_H
#define SHOEBOX_VLM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shoebox/model.h" /* enum clip_precision */

struct sb_err;
struct sb_pool;
struct sb_buf;
struct image;
struct vlm_model; /* opaque: src/model/vlm_internal.h */
struct vlm_ctx;   /* opaque: src/model/vlm.c */

#define VLM_DEFAULT_PROMPT "Describe this photo in one sentence."
#define VLM_MAX_NEW_TOKENS 512 /* the largest max_new_tokens accepted */

struct vlm_load_params {
    /* the vision tower's and projector's products (the tower is model.h's engine, Moondream's
     * its own; FP32, BF16 or AUTO as clip_load_params), and the decoder's prefill: in BF16 the
     * decoder's block linears (and Moondream's tower) get an extra packed bf16 copy (about 2
     * bytes per parameter) for products of more than a few prompt rows; one-token decoding
     * keeps the file's 16-bit weights */
    enum clip_precision precision;
    /* Idefics3 only: image splitting (do_image_splitting, "tiles"): the photo goes to
     * size["longest_edge"], then into crops of the vision size plus the global image, each
     * through the tower, all in the prompt (more detail, several times the work); off: the
     * global image alone. SB_EINVAL for a LLaVA model. */
    bool split_image;
    int blas_threads; /* > 0: openblas_set_num_threads(n) at load; 0: leave as is */
};
/* precision FP32, split_image off, blas_threads 0 */
struct vlm_load_params vlm_load_default_params(void);

/* Loads the folder dir: config.json (its "architectures" / "model_type" choose the family),
 * model.safetensors (or an index and shards), tokenizer.json + tokenizer_config.json (the chat
 * template), preprocessor_config.json. Every tensor is checked by name, dtype and shape;
 * unsupported families, vision towers, projector activations or feature layers are SB_EMODEL
 * naming what was found. Errors as lm_model_load(). *out is freed with vlm_model_free(). */
int vlm_model_load(const char *dir, const struct vlm_load_params *p, struct vlm_model **out,
                   struct sb_err *err);
void vlm_model_free(struct vlm_model *m); /* NULL is a no-op */

/* "<name>@<16 hex digits>": name from text_config / config _name_or_path is not the VLM's, so
 * the folder's last component; the digits hash config.json and every safetensors header. */
const char *vlm_model_id(const struct vlm_model *m);
/* "llava" or "idefics3". */
const char *vlm_model_arch(const struct vlm_model *m);
/* The precision the vision tower and projector (Moondream: the decoder's prefill) compute
 * in: FP32 or BF16 (AUTO resolved). */
enum clip_precision vlm_model_precision(const struct vlm_model *m);
/* S: the vision tower's input side; pixels are 3 x S x S floats (CHW). */
int vlm_model_image_size(const struct vlm_model *m);
/* How large a decode must be so preprocessing does not upscale: short edge >= *min_short,
 * long edge >= *min_long (for image_decode_params). */
void vlm_model_min_decode(const struct vlm_model *m, int *min_long, int *min_short);
/* Image rows the prompt carries per image (the processor's <image> tokens); a split photo has
 * rows * cols + 1 images. */
int vlm_model_image_tokens(const struct vlm_model *m);
/* The most images one photo becomes: 1, or with split_image ceil(longest_edge / S)^2 + 1. */
int vlm_model_max_images(const struct vlm_model *m);

/* The model's image processor on upright 8-bit RGB: out gets 3 x S x S floats. SB_EINVAL for
 * an empty image, SB_ENOMEM. Thread-safe. */
int vlm_preprocess(const struct vlm_model *m, const struct image *rgb, float *out,
                   struct sb_err *err);

/* The image processor with the model's splitting: out (room for vlm_model_max_images() images
 * of 3 x S x S) gets the rows * cols crops row-major, then the global image; *rows = *cols = 0
 * when there is one image (no splitting, or a photo no larger than one crop). Errors as
 * vlm_preprocess(). */
int vlm_preprocess_split(const struct vlm_model *m, const struct image *rgb, float *out, int *rows,
                         int *cols, struct sb_err *err);

/* A context with room for the prompt, one image and max_new_tokens <= VLM_MAX_NEW_TOKENS
 * tokens. pool may be NULL and must outlive the ctx. Free with vlm_ctx_free(). */
int vlm_ctx_new(const struct vlm_model *m, struct sb_pool *pool, struct vlm_ctx **out,
                struct sb_err *err);
void vlm_ctx_free(struct vlm_ctx *c); /* NULL is a no-op */

struct vlm_params {
    const char *prompt;       /* the user's instruction; NULL: VLM_DEFAULT_PROMPT */
    int max_new_tokens;       /* 1..VLM_MAX_NEW_TOKENS */
    float repetition_penalty; /* 1 = off (HF RepetitionPenaltyLogitsProcessor) */
    bool cleanup;             /* caption text: trim, first sentence only, no trailing junk */
};
/* VLM_DEFAULT_PROMPT, max_new_tokens 40, repetition_penalty 1.1, cleanup on. */
struct vlm_params vlm_default_params(void);

/* Captions preprocessed pixels (3 x S x S): image rows, prompt, greedy decoding until a stop
 * id (the chat template's end of turn and eos) or max_new_tokens. ids (room for
 * max_new_tokens) receives the generated ids, *n_ids their count; text (may be NULL) gets the
 * decoded caption appended (cleaned up when p->cleanup). SB_EINVAL for bad params, SB_ETOOBIG
 * (prompt too long), SB_ENOMEM, SB_EINTERNAL. */
int vlm_caption_pixels(struct vlm_ctx *c, const float *pixels, const struct vlm_params *p,
                       int32_t *ids, int *n_ids, struct sb_buf *text, struct sb_err *err);
/* The same for a split photo as vlm_preprocess_split() gives it: rows * cols crops and the
 * global image (rows = cols = 0: one image, as vlm_caption_pixels()). SB_EINVAL for a grid
 * beyond the model's or a model loaded without split_image. */
int vlm_caption_split(struct vlm_ctx *c, const float *pixels, int rows, int cols,
                      const struct vlm_params *p, int32_t *ids, int *n_ids, struct sb_buf *text,
                      struct sb_err *err);
/* vlm_preprocess_split() then vlm_caption_split(). */
int vlm_caption(struct vlm_ctx *c, const struct image *rgb, const struct vlm_params *p,
                int32_t *ids, int *n_ids, struct sb_buf *text, struct sb_err *err);

/* Captions of several photos decoded together (batched decoding: each decode step reads the
 * decoder's weights once for all of them; one caption at a time reads them once per token):
 *   vlm_encode()          the photo through the image processor (with the model's splitting)
 *                         and the vision tower: its image rows, on any ctx of the model
 *   vlm_caption_start()   those rows into c's prompt, its prefill and the first token
 *   vlm_caption_step()    one more token for each ctx of cs whose caption is not done, in one
 *                         decoder pass; repeat until vlm_caption_done() for all
 *   vlm_caption_finish()  the ids and text, as vlm_caption() gives them
 * Each caption is exactly vlm_caption()'s of its photo, whatever else is in the batch. The ctxs
 * of one step must be distinct, of one model and share one pool (the step runs on it).
 * Errors: vlm_encode as vlm_caption's preprocessing and tower, SB_ENOMEM; vlm_caption_start as
 * vlm_caption's prompt and prefill (c then holds no caption: done, nothing to finish), SB_EINVAL
 * for rows of another model; vlm_caption_step SB_EINVAL for bad cs (nothing run);
 * vlm_caption_finish SB_EINVAL when c has no finished caption. The vlm_image is the caller's,
 * freed with vlm_image_free(); it does not refer to the ctx. */
/* How many captions of at most max_new_tokens tokens can be in progress at once (each in its
 * own ctx) within budget bytes, at most max_slots and at least 1: each fills its key and value
 * cache up to its prompt (the most images a photo becomes, their rows and the template) plus
 * its tokens. A 7B LLaVA needs ~1 GB per caption, SmolVLM-256M ~20 MB. */
int vlm_batch_slots(const struct vlm_model *m, int max_new_tokens, size_t budget, int max_slots);
struct vlm_image;
int vlm_encode(struct vlm_ctx *c, const struct image *rgb, struct vlm_image **out,
               struct sb_err *err);
void vlm_image_free(struct vlm_image *im); /* NULL is a no-op */
int vlm_caption_start(struct vlm_ctx *c, const struct vlm_image *im, const struct vlm_params *p,
                      struct sb_err *err);
int vlm_caption_step(struct vlm_ctx *const *cs, int n, struct sb_err *err);
bool vlm_caption_done(const struct vlm_ctx *c);
int vlm_caption_finish(struct vlm_ctx *c, int32_t *ids, int *n_ids, struct sb_buf *text,
                       struct sb_err *err);

/* Of the last caption: the prompt as fed to the decoder (image rows as -1, see
 * LM_EMBED_ROW), and the (V) logits after the prefill. Valid until the next call on c. */
const int32_t *vlm_ctx_prompt(const struct vlm_ctx *c, int *n);
const float *vlm_ctx_prefill_logits(const struct vlm_ctx *c, int *V);
/* Of the last caption: the image rows the decoder received (every image's), (*rows, *dim)
 * row-major. */
const float *vlm_ctx_image_rows(const struct vlm_ctx *c, int *rows, int *dim);
/* Seconds the last caption spent in the vision tower + projector, and in the prompt and
 * generation (prefill + decode steps), for benchmarks. */
void vlm_ctx_timing(const struct vlm_ctx *c, double *encode_s, double *generate_s);

/* Caption cleanup: trims white space and quotes, keeps the first sentence (up to and with the
 * first '.', '!' or '?' followed by a space, not after an abbreviation), collapses runs of
 * white space and control characters into one space and drops U+FFFD.
 * Works in place on the NUL-terminated s. */
void vlm_clean_caption(char *s);

#endif
