#!/usr/bin/python3
"""gen_bench_vlm.py OUT_DIR - random weights in HuggingFaceTB/SmolVLM-256M-Instruct's shapes
and layout (Idefics3ForConditionalGeneration, BF16 like the real checkpoint): SigLIP tower
768 x 12 layers at 512 px / patch 16, pixel shuffle 4, SmolLM2-135M-shaped decoder (576 x 30
layers, 9 heads / 3 kv heads, vocab 49280, untied lm_head). The tokenizer and chat template are
the small test ones of tests/data/vlm/idefics3 (speed does not depend on them)."""
import json
import os
import shutil
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools"))
import gen_lm  # noqa: E402

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
src = os.path.join(HERE, "..", "..", "tests", "data", "vlm", "idefics3")
for f in ("tokenizer.json", "tokenizer_config.json"):
    shutil.copy(os.path.join(src, f), out)
tok = json.load(open(os.path.join(src, "tokenizer.json")))["model"]["vocab"]
cfg = json.load(open(os.path.join(src, "config.json")))
v = dict(cfg["vision_config"], hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
         num_attention_heads=12, image_size=512, patch_size=16)
t = dict(cfg["text_config"], hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
         num_attention_heads=9, num_key_value_heads=3, vocab_size=49280,
         max_position_embeddings=8192, tie_word_embeddings=False)
cfg.update(vision_config=v, text_config=t, scale_factor=4, torch_dtype="bfloat16")
json.dump(cfg, open(os.path.join(out, "config.json"), "w"), indent=2)
pre = json.load(open(os.path.join(src, "preprocessor_config.json")))
pre.update(size={"longest_edge": 2048}, max_image_size={"longest_edge": 512})
json.dump(pre, open(os.path.join(out, "preprocessor_config.json"), "w"), indent=2)

rng = np.random.default_rng(7)
T = []


def rnd(*shape, scale=None):
    a = rng.standard_normal(shape, dtype=np.float32)
    return a * np.float32(scale if scale is not None else 1.0 / np.sqrt(shape[-1]))


def lin(name, n_out, n_in, bias=True):
    T.append((name + ".weight", rnd(n_out, n_in)))
    if bias:
        T.append((name + ".bias", rnd(n_out, scale=0.02)))


def ln(name, c):
    T.append((name + ".weight", 1 + rnd(c, scale=0.05)))
    T.append((name + ".bias", rnd(c, scale=0.05)))


C, F, p = 768, 3072, 16
vp = "model.vision_model."
T.append((vp + "embeddings.patch_embedding.weight", rnd(C, 3, p, p, scale=1 / np.sqrt(3 * p * p))))
T.append((vp + "embeddings.patch_embedding.bias", rnd(C, scale=0.02)))
T.append((vp + "embeddings.position_embedding.weight", rnd(1024, C, scale=0.5)))
for i in range(12):
    q = vp + "encoder.layers.%d." % i
    ln(q + "layer_norm1", C)
    for n in ("q_proj", "k_proj", "v_proj", "out_proj"):
        lin(q + "self_attn." + n, C, C)
    ln(q + "layer_norm2", C)
    lin(q + "mlp.fc1", F, C)
    lin(q + "mlp.fc2", C, F)
ln(vp + "post_layernorm", C)
lin("model.connector.modality_projection.proj", 576, C * 16, bias=False)
Ct, Ft, V = 576, 1536, 49280
e = rnd(V, Ct, scale=1.0)
e *= 0.5 * np.sqrt(Ct) / np.linalg.norm(e, axis=1, keepdims=True)
tp = "model.text_model."
T.append((tp + "embed_tokens.weight", e))
for i in range(30):
    q = tp + "layers.%d." % i
    T.append((q + "input_layernorm.weight", 1 + rnd(Ct, scale=0.1)))
    lin(q + "self_attn.q_proj", Ct, Ct, False)
    lin(q + "self_attn.k_proj", 192, Ct, False)
    lin(q + "self_attn.v_proj", 192, Ct, False)
    lin(q + "self_attn.o_proj", Ct, Ct, False)
    T.append((q + "post_attention_layernorm.weight", 1 + rnd(Ct, scale=0.1)))
    lin(q + "mlp.gate_proj", Ft, Ct, False)
    lin(q + "mlp.up_proj", Ft, Ct, False)
    lin(q + "mlp.down_proj", Ct, Ft, False)
T.append((tp + "norm.weight", 1 + rnd(Ct, scale=0.1)))
lin("lm_head", V, Ct, False)
gen_lm.write_safetensors(os.path.join(out, "model.safetensors"), T, "BF16")
print("wrote", out, sum(a.size for _, a in T) / 1e6, "M parameters")
