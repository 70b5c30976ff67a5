#!/usr/bin/python3
"""gen_bench_lm.py OUT_DIR [F32|F16|BF16] - a random model shaped like SmolLM2-135M (the
SmolVLM-256M decoder: hidden 576, 30 layers, 9 heads, 3 kv heads, intermediate 1536, vocab
49280, tied embeddings) in the LlamaForCausalLM layout, for bench/caption/run.sh."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
import gen_lm  # noqa: E402

out = sys.argv[1]
dtype = sys.argv[2] if len(sys.argv) > 2 else "BF16"
spec = dict(name="bench", seed=1, arch="llama", dtype=dtype, tok=None, vocab=49280, hidden=576,
            inter=1536, layers=30, heads=9, kv=3, tie=True, theta=100000.0, eps=1e-5,
            max_pos=8192)
os.makedirs(out, exist_ok=True)
cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
       "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
       "num_attention_heads": 9, "num_key_value_heads": 3, "max_position_embeddings": 8192,
       "rms_norm_eps": 1e-5, "rope_theta": 100000.0, "tie_word_embeddings": True,
       "vocab_size": 49280, "bos_token_id": 1, "eos_token_id": 2,
       "torch_dtype": {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}[dtype]}
with open(os.path.join(out, "config.json"), "w") as f:
    json.dump(cfg, f, indent=2)
gen_lm.write_safetensors(os.path.join(out, "model.safetensors"), gen_lm.make_model(spec, 49280),
                         dtype)
print("wrote", out)
