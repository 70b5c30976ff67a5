/* internal.h - private parts of the model module: safetensors files, CLIP configuration
 * parsing and the clip_model struct. Parsers take untrusted bytes and never crash; they are
 * exposed here for the fuzz targets (fuzz/fuzz_safetensors.c, fuzz/fuzz_config.c). */
#ifndef SHOEBOX_MODEL_INTERNAL_H
#define SHOEBOX_MODEL_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shoebox/err.h"
#include "shoebox/model.h"
#include "shoebox/pool.h"

struct sb_err;

/* ------------------------------------------------------------------------------------------ */
/* safetensors: 8-byte LE header length N, N bytes of JSON, then the data section. */

#define ST_MAX_HEADER  ((uint64_t)100 * 1024 * 1024) /* refuse larger headers (hostile files) */
#define ST_MAX_DIMS    8
#define ST_MAX_TENSORS 1000000

enum st_dtype {
    ST_F64,
    ST_F32,
    ST_F16,
    ST_BF16,
    ST_I64,
    ST_I32,
    ST_I16,
    ST_I8,
    ST_U8,
    ST_BOOL,
    ST_F8_E4M3,
    ST_F8_E5M2,
    ST_U16,
    ST_U32,
    ST_U64,
};

struct st_tensor {
    char *name;
    enum st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    size_t numel;
    const unsigned char *data; /* into the mapped data section */
    size_t nbytes;
};

/* One parsed file. data points into the caller's bytes (mmapped file or fuzz input). */
struct st_file {
    struct st_tensor *t;
    size_t n;
    char *header; /* the JSON header bytes, kept for the model id hash */
    size_t header_len;
};

const char *st_dtype_name(enum st_dtype d);
size_t st_dtype_size(enum st_dtype d);

/* Parses and validates a whole safetensors image buf[0..len): header length within the file
 * and under ST_MAX_HEADER, JSON object of tensors with known dtypes, shapes whose byte size
 * matches data_offsets, ranges inside the data section and not overlapping. name is used in
 * messages. On success fills *f (release with st_file_release()). */
int st_parse(const unsigned char *buf, size_t len, const char *name, struct st_file *f,
             struct sb_err *err);
void st_file_release(struct st_file *f);
/* The tensor called name, or NULL. */
const struct st_tensor *st_find(const struct st_file *f, const char *name);

/* ------------------------------------------------------------------------------------------ */
/* Configuration (config.json as CLIPConfig, preprocessor_config.json as CLIPImageProcessor). */

enum clip_act { CLIP_ACT_QUICK_GELU, CLIP_ACT_GELU, CLIP_ACT_GELU_TANH };

struct clip_tower_config {
    int hidden;       /* C: hidden_size */
    int intermediate; /* F: intermediate_size */
    int layers;       /* num_hidden_layers */
    int heads;        /* H: num_attention_heads */
    enum clip_act act;
    float ln_eps;
};

struct clip_config {
    enum clip_family family; /* from model_type */
    struct clip_tower_config text, vision;
    int vocab_size;   /* V */
    int max_pos;      /* P: max_position_embeddings */
    int eos_token_id; /* 2 in legacy configs: pool at argmax(ids) */
    int image_size;   /* S */
    int patch_size;   /* p */
    int num_channels; /* must be 3 */
    int proj_dim;     /* D: projection_dim (top level) */
    float logit_scale_init;
    int pad_token_id;     /* text_config pad_token_id (SigLIP pads to max_pos with it) */
    int text_proj;        /* SigLIP: text head output size (projection_size), == proj_dim */
    bool vision_use_head; /* SigLIP: the attention-pooling head exists (vision_use_head) */
    char name[64];        /* last component of _name_or_path, or "clip" */
};

struct clip_preproc_config {
    bool do_resize, do_center_crop, do_rescale, do_normalize;
    bool size_is_shortest_edge; /* else resize to size_h x size_w */
    int size_short, size_h, size_w;
    int crop_h, crop_w;
    int resample; /* PIL: 0 nearest, 1 lanczos, 2 bilinear, 3 bicubic */
    float rescale;
    float mean[3], std[3];
};

/* Parses config.json bytes (HF defaults for missing keys, text_config_dict/vision_config_dict
 * legacy keys merged over text_config/vision_config) and checks the sizes are sane. */
