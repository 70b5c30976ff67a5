#!/usr/bin/python3
"""gen_bench_moondream.py OUT_DIR - random weights in vikhyatk/moondream2's (2025-01-09) shapes
and layout: config.json with "config": {} (config.py's defaults: text 2048 x 24 layers, 32
heads, vocab 51200; vision 1152 x 27 layers, patch 14 at 378 px, proj 8192 -> 2048), one F16
model.safetensors with model.text.* / model.vision.* (1.86 B parameters, 3.7 GB). The
tokenizer is the small test one of tests/data/vlm/moondream (speed does not depend on it; its
"<|endoftext|>" is not id 0, so the GPT-2 era template ids apply, as in the real folder)."""
import json
import os
import shutil
import struct
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
shutil.copy(os.path.join(HERE, "..", "..", "tests", "data", "vlm", "moondream", "tokenizer.json"),
            out)
json.dump({"architectures": ["HfMoondream"], "config": {}, "model_type": "moondream1",
           "torch_dtype": "float16", "transformers_version": "4.44.0"},
          open(os.path.join(out, "config.json"), "w"), indent=2)
rng = np.random.default_rng(11)
S = []  # (name, shape, scale, offset): generated and written one at a time (3.7 GB)


def t(name, shape, scale=None, offset=0.0):
    S.append((name, shape, scale if scale is not None else 1.0 / np.sqrt(shape[-1]), offset))


def lin(name, n_out, n_in):
    t(name + ".weight", (n_out, n_in))
    t(name + ".bias", (n_out,), 0.02)


def ln(name, c):
    t(name + ".weight", (c,), 0.05, 1.0)
    t(name + ".bias", (c,), 0.05)


C, F, p, N = 1152, 4304, 14, 729
lin("model.vision.patch_emb", C, 3 * p * p)
t("model.vision.pos_emb", (1, N, C), 0.5)
for i in range(27):
    q = "model.vision.blocks.%d." % i
    ln(q + "ln1", C)
    lin(q + "attn.qkv", 3 * C, C)
    lin(q + "attn.proj", C, C)
    ln(q + "ln2", C)
    lin(q + "mlp.fc1", F, C)
    lin(q + "mlp.fc2", C, F)
ln("model.vision.post_ln", C)
lin("model.vision.proj_mlp.fc1", 8192, 2 * C)
lin("model.vision.proj_mlp.fc2", 2048, 8192)
Ct, V = 2048, 51200
t("model.text.wte", (V, Ct), 0.5)
for i in range(24):
    q = "model.text.blocks.%d." % i
    ln(q + "ln", Ct)
    lin(q + "attn.qkv", 3 * Ct, Ct)
    lin(q + "attn.proj", Ct, Ct)
    lin(q + "mlp.fc1", 4 * Ct, Ct)
    lin(q + "mlp.fc2", Ct, 4 * Ct)
ln("model.text.post_ln", Ct)
lin("model.text.lm_head", V, Ct)

header, off = {}, 0
for name, shape, _, _ in S:
    n = int(np.prod(shape)) * 2
    header[name] = {"dtype": "F16", "shape": list(shape), "data_offsets": [off, off + n]}
    off += n
header["__metadata__"] = {"format": "pt"}
h = json.dumps(header, separators=(",", ":")).encode()
h += b" " * ((8 - len(h) % 8) % 8)
with open(os.path.join(out, "model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(h)))
    f.write(h)
    for name, shape, scale, offset in S:
        a = rng.standard_normal(shape, dtype=np.float32) * np.float32(scale) + np.float32(offset)
        f.write(a.astype("<f2").tobytes())
print("wrote", out, sum(int(np.prod(s[1])) for s in S) / 1e6, "M parameters")
