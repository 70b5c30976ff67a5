/* vlm_internal.h - private parts of the vision-language models (vlm.h): the vision tower (a
 * ViT in the CLIP or SigLIP flavour, run by clip.c's engine) and the projector weights, which
 * live in the same mapped safetensors files as the decoder (struct lm_model owns the mappings).
 *
 * Dimension legend (vlm.c, vlm_vision.c):
 *   S  image side (pixels)   p  patch side   G = S / p patches per side   N = G*G patches
 *   L  rows of the tower: N + 1 with a CLS row (CLIP), else N
 *   C  vision hidden size    F  vision MLP size   H  heads   E = C / H head size
 *   R  image rows fed to the decoder (N, N - 1 or N / s^2)   s  Idefics3 scale_factor
 *   Ct decoder hidden size */
#ifndef SHOEBOX_MODEL_VLM_INTERNAL_H
#define SHOEBOX_MODEL_VLM_INTERNAL_H

#include "lm_internal.h"
#include "moondream.h"
#include "shoebox/bpe.h"
#include "shoebox/vlm.h"

enum vlm_arch { VLM_ARCH_LLAVA, VLM_ARCH_IDEFICS3, VLM_ARCH_MOONDREAM /* moondream.h */ };
enum vlm_tower { VLM_TOWER_CLIP, VLM_TOWER_SIGLIP };
enum vlm_preproc { VLM_PRE_CLIP, VLM_PRE_SIGLIP, VLM_PRE_IDEFICS3 };

/* The vision tower's shape and how its features are taken; the tower itself runs on clip.c's
 * engine (the same code as the search models, fp32 or bf16). */
struct vlm_vision {
    enum vlm_tower tower;
    int C, F, H, n_layers, S, p, G, N, L;
    float eps;
    enum clip_act act;
    int run_layers;         /* layers whose output is the feature (feature layer) */
    bool drop_cls;          /* select strategy "default" */
    bool post_ln;           /* Idefics3: the features are last_hidden_state (post_layernorm) */
    struct clip_model *enc; /* the tower with run_layers layers, weights in the decoder's files */
};

struct vlm_preproc_cfg {
    enum vlm_preproc kind;
    struct clip_preproc_config clip; /* VLM_PRE_CLIP / VLM_PRE_SIGLIP */
    int longest_edge, max_edge;      /* Idefics3: size / max_image_size longest_edge */
    int resample;                    /* PIL filter number */
    float rescale, mean[3], std[3];
};

struct vlm_model {
    enum vlm_arch arch;
    struct lm_model *lm; /* the decoder; owns the mapped weight files */
    struct bpe_tokenizer *tok;
    struct vlm_vision vis;
    struct vlm_preproc_cfg pre;
    /* projector: LLaVA linear_1 (Ct, C) -> gelu -> linear_2 (Ct, Ct); Idefics3 proj (Ct, C*s*s),
     * f32 (widened at load) and packed into the tower's bf16 backend in bf16 mode */
    struct clip_linear proj1, proj2;
    enum clip_act proj_act;
    int scale;      /* Idefics3 scale_factor */
    int R;          /* image rows per image (a photo, or one crop of it) */
    bool split;     /* Idefics3 image splitting: crops of S x S plus the global image */
    int max_grid;   /* splitting: the most crops per side, ceil(longest_edge / S) */
    int max_images; /* images per photo at most: max_grid^2 + 1 when splitting, else 1 */
    int32_t image_id;
    int32_t fake_id, global_id; /* Idefics3: <fake_token_around_image>, <global-img> */
    int32_t stop[LM_MAX_STOP];
    int n_stop;
    void **owned; /* f32 copies of tensors stored in 16 bits */
    size_t n_owned, cap_owned;
    char id[160];
    struct md_model *md; /* VLM_ARCH_MOONDREAM: its vision side (vis/pre/proj unused) */
};

/* ------------------------------------------------------------------------------------------ */
/* The vision tower and projector (vlm_vision.c). Scratch for one forward, per ctx. */

struct vlm_vscratch;
int vlm_vscratch_new(const struct vlm_model *m, struct sb_pool *pool, struct vlm_vscratch **out,
                     struct sb_err *err);
void vlm_vscratch_free(struct vlm_vscratch *s);
/* pixels (3, S, S) -> out (R, Ct): the image rows the decoder receives. Allocates nothing
 * (but oneDNN's first pass at a shape in bf16); fails only when a bf16 product does. */
int vlm_image_rows(struct vlm_vscratch *s, const float *pixels, float *out, struct sb_err *err);

#endif