int clip_config_parse(const char *json, size_t len, struct clip_config *c, struct sb_err *err);
/* Parses preprocessor_config.json bytes; json NULL gives CLIPImageProcessor's defaults for an
 * image_size x image_size model. */
int clip_preproc_parse(const char *json, size_t len, int image_size, struct clip_preproc_config *p,
                       struct sb_err *err);
/* The same with the defaults of the family's image processor (SiglipImageProcessor: resize to
 * image_size x image_size without crop, mean = std = 0.5). */
int clip_preproc_parse_family(const char *json, size_t len, int image_size, enum clip_family family,
                              struct clip_preproc_config *p, struct sb_err *err);

/* ------------------------------------------------------------------------------------------ */
/* The model: config plus weights. Every weight pointer is f32, either into a mapped file (F32
 * tensors, used where they lie) or into memory the model owns (converted or fused tensors).
 * Dimension letters: C hidden, F intermediate, H heads, V vocab, P text positions, D
 * projection_dim, p patch, G = S/p patches per side, N = G*G patches. */

struct clip_packed; /* a linear's weights in the bf16 backend's layout (linear_dnnl.c) */

/* out(T,N) = in(T,K) @ w^T + b, w (N,K) row-major as nn.Linear stores it. */
struct clip_linear {
    const float *w;                   /* (n_out, n_in) */
    const float *b;                   /* (n_out) or NULL */
    const struct clip_packed *packed; /* bf16 copy of w, packed at load; NULL in fp32 */
    const float *f32p; /* fp32: w in gemm_f32.c's column panels of f32_np (text tower), or NULL */
    int f32_np;
    int n_out, n_in;
};

#define CLIP_MLP_PARTS 8

struct clip_layer {             /* one CLIPEncoderLayer */
    const float *ln1_w, *ln1_b; /* (C) layer_norm1 */
    struct clip_linear qkv;     /* (3C, C): q_proj, k_proj, v_proj fused at load */
    struct clip_linear out;     /* (C, C) out_proj */
    const float *ln2_w, *ln2_b; /* (C) layer_norm2 */
    struct clip_linear fc1;     /* (F, C) */
    struct clip_linear fc2;     /* (C, F) */
    /* bf16 with F a multiple of C (at most CLIP_MLP_PARTS times): the MLP as C x C products,
     * which oneDNN runs faster than the (F, C) and (C, F) ones (clip_k_mlp). Part p of fc1 is
     * rows [pC, pC + C) of fc1 with their bias; part p of fc2 its columns [pC, pC + C), the
     * bias in part 0 only. fc1 and fc2 themselves are then not packed. 0 parts: not split. */
    int mlp_parts;
    struct clip_linear fc1_parts[CLIP_MLP_PARTS], fc2_parts[CLIP_MLP_PARTS];
    /* bf16: q, k, v as three C x C products (rows [pC, pC + C) of qkv), qkv itself then not
     * packed (clip_k_encoder_layer) */
    bool qkv_split;
    struct clip_linear qkv_parts[3];
};

/* SiglipMultiheadAttentionPoolingHead: one learned probe attends over the tokens
 * (nn.MultiheadAttention, q/k/v packed in in_proj_weight), then a pre-LN MLP with a residual. */
struct siglip_head {
    const float *probe;       /* (C) probe (1, 1, C) */
    struct clip_linear q;     /* (C, C) rows [0, C) of attention.in_proj_weight */
    struct clip_linear kv;    /* (2C, C) rows [C, 3C): k then v */
    struct clip_linear out;   /* (C, C) attention.out_proj */
    const float *ln_w, *ln_b; /* (C) layernorm */
    struct clip_linear fc1;   /* (F, C) mlp.fc1 */
    struct clip_linear fc2;   /* (C, F) mlp.fc2 */
};

struct clip_text_weights {
    const float *tok_emb; /* (V, C) token_embedding */
    const float *pos_emb; /* (P, C) position_embedding */
    struct clip_layer *layers;
    const float *final_ln_w, *final_ln_b; /* (C) */
    struct clip_linear proj;              /* (D, C) text_projection, no bias; SigLIP: head */
    /* SigLIP: a token embedding table that is not aligned F32 stays in the file and rows are
     * converted when used (SigLIP 2's 256k x C table would cost ~0.8 GB as f32 copies). */
    const struct st_tensor *tok_emb_t; /* set when tok_emb is NULL */
};

