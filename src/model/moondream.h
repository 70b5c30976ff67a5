/* moondream.h - Moondream 2 (vikhyatk/moondream2, custom code, not a transformers class) inside
 * the captioning models of vlm.h. Supported: the Hugging Face revisions of 2025 (2025-01-09 and
 * later ones with the same "text"/"vision" model, as vikhyat/moondream's moondream/torch/
 * defines it): model_type "moondream1" / architectures ["HfMoondream"], one model.safetensors
 * with HfMoondream's names (model.text.*, model.vision.*; model.region.* is ignored), the
 * GPT-2 style tokenizer.json. Older revisions (2024, text_model.transformer.h.* Phi layout with
 * SigLIP "vision_encoder.*" names) and Moondream 3 (mixture-of-experts) are SB_EMODEL.
 *
 * config.json: the real file carries "config": {} and the sizes are config.py's defaults (the
 * HF class even ignores the section); a "config" object with "text" / "vision" / "tokenizer"
 * sections (MoondreamConfig.from_dict) overrides them, which the tiny test model uses. Every
 * tensor is checked against the sizes.
 *
 * Image path (image_crops.py + vision.py): a global crop (the photo resized to crop_size
 * square) and overlapping local crops of the photo resized to a tiling chosen by
 * select_tiling (up to max_crops, margin overlap_margin patches), all through the SigLIP-style
 * ViT (fused qkv, gelu(tanh), post_ln); the local patch features are stitched without their
 * margins, average-pooled back to the G x G grid, concatenated to the global features and
 * projected by proj_mlp into R = G*G rows. Resizes are PIL's LANCZOS (the code's path without
 * pyvips). The decoder sees [BOS, R image rows] (attending bidirectionally) then the caption
 * template ids of config tokenizer.templates["caption"]["normal"], or for another instruction
 * the "query" template: prefix + the instruction's tokens + suffix. */
#ifndef SHOEBOX_MODEL_MOONDREAM_H
#define SHOEBOX_MODEL_MOONDREAM_H

#include "lm_internal.h"

#include <cjson/cJSON.h>

struct image;
struct bpe_tokenizer;
struct vlm_model;

#define MD_MAX_TEMPLATE 64

struct md_vit_layer {
    const float *ln1_w, *ln1_b;
    struct lm_mat qkv;  /* (3C, C) */
    struct lm_mat proj; /* (C, C) */
    const float *ln2_w, *ln2_b;
    struct lm_mat fc1; /* (F, C) */
    struct lm_mat fc2; /* (C, F) */
};

struct md_model {
    int C, F, H, n_layers; /* vision width, MLP, heads, blocks */
    int S, p, G, N;        /* crop side, patch, G = S / p, N = G*G patches (= R rows) */
    int margin, max_crops; /* overlap_margin (patches), max_crops */
    int inner, Ct;         /* proj_mlp inner size, decoder width */
    struct lm_mat patch;   /* (C, 3*p*p) patch_emb with bias, columns (c, py, px) */
    const float *pos;      /* (N, C) pos_emb */
    struct md_vit_layer *layers;
    const float *post_w, *post_b;
    struct lm_mat proj1, proj2; /* (I, 2C), (Ct, I) */
    int32_t bos, eos;
    int32_t caption[MD_MAX_TEMPLATE], q_prefix[MD_MAX_TEMPLATE], q_suffix[MD_MAX_TEMPLATE];
    int n_caption, n_q_prefix, n_q_suffix;
    struct clip_bf16 *bf16; /* bf16 precision: the decoder's backend holding the packed copies */
};

#define MD_MAX_LAYERS 256 /* vision blocks md_set_precision packs at most */

/* bf16 precision after lm_model_set_precision(lm) chose it: the tower's and projection's
 * linears packed into lm's backend (an extra bf16 copy of them). Nothing in fp32. SB_ENOMEM,
 * SB_EINTERNAL; on failure the model stays fp32. */
int md_set_precision(struct md_model *m, struct lm_model *lm, struct sb_err *err);

/* True when config.json describes Moondream (model_type "moondream1"/"moondream2" or
 * architectures ["HfMoondream"]). */
bool md_is_moondream(const cJSON *root);

/* Loads the folder's weights, tokenizer and sizes: *lm gets the text model (LM_ARCH_PHI),
 * *tok the tokenizer, *out the vision side. SB_EMODEL for unsupported revisions or a missing /
 * misshapen tensor (named), SB_EFORMAT for bad config values. On failure nothing is left to
 * free. */
int md_load(const char *dir, const cJSON *root, int blas_threads, struct lm_model **lm,
            struct bpe_tokenizer **tok, struct md_model **out, struct sb_err *err);
void md_free(struct md_model *m); /* NULL is a no-op */

/* The prompt for instruction (NULL or VLM_DEFAULT_PROMPT: the caption template): ids with
 * LM_EMBED_ROW for the image rows, embeds (cap, Ct) receiving rows (N, Ct) at their places.
 * SB_ETOOBIG when it exceeds cap, SB_ENOMEM. */
int md_build_prompt(const struct md_model *m, const struct bpe_tokenizer *tok, const char *prompt,
                    const float *rows, int32_t *ids, float *embeds, int cap, int *n,
                    struct sb_err *err);

/* The global crop of rgb (crop_size square, LANCZOS, (x/255 - 0.5)/0.5) into out (3, S, S). */
int md_global_crop(const struct md_model *m, const struct image *rgb, float *out,
                   struct sb_err *err);

/* (moondream_vision.c) Scratch for the vision side, per caption context. */
struct md_vscratch;
int md_vscratch_new(const struct md_model *m, struct sb_pool *pool, struct md_vscratch **out,
                    struct sb_err *err);
void md_vscratch_free(struct md_vscratch *s); /* NULL is a no-op */
/* Image rows (N, Ct) of a photo: crops, tower, stitching, pooling, projection. Allocates the
 * crops of this photo (their number depends on its size). SB_EINVAL for an empty image,
 * SB_ENOMEM. tiling (may be NULL) gets the local crop grid (rows, cols). */
int md_image_rows(struct md_vscratch *s, const struct image *rgb, float *rows, int tiling[2],
                  struct sb_err *err);
/* Image rows from one preprocessed crop (3, S, S) (a photo whose tiling is 1 x 1: its local
 * crop is its global crop). Allocates nothing (but the first bf16 pass makes the backend's
 * primitives); fails only when a bf16 product does. */
int md_pixel_rows(struct md_vscratch *s, const float *pixels, float *rows, struct sb_err *err);

#endif
