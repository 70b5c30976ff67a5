#!/usr/bin/python3
"""ref_tags.py - reference outputs for shoebox's zero-shot auto-tags (src/interop/tags.c).

Written from CLIP's zero-shot recipe (Radford et al. 2021, section 3.1.4, and the
openai/CLIP notebook "Prompt_Engineering_for_ImageNet": zeroshot_classifier averages the
L2-normalised embeddings of every prompt of a class and renormalises; logits = 100 * image @
classifier; softmax), then shoebox's documented selection: keep probability >= min_prob *
factor, best first, at most top_k. Text embeddings come from tools/ref_clip.py's torch float64
forward of tests/data/models/tiny_b32; image embeddings are ref.json's pixel embeddings.
Writes tests/data/tags/tiny_b32_ref.json. Run: /usr/bin/python3 tools/ref_tags.py
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ref_clip  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "tests", "data", "models", "tiny_b32")
OUT = os.path.join(ROOT, "tests", "data", "tags", "tiny_b32_ref.json")

TEMPLATES = ["a photo of a {}.", "a close-up photo of a {}.", "a photo of the {}.",
             "a cropped photo of a {}.", "a good photo of a {}."]

# the vocabulary syntax of src/interop/tags_vocab.txt: TAG [@F] [| PROMPT]...
VOCAB = [
    "# a comment",
    "dog",
    "cat",
    "beach",
    "mountain",
    "birthday cake",
    "car",
    "",
    "black and white | a black and white photo. | a monochrome photo.",
    "screenshot @2 | a screenshot. | a screenshot of a phone screen.",
    "receipt @1.5 | a receipt.",
    "snow",
    "sunset",
]

PARAMS = [  # (logit_scale, min_prob, top_k)
    (100.0, 0.05, 6),
    (100.0, 0.2, 2),
    (10.0, 0.09, 4),
]


def parse(line):
    head, *prompts = [p.strip() for p in line.split("|")]
    factor = 1.0
    if "@" in head:
        head, f = head.split("@")
        head, factor = head.strip(), float(f)
    if not prompts:
        prompts = [t.replace("{}", head) for t in TEMPLATES]
    return head, factor, prompts


def main():
    tc, vc, proj = ref_clip.load_config(MODEL)
    W = ref_clip.load_weights(MODEL)
    tok = ref_clip.Tokenizer(MODEL)
    P = tc["max_position_embeddings"]
    concepts = [parse(l) for l in VOCAB if l.strip() and not l.strip().startswith("#")]
    emb = []
    for tag, factor, prompts in concepts:
        e = np.stack([np.asarray(ref_clip.text_features(W, tc, tok.encode(p, P)), np.float64)
                      for p in prompts])
        e /= np.linalg.norm(e, axis=1, keepdims=True)  # each prompt's embedding, normalised
        m = e.mean(axis=0)
        emb.append(m / np.linalg.norm(m))
    emb = np.stack(emb)
    with open(os.path.join(MODEL, "ref.json")) as f:
        images = np.asarray(json.load(f)["pixels"]["embeddings"], np.float64)
    cases = []
    for scale, min_prob, top_k in PARAMS:
        for i, x in enumerate(images):
            logits = scale * (emb @ x)
            p = np.exp(logits - logits.max())
            p /= p.sum()
            keep = [j for j in np.argsort(-p, kind="stable")
                    if p[j] >= min_prob * concepts[j][1]][:top_k]
            cases.append({"logit_scale": scale, "min_prob": min_prob, "top_k": top_k,
                          "image": i, "probs": [round(float(v), 9) for v in p],
                          "picked": [int(j) for j in keep]})
    ref = {"vocab": VOCAB, "templates": TEMPLATES,
           "tags": [c[0] for c in concepts],
           "embeddings": [[round(float(v), 9) for v in e] for e in emb],
           "images": [[float(v) for v in x] for x in images], "cases": cases}
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(ref, f, separators=(",", ":"))
        f.write("\n")
    print("wrote", OUT, len(concepts), "concepts,", len(cases), "cases")


if __name__ == "__main__":
    main()