struct clip_vision_weights {
    struct clip_linear patch;         /* (C, 3*p*p) patch_embedding conv as a matrix, no bias */
    const float *class_emb;           /* (C) */
    const float *pos_emb;             /* (N+1, C) */
    const float *pre_ln_w, *pre_ln_b; /* (C) pre_layrnorm (sic, HF's name) */
    struct clip_layer *layers;
    const float *post_ln_w, *post_ln_b; /* (C) */
    struct clip_linear proj;            /* (D, C) visual_projection, no bias */
    /* SigLIP: patch.b is the conv bias, pos_emb is (N, C), no class_emb / pre_ln / proj */
    struct siglip_head head; /* valid when has_head */
    bool has_head;
};

struct clip_mapping {
    void *addr;
    size_t len;
};

/* Every safetensors file of a model folder (model.safetensors, or each shard that
 * model.safetensors.index.json names; shard names must be plain file names beside it),
 * mapped read-only and parsed. */
struct st_weights {
    struct st_file *files;
    struct clip_mapping *maps;
    size_t n_files;
};
int st_weights_open(struct st_weights *w, const char *dir, struct sb_err *err);
void st_weights_close(struct st_weights *w); /* also on a half-open one */
/* The tensor of that name in any of the files, or NULL. */
const struct st_tensor *st_weights_find(const struct st_weights *w, const char *name);
/* The tensor of that name with a float dtype (F32, F16, BF16) and exactly this shape;
 * SB_EMODEL naming the tensor (missing, dtype, "has shape (..), expected (..)") otherwise. */
int st_weights_check(const struct st_weights *w, const char *name, int ndim, const int64_t *shape,
                     const struct st_tensor **out, struct sb_err *err);
/* "dir/name" into buf; SB_EINVAL when it does not fit. */
int st_join_path(char *buf, size_t cap, const char *dir, const char *name, struct sb_err *err);
bool st_file_exists(const char *path); /* a regular file */

struct clip_tokenizer;
struct spm_tokenizer;
struct bpe_tokenizer;
struct clip_bf16;

struct clip_model {
    struct clip_config cfg;
    struct clip_preproc_config pre;
    int towers;
    enum clip_precision precision; /* resolved: FP32 or BF16, never AUTO */
    struct clip_bf16 *bf16;        /* the bf16 backend's engine and packed weights, or NULL */
    struct clip_text_weights text;
    struct clip_vision_weights vision;
    struct st_weights weights; /* the safetensors files, mapped read-only */
    bool weights_borrowed;     /* weights belong to another model (clip_vision_tower_load) */
    /* memory the model owns: converted and fused tensors, layer arrays */
    void **owned;
    size_t n_owned, cap_owned;
    struct clip_tokenizer *tok; /* NULL when the folder has no tokenizer files */
    struct spm_tokenizer *spm;  /* SigLIP: spiece.model (SiglipTokenizer), or NULL */
    struct bpe_tokenizer *bpe;  /* SigLIP 2: tokenizer.json (GemmaTokenizerFast), or NULL */
    float logit_scale;          /* logit_scale.exp() */
    float logit_bias;           /* SigLIP's logit_bias, 0 for CLIP */
    char id[96];
};

/* ------------------------------------------------------------------------------------------ */
/* bf16 matrix products: src/model/linear_dnnl.c (gemm_amx.c's kernel on AMX CPUs, oneDNN on
 * AVX512-BF16 ones), or src/model/linear_nodnnl.c where oneDNN is absent (every function there
 * fails or says no; the loader then computes in fp32). Weights are converted once at load into
 * the kernel's packed layout (gemm_amx.c's tiles, or oneDNN's for this CPU). Activations enter as
 * bf16 (row-major (M, K)), the products accumulate in fp32, and the output is f32, or bf16 when it
 * only feeds another product or the attention kernel (CLIP_EPI_ACT: fc1 + activation feeding fc2;
 * CLIP_EPI_BF16: q, k, v). clip.c shares a product out over pool workers by row chunks, or runs it
 * whole on one worker.
 *
 * Threads: a struct clip_bf16 is read-only after packing. A struct clip_bf16_ctx belongs to one
 * clip_ctx; clip_bf16_op() and clip_bf16_run() run on any of its workers (each worker index
 * has its own stream, memory objects and scratchpad). With more than one
 * worker each call is single-threaded; with one, oneDNN uses its own (OpenMP) threads. */

