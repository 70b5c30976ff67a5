#!/usr/bin/python3
"""torch_siglip.py - the PyTorch side of bench/embed/run.sh for SigLIP / SigLIP 2: the same
forward as tools/ref_siglip.py (written from transformers' modeling_siglip.py: patch conv with
bias, position embeddings, encoder, post_layernorm, attention-pooling head; text padded to 64,
last-token pooling, head), on the same weights, in float32 or bfloat16 (weights and
activations cast, as model.to(torch.bfloat16) does). Text is tokenized as shoebox does:
SiglipTokenizer over spiece.model, or the lower-cased Gemma tokenizer.json
(tools/ref_gemma_tok.py, pure Python: its time is part of the query latency, as the Rust
tokenizer's would be, though slower).
usage: torch_siglip.py MODEL_DIR fp32|bf16 images BATCH SECONDS  |  ... text - SECONDS
Prints "images B <images/s>" or "text <median ms> <p90 ms>" like bench_embed."""
import os
import sys
import time

import torch
import torch.nn.functional as Fn

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import ref_siglip  # noqa: E402
from ref_clip import load_weights  # noqa: E402
from ref_gemma_tok import GemmaTok  # noqa: E402


def image_features(W, vc, x):
    C, p = vc["hidden_size"], vc["patch_size"]
    e = Fn.conv2d(x, W["vision_model.embeddings.patch_embedding.weight"],
                  W["vision_model.embeddings.patch_embedding.bias"], stride=p)
    e = e.flatten(2).transpose(1, 2) + W["vision_model.embeddings.position_embedding.weight"]
    h = ref_siglip.encoder(e, W, "vision_model", vc)
    h = Fn.layer_norm(h, (C,), W["vision_model.post_layernorm.weight"],
                      W["vision_model.post_layernorm.bias"], vc["layer_norm_eps"])
    B, hp = h.shape[0], "vision_model.head."
    o, _ = Fn.multi_head_attention_forward(
        W[hp + "probe"].repeat(B, 1, 1).transpose(0, 1), h.transpose(0, 1), h.transpose(0, 1),
        C, vc["num_attention_heads"], W[hp + "attention.in_proj_weight"],
        W[hp + "attention.in_proj_bias"], None, None, False, 0.0,
        W[hp + "attention.out_proj.weight"], W[hp + "attention.out_proj.bias"],
        training=False, need_weights=False)
    r = o.transpose(0, 1)
    o = Fn.layer_norm(r, (C,), W[hp + "layernorm.weight"], W[hp + "layernorm.bias"],
                      vc["layer_norm_eps"])
    o = ref_siglip.act(o @ W[hp + "mlp.fc1.weight"].T + W[hp + "mlp.fc1.bias"], vc["hidden_act"])
    f = (r + o @ W[hp + "mlp.fc2.weight"].T + W[hp + "mlp.fc2.bias"])[:, 0]
    return f / f.norm(dim=-1, keepdim=True)


def text_features(W, tc, ids, pad):
    P, C = tc["max_position_embeddings"], tc["hidden_size"]
    t = torch.tensor(list(ids) + [pad] * (P - len(ids)))
    x = W["text_model.embeddings.token_embedding.weight"][t]
    x = x + W["text_model.embeddings.position_embedding.weight"][:P]
    x = ref_siglip.encoder(x[None], W, "text_model", tc)
    x = Fn.layer_norm(x[:, -1, :], (C,), W["text_model.final_layer_norm.weight"],
                      W["text_model.final_layer_norm.bias"], tc["layer_norm_eps"])
    f = x @ W["text_model.head.weight"].T + W["text_model.head.bias"]
    return f / f.norm(dim=-1, keepdim=True)


def main():
    d, prec, what, batch, seconds = sys.argv[1:6]
    seconds = float(seconds)
    torch.set_num_threads(int(os.environ.get("THREADS", "2")))
    dtype = torch.bfloat16 if prec == "bf16" else torch.float32
    W = {k: torch.as_tensor(v).to(dtype) for k, v in load_weights(d).items()
         if torch.as_tensor(v).is_floating_point()}
    tc, vc = ref_siglip.load_config(d)
    with torch.inference_mode():
        if what == "images":
            B, s = int(batch), vc["image_size"]
            px = torch.randn(B, 3, s, s).to(dtype)
            image_features(W, vc, px)
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                image_features(W, vc, px)
                n += 1
            print("images %d %.2f" % (B, B * n / (time.perf_counter() - t0)))
        else:
            P = tc["max_position_embeddings"]
            if os.path.exists(os.path.join(d, "spiece.model")):
                tok = ref_siglip.SiglipTok(os.path.join(d, "spiece.model"), max_len=P)
                encode, pad = tok.encode, tok.sp.piece_to_id("</s>")
            else:
                tok = GemmaTok(d, lower=True, max_len=P)
                encode, pad = tok.siglip2, tok.pad
            q = "a photo of a cat sitting on a red sofa"
            ms = []
            t0 = time.perf_counter()
            while len(ms) < 200 and (len(ms) < 20 or time.perf_counter() - t0 < seconds):
                t = time.perf_counter()
                text_features(W, tc, encode(q), pad)
                ms.append(1000 * (time.perf_counter() - t))
            ms.sort()
            print("text %.3f %.3f" % (ms[len(ms) // 2], ms[len(ms) * 9 // 10]))


if __name__ == "__main__":
    main()
