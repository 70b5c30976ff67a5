/* internal.h - private parts of the model module: safetensors files, CLIP configuration
 * parsing and the clip_model struct. Parsers take untrusted bytes and never crash; they are
 * exposed here for the fuzz targets (fuzz/fuzz_safetensors.c, fuzz/fuzz_config.c). */
#ifndef SHOEBOX_MODEL_INTERNAL_H
#define SHOEBOX_MODEL_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shoebox/model.h"

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
    struct clip_tower_config text, vision;
    int vocab_size;   /* V */
    int max_pos;      /* P: max_position_embeddings */
    int eos_token_id; /* 2 in legacy configs: pool at argmax(ids) */
    int image_size;   /* S */
    int patch_size;   /* p */
    int num_channels; /* must be 3 */
    int proj_dim;     /* D: projection_dim (top level) */
    float logit_scale_init;
    char name[64]; /* last component of _name_or_path, or "clip" */
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
    int n_out, n_in;
};

struct clip_layer {             /* one CLIPEncoderLayer */
    const float *ln1_w, *ln1_b; /* (C) layer_norm1 */
    struct clip_linear qkv;     /* (3C, C): q_proj, k_proj, v_proj fused at load */
    struct clip_linear out;     /* (C, C) out_proj */
    const float *ln2_w, *ln2_b; /* (C) layer_norm2 */
    struct clip_linear fc1;     /* (F, C) */
    struct clip_linear fc2;     /* (C, F) */
};

struct clip_text_weights {
    const float *tok_emb; /* (V, C) token_embedding */
    const float *pos_emb; /* (P, C) position_embedding */
    struct clip_layer *layers;
    const float *final_ln_w, *final_ln_b; /* (C) */
    struct clip_linear proj;              /* (D, C) text_projection, no bias */
};

struct clip_vision_weights {
    struct clip_linear patch;         /* (C, 3*p*p) patch_embedding conv as a matrix, no bias */
    const float *class_emb;           /* (C) */
    const float *pos_emb;             /* (N+1, C) */
    const float *pre_ln_w, *pre_ln_b; /* (C) pre_layrnorm (sic, HF's name) */
    struct clip_layer *layers;
    const float *post_ln_w, *post_ln_b; /* (C) */
    struct clip_linear proj;            /* (D, C) visual_projection, no bias */
};

struct clip_mapping {
    void *addr;
    size_t len;
};

struct clip_tokenizer;
struct clip_bf16;

struct clip_model {
    struct clip_config cfg;
    struct clip_preproc_config pre;
    int towers;
    enum clip_precision precision; /* resolved: FP32 or BF16, never AUTO */
    struct clip_bf16 *bf16;        /* the bf16 backend's engine and packed weights, or NULL */
    struct clip_text_weights text;
    struct clip_vision_weights vision;
    /* the safetensors files (one, or the shards of an index), mapped read-only */
    struct st_file *files;
    struct clip_mapping *maps;
    size_t n_files;
    /* memory the model owns: converted and fused tensors, layer arrays */
    void **owned;
    size_t n_owned, cap_owned;
    struct clip_tokenizer *tok; /* NULL when the folder has no tokenizer files */
    char id[96];
};

/* ------------------------------------------------------------------------------------------ */
/* bf16 matrix products: src/model/linear_dnnl.c (oneDNN on AMX / AVX512-BF16), or
 * src/model/linear_nodnnl.c where oneDNN is absent (every function there fails or says no; the
 * loader then computes in fp32). Weights are converted once at load into oneDNN's packed layout
 * for this CPU. Activations enter as bf16 (row-major (M, K)), the products accumulate in fp32,
 * and the output is f32, or bf16 when it only feeds another product (CLIP_EPI_ACT: fc1 +
 * activation feeding fc2). clip.c shares a product out over pool workers by row chunks.
 *
 * Threads: a struct clip_bf16 is read-only after packing. A struct clip_bf16_ctx belongs to one
 * clip_ctx; clip_bf16_op() runs on the ctx's calling thread, clip_bf16_run() on any worker
 * (each worker index has its own stream, memory objects and scratchpad). With more than one
 * worker each call is single-threaded; with one, oneDNN uses its own (OpenMP) threads. */

enum clip_epi {
    CLIP_EPI_STORE,    /* out (f32) = in @ W^T + b */
    CLIP_EPI_ACT,      /* out (bf16) = act(in @ W^T + b) */
    CLIP_EPI_RESIDUAL, /* out (f32) += in @ W^T + b */
};

struct clip_bf16;
struct clip_bf16_ctx;
struct clip_bf16_op; /* one primitive: (row bucket, K, N, epilogue) */

bool clip_bf16_compiled(void); /* true when built with oneDNN */
/* true when the CPU multiplies bf16 natively (AMX-BF16 with the OS's permission to use the
 * tile data, or AVX512-BF16): CLIP_PRECISION_AUTO picks bf16 exactly then (and when compiled). */
bool clip_cpu_native_bf16(void);
int clip_bf16_new(struct clip_bf16 **out, struct sb_err *err);
void clip_bf16_free(struct clip_bf16 *b); /* NULL is a no-op; frees every packed linear */
/* Packs l->w into bf16 owned by b and sets l->packed. SB_ENOMEM, SB_EINTERNAL. */
int clip_bf16_pack(struct clip_bf16 *b, struct clip_linear *l, struct sb_err *err);
int clip_bf16_ctx_new(struct clip_bf16 *b, int n_workers, struct clip_bf16_ctx **out,
                      struct sb_err *err);
void clip_bf16_ctx_free(struct clip_bf16_ctx *c); /* NULL is a no-op */
/* Rows a product of M rows reads and writes: M rounded up to a bucket of 16 when M <= 128 (so
 * a handful of primitives serve every text length), else M. Buffers must have room for them,
 * and a chunk that is not the last of a product must be a multiple of 16 rows. */
int clip_bf16_rows(int M);
/* The primitive for (M rows, l's shape, epi, act), created on first use and cached in c (the
 * first pass at a new size JIT-compiles kernels; later passes allocate nothing). SB_ENOMEM,
 * SB_EINTERNAL, SB_ETOOBIG. Calling thread only. */
int clip_bf16_op(struct clip_bf16_ctx *c, const struct clip_linear *l, int M, enum clip_epi epi,
                 enum clip_act act, const struct clip_bf16_op **out, struct sb_err *err);
/* Runs op (made for l, or a linear of the same shape) on worker `worker`: out is (M, n_out)
 * row-major (f32, or bf16 for CLIP_EPI_ACT), in is (M, n_in) bf16, both with room for
 * clip_bf16_rows(M) rows. Returns false if oneDNN failed. */
bool clip_bf16_run(struct clip_bf16_ctx *c, const struct clip_bf16_op *op,
                   const struct clip_linear *l, int worker, void *out, const uint16_t *in);

#endif