enum clip_epi {
    CLIP_EPI_STORE,    /* out (f32) = in @ W^T + b */
    CLIP_EPI_ACT,      /* out (bf16) = act(in @ W^T + b) */
    CLIP_EPI_RESIDUAL, /* out (f32) += in @ W^T + b */
    CLIP_EPI_BF16,     /* out (bf16) = in @ W^T + b (bf16 mode only: q, k, v for attention) */
};

struct clip_bf16;
struct clip_bf16_ctx;
struct clip_bf16_op; /* one primitive: (row bucket, K, N, epilogue) */
struct clip_team;

bool clip_bf16_compiled(void); /* true when built with oneDNN */
/* true when the CPU multiplies bf16 natively (AMX-BF16 with the OS's permission to use the
 * tile data, or AVX512-BF16): CLIP_PRECISION_AUTO picks bf16 exactly then (and when compiled). */
bool clip_cpu_native_bf16(void);
int clip_bf16_new(struct clip_bf16 **out, struct sb_err *err);
void clip_bf16_free(struct clip_bf16 *b); /* NULL is a no-op; frees every packed linear */
/* Packs l->w into bf16 owned by b and sets l->packed. SB_ENOMEM, SB_EINTERNAL. */
int clip_bf16_pack(struct clip_bf16 *b, struct clip_linear *l, struct sb_err *err);
/* The same for l->w rows ld floats apart (a column slice of a wider matrix). */
int clip_bf16_pack_ld(struct clip_bf16 *b, struct clip_linear *l, size_t ld, struct sb_err *err);
int clip_bf16_ctx_new(struct clip_bf16 *b, int n_workers, struct clip_bf16_ctx **out,
                      struct sb_err *err);
void clip_bf16_ctx_free(struct clip_bf16_ctx *c); /* NULL is a no-op */
/* Rows a product of M rows reads and writes: M rounded up to a bucket of 16 when M <= 128 (so
 * a handful of primitives serve every text length), else M. Buffers must have room for them,
 * and a chunk that is not the last of a product must be a multiple of 16 rows. */
int clip_bf16_rows(int M);
/* The primitive for (M rows, l's shape, epi, act), created on first use and cached in c (the
 * first pass at a new size JIT-compiles kernels; later passes allocate nothing). SB_ENOMEM,
 * SB_EINTERNAL, SB_ETOOBIG. Any thread: a mutex guards the cache. */
int clip_bf16_op(struct clip_bf16_ctx *c, const struct clip_linear *l, int M, enum clip_epi epi,
                 enum clip_act act, const struct clip_bf16_op **out, struct sb_err *err);
/* Runs op (made for l, or a linear of the same shape) on worker `worker`: out is (M, n_out)
 * row-major (f32, or bf16 for CLIP_EPI_ACT / BF16), in is (M, n_in) bf16, both with room for
 * clip_bf16_rows(M) rows. The first run of an op on a worker may grow that worker's scratchpad.
 * Returns false if oneDNN failed or that allocation did. */
bool clip_bf16_run(struct clip_bf16_ctx *c, const struct clip_bf16_op *op,
                   const struct clip_linear *l, int worker, void *out, const uint16_t *in);

/* true when l's packed weights are gemm_amx.c's (AMX CPUs; SHOEBOX_BF16_GEMM=onednn keeps
 * oneDNN): then clip_bf16_gemm runs any rows and any 32-column blocks of it, on any thread,
 * with no primitive, scratchpad or padding rows. */
bool clip_bf16_amx(const struct clip_linear *l);
/* Rows [0, M), output columns [n0, n1) (n0 a multiple of CLIP_AMX_COLS) of l's product with
 * epilogue epi: out is (M, n_out) and in (M, n_in), both row-major from row 0 / column 0. */
void clip_bf16_gemm(const struct clip_linear *l, int M, void *out, const uint16_t *in, int n0,
                    int n1, enum clip_epi epi, enum clip_act act);

/* gemm_amx.c: the kernel itself (the layout and the blocking are described there). */
#define CLIP_AMX_COLS 32
size_t clip_amx_packed_size(int K, int N); /* bf16 elements of W (N, K) packed */
/* Packs f32 W (N, K), rows ld apart, into dst (clip_amx_packed_size elements); row: K scratch. */
void clip_amx_pack(uint16_t *dst, const float *w, size_t ld, int K, int N, uint16_t *row);
/* out rows [0, M), columns [n0, n1) = epi(in @ W^T + bias); in rows ldi apart, out rows ldo
 * apart (f32, or bf16 for CLIP_EPI_ACT / BF16); wp from clip_amx_pack; bias (N) or NULL. Needs
 * clip_amx(). */
void clip_amx_gemm(void *out, size_t ldo, const uint16_t *in, size_t ldi, int M, const uint16_t *wp,
                   const float *bias, int K, int N, int n0, int n1, enum clip_epi epi,
                   enum clip_act act);

/* ------------------------------------------------------------------------------------------ */
/* Forward-pass scratch and kernels (src/model/clip.c), shared with SigLIP (src/model/siglip.c).
 * Every kernel shares its work out over the ctx's pool (see clip.c); none allocates or logs. */

/* Scratch for one thread's forward passes, allocated once for the largest batch. Buffers that
 * feed a product ("product inputs": a, mlp) hold f32 in fp32 mode and bf16 in bf16 mode, and
 * have room for clip_bf16_rows(T) rows. */
struct clip_ctx {
    const struct clip_model *m;
    struct sb_pool *pool;
    struct clip_bf16_ctx *bf16; /* NULL: fp32 products on OpenBLAS */
    atomic_bool failed;         /* a bf16 product failed (set by any worker) */
    struct sb_err err;          /* why, when known */
    int max_batch;
    int n_workers;  /* sb_pool_size(pool) + 1: the caller takes part too */
    int worker0;    /* added to worker indices: a view running as one worker (clip.c) has its own */
    size_t max_len; /* longest sequence (L or P) */
    size_t max_e;   /* largest head size E */
    float *x;       /* (T, C) the residual stream */
    float *qkv;     /* (T, 3C); also the projection output before it is copied out */
    float *tmp;     /* (B*N, C) patch embeddings; (B, C) pooled rows */
    void *a;        /* (T, max(C, 3pp)) product input: layer norm, attention, patches */
    void *mlp;      /* (T, F) product input: fc1 + activation output */
    float *att;     /* (n_workers, max_len * (max_len + max_e)) scores and head outputs */
    int32_t *ids;   /* (P) token ids of the last text */
    float *head_q;  /* (C) SigLIP: the attention-pooling head's projected probe */
    /* in a team (clip_k_team_run): this view's rank in [0, n_workers); NULL otherwise */
    struct clip_team *team;
    int rank;
};

/* Runs fn over items [0, n) on c's workers: through the pool (chunks of at least grain), or,
 * on a team member's view, this member's static share followed by a barrier of the team. */
void clip_k_for(struct clip_ctx *c, size_t n, size_t grain, sb_range_fn fn, void *arg);
/* In a team: waits for every member (a serial part done by rank 0 is then visible to all);
 * otherwise nothing. */
void clip_k_barrier(struct clip_ctx *c);
/* body(view, arg) on every worker at once, each on its own view of c (a team): every
 * clip_k_* call inside then shares its work out by static shares and a spinning barrier
 * instead of a pool hand-off per operation (a text query is ~200 short operations). Only for
 * bf16 on the AMX kernel: runs body on c itself when c has no pool or one worker, in fp32, or
 * when products can fail (oneDNN's). body must make the same clip_k_* calls on every member;
 * c's outputs are written by rank 0. */
void clip_k_team_run(struct clip_ctx *c, void (*body)(struct clip_ctx *v, void *arg), void *arg);

/* out(T,N) = in(T,K) @ W^T + b with epilogue epi (STORE, RESIDUAL: out +=, ACT: activated into
 * a product input). in is a product input (f32, or bf16 in bf16 mode). */
void clip_k_linear(struct clip_ctx *c, void *out, const void *in, const struct clip_linear *l,
                   int T, enum clip_epi epi, enum clip_act act);
/* nn.LayerNorm over T rows of C; out is a product input when to_input, else f32. */
void clip_k_layernorm(struct clip_ctx *c, void *out, bool to_input, const float *in, const float *w,
                      const float *b, int T, int C, float eps);
/* x (T, C) += fc2(act(fc1(in))): the layer's MLP with its residual add; in is a product input
 * (T, C). In bf16 with w->mlp_parts, each worker runs its row chunk through the C-wide parts,
 * fc1 part p then fc2 part p accumulating into x, the activations staying in cache. */
void clip_k_mlp(struct clip_ctx *c, float *x, const void *in, const struct clip_layer *w, int T,
                enum clip_act act);
/* Self-attention core on fused (B*L, 3C) q|k|v into out (B*L, C), a product input. */
void clip_k_attention(struct clip_ctx *c, void *out, const float *qkv, int B, int L, int C, int H,
                      bool causal);
/* One pre-LN CLIPEncoderLayer (SiglipEncoderLayer is the same) on x (B*L, C) in place. */
void clip_k_encoder_layer(struct clip_ctx *c, const struct clip_layer *w,
                          const struct clip_tower_config *tc, float *x, int B, int L, bool causal);
/* pixels (B, 3, S, S) -> (B*G*G, 3*p*p) product input, rows ordered like the conv kernel. */
void clip_k_unfold_patches(void *patches, bool bf16, const float *pixels, int B, int S, int p,
                           int G);
void clip_k_store_input(void *dst, size_t at, const float *v, size_t n, bool bf16);
void clip_k_act(float *x, size_t n, enum clip_act act);
/* o[i] += b[i] (b may be NULL), then the activation when act: the AVX-512 or AVX2 body where
 * the CPU has one (not for the erf gelu), else the C loops. */
void clip_k_bias_act(float *o, const float *b, size_t n, bool act, enum clip_act kind);
void clip_k_l2_normalize(float *x, int D);

/* The status of the passes since the last call: SB_OK, or why a bf16 product failed (the
 * workers cannot report it themselves); clears the failure. */
int clip_pass_status(struct clip_ctx *c, struct sb_err *err);

/* ------------------------------------------------------------------------------------------ */
/* A vision tower inside another model's files: the captioning models of vlm.c run their CLIP
 * or SigLIP tower through this engine (clip_load.c, clip.c). */

/* Loads the vision tower cfg describes (family CLIP or SIGLIP, vision tower config, image_size,
 * patch_size; cfg->vision.layers is how many encoder layers to load and run, which may be fewer
 * than the checkpoint has) from the tensors "<prefix>.embeddings.*", "<prefix>.pre_layrnorm.*"
 * (CLIP), "<prefix>.encoder.layers.<i>.*" and, when post_ln, "<prefix>.post_layernorm.*" of w.
 * w is borrowed: it must outlive *out, which clip_model_free() frees without closing w. No
 * head, projection or tokenizer; precision as clip_load_params. In bf16 the products keep only
 * their packed copy (their clip_linear.w is NULL: the f32 weights are dropped after packing).
 * Errors as clip_model_load(). */
int clip_vision_tower_load(const struct st_weights *w, const char *prefix,
                           const struct clip_config *cfg, bool post_ln,
                           enum clip_precision precision, struct clip_model **out,
                           struct sb_err *err);
/* A linear of the caller's (f32 weights that outlive m) made ready for clip_k_linear() on m's
 * ctxs: packed into m's bf16 backend in bf16 mode, nothing to do in fp32. */
int clip_model_pack_linear(struct clip_model *m, struct clip_linear *l, struct sb_err *err);
/* The vision tower's token states for B images into c->x: CLIP's hidden_states[layers]
 * (embeddings with the class token first, pre_layrnorm, the layers), (B*(N+1), C); SigLIP's
 * (embeddings, the layers, then post_layernorm when post_ln), (B*N, C). */
int clip_vision_states(struct clip_ctx *c, const float *pixels, int B, bool post_ln,
                       struct sb_err *err);

/* fp32 products of at most CLIP_F32_MAX_ROWS rows on weights packed into column panels
 * (src/model/gemm_f32.c). clip_f32_panel: the panel width for this CPU (64 with AVX-512, 16
 * with AVX2 + FMA), 0 when there is no kernel. out(M, n0..n1) = epilogue(in @ W^T + b), f32 in
 * and out (STORE, ACT or RESIDUAL), n0 a multiple of np; rows and columns are independent. */
#define CLIP_F32_MAX_ROWS 128
int clip_f32_panel(void);
size_t clip_f32_packed_size(int K, int N, int np); /* floats */
void clip_f32_pack(float *dst, const float *w, size_t ld, int K, int N, int np);
void clip_f32_gemm(float *out, size_t ldo, const float *in, size_t ldi, int M, const float *wp,
                   int np, const float *bias, int K, int N, int n0, int n1, enum clip_epi epi,
                   enum clip_act act);

/* AVX2 + FMA (src/model/clip_avx2.c): clip_avx512_bias_act for CPUs without AVX-512. */
bool clip_avx2(void); /* the CPU has AVX2 and FMA (and SHOEBOX_MAX_ISA allows them) */
bool clip_avx2_bias_act(float *o, const float *b, size_t n, bool act, enum clip_act kind);

/* AVX-512 bodies of the kernels above (src/model/clip_avx512.c), for clip.c only. */
bool clip_avx512(void); /* the CPU has AVX512F, BW and VL */
void clip_avx512_to_bf16(uint16_t *o, const float *v, size_t n);
/* o[i] += b[i] (b may be NULL), then the activation when act; false (nothing done) for
 * CLIP_ACT_GELU's erf. */
bool clip_avx512_bias_act(float *o, const float *b, size_t n, bool act, enum clip_act kind);
/* A product's epilogue (clip_epi) on rows x nc f32 sums acc (rows lda apart) plus bias (nc, or
 * NULL) into out (rows ldo apart); false (nothing done) for CLIP_EPI_ACT with CLIP_ACT_GELU. */
bool clip_avx512_epilogue(const float *acc, size_t lda, int rows, int nc, const float *bias,
                          void *out, size_t ldo, enum clip_epi epi, enum clip_act act);
void clip_avx512_layernorm_row(void *out, bool bf16, const float *x, const float *w, const float *b,
                               int C, float eps);
size_t clip_avx512_attention_scratch(size_t L, size_t E); /* floats, for either head kernel */
bool clip_avx512_bf16(void);                              /* and AVX512-BF16 (vdpbf16ps) */
bool clip_amx(void); /* and AMX-BF16 with the OS's permission to use the tiles */
void clip_amx_attention_head_bf16(float *scratch, const uint16_t *q, const uint16_t *k,
                                  const uint16_t *v, size_t ld, int L, int E, float scale,
                                  bool causal, uint16_t *out, size_t ldo);
void clip_avx512_attention_head_bf16(float *scratch, const uint16_t *q, const uint16_t *k,
                                     const uint16_t *v, size_t ld, int L, int E, float scale,
                                     bool causal, uint16_t *out, size_t ldo);
void clip_avx512_attention_head(float *scratch, const float *q, const float *k, const float *v,
                                size_t ld, int L, int E, float scale, bool causal, void *out,
                                size_t ldo, bool bf16);

/* ------------------------------------------------------------------------------------------ */
/* SigLIP (src/model/siglip.c, loading in clip_load.c) */

/* SiglipVisionTransformer + head into out (B, D), L2-normalised. */
int siglip_embed_images(struct clip_ctx *c, const float *pixels, int B, float *out,
                        struct sb_err *err);
/* SiglipTextTransformer + head on ids padded to max_pos; out (D), L2-normalised. */
void siglip_text_forward(struct clip_ctx *c, const int32_t *ids, int n, float *out);
/* SiglipVisionEmbeddings, the model's encoder layers and, when post_ln, post_layernorm on
 * pixels (B, 3, S, S) into c->x (B*N, C). */
void siglip_vision_states(struct clip_ctx *c, const float *pixels, int B, bool post_ln);
/* Row `row` of a 2-D F32/F16/BF16 tensor of C columns as f32 into dst. */
void clip_tensor_row_f32(const struct st_tensor *t, size_t row, size_t C, float *dst);

#endif
