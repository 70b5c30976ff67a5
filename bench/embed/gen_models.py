#!/usr/bin/python3
"""gen_models.py - full-size random CLIP models (ViT-B/32 and ViT-B/16, both towers at their
real sizes, real CLIP vocabulary) and SigLIP B/16-224 / SigLIP 2 B/16-224 (768/12/12 towers,
patch 16, image 224, MAP head, 64 text positions; vocabulary 32000 / 256000) in the exact
Hugging Face layout, for bench/embed/run.sh.
Not committed: usage /usr/bin/python3 bench/embed/gen_models.py OUTDIR [NAME...]  (writes
OUTDIR/b32, OUTDIR/b16, OUTDIR/siglip, OUTDIR/siglip2). Reuses tools/gen_clip.py's and
tools/gen_siglip.py's writers; the weights are seeded, so reruns are equal. SigLIP gets the
test fixture's spiece.model (ids < 1000 are valid in 32000); SigLIP 2 a synthetic Gemma-layout
tokenizer.json of 256000 pieces (tools/gen_gemma_tok.py's layout, random merges), so loading
cost is the real one."""
import json
import os
import random
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import gen_clip  # noqa: E402
import gen_gemma_tok  # noqa: E402
import gen_siglip  # noqa: E402

TEXT = dict(hidden=512, inter=2048, layers=12, heads=8, act="quick_gelu", pos=77)
SPECS = [
    dict(name="b32", seed=11, dtype="F32", vocab=49408, text=TEXT,
         vision=dict(hidden=768, inter=3072, layers=12, heads=12, act="quick_gelu", image=224,
                     patch=32), proj=512),
    dict(name="b16", seed=12, dtype="F32", vocab=49408, text=TEXT,
         vision=dict(hidden=768, inter=3072, layers=12, heads=12, act="quick_gelu", image=224,
                     patch=16), proj=512),
]
SIG_TOWER = dict(hidden=768, inter=3072, layers=12, heads=12, act="gelu_pytorch_tanh")
SIGLIP_SPECS = [
    dict(name="siglip", seed=21, dtype="F32", vocab=32000, text=dict(SIG_TOWER, pos=64),
         vision=dict(SIG_TOWER, image=224, patch=16)),
    dict(name="siglip2", seed=22, dtype="F32", vocab=256000, text=dict(SIG_TOWER, pos=64),
         vision=dict(SIG_TOWER, image=224, patch=16)),
]


def synth_gemma_tokenizer(d, n_vocab, n_merges=514906):
    """Gemma's tokenizer.json layout with n_vocab pieces: the tiny fixture's specials and
    bytes, then pieces made by merging random pairs of earlier ones (each one merge)."""
    tj, cfg, stm = gen_gemma_tok.build(False)
    vocab = {t: i for t, i in tj["model"]["vocab"].items() if i < 300}  # specials, bytes
    rng = random.Random(5)
    letters = "abcdefghijklmnopqrstuvwxyz" + gen_gemma_tok.MS + ".,!?'0123456789"
    pieces = list(letters)
    for ch in pieces:
        vocab.setdefault(ch, len(vocab))
    merges = []
    while len(vocab) < n_vocab:
        a = pieces[int(len(pieces) * rng.random() ** 3)]  # mostly early (short) pieces
        b = pieces[rng.randrange(min(len(pieces), 2000))]
        if a + b in vocab or len(a + b) > 16:
            continue
        vocab[a + b] = len(vocab)
        merges.append("%s %s" % (a, b))
        pieces.append(a + b)
    # Gemma's tokenizer.json has ~2 merges per piece (every split of a piece into two pieces
    # that SentencePiece could merge): add the other splits, up to n_merges in all
    seen = set(merges)
    for p in pieces:
        for k in range(1, len(p)):
            if len(merges) >= n_merges:
                break
            m = "%s %s" % (p[:k], p[k:])
            if p[:k] in vocab and p[k:] in vocab and m not in seen:
                seen.add(m)
                merges.append(m)
    tj["model"]["vocab"] = vocab
    tj["model"]["merges"] = merges
    with open(os.path.join(d, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tj, f, ensure_ascii=False)
    for fn, obj in (("tokenizer_config.json", cfg), ("special_tokens_map.json", stm)):
        with open(os.path.join(d, fn), "w") as f:
            json.dump(obj, f, indent=2)


def write_siglip(out, spec):
    gen_siglip.OUT = out
    gen_siglip.write_model(spec)
    d = os.path.join(out, spec["name"])
    if spec["vocab"] == 32000:
        shutil.copy(os.path.join(gen_siglip.SPDIR, "spiece.model"), d)
        with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
            json.dump({"do_lower_case": True, "model_max_length": 64, "eos_token": "</s>",
                       "pad_token": "</s>", "unk_token": "<unk>",
                       "tokenizer_class": "SiglipTokenizer"}, f, indent=2)
    else:
        synth_gemma_tokenizer(d, spec["vocab"])


def main():
    out = sys.argv[1]
    names = sys.argv[2:]
    gen_clip.OUT = out
    for spec in SIGLIP_SPECS:
        d = os.path.join(out, spec["name"])
        if (names and spec["name"] not in names) or \
                os.path.exists(os.path.join(d, "model.safetensors")):
            continue
        write_siglip(out, spec)
    for spec in SPECS:
        d = os.path.join(out, spec["name"])
        if (names and spec["name"] not in names) or \
                os.path.exists(os.path.join(d, "model.safetensors")):
            continue
        gen_clip.write_model(spec)
        for fn in ("vocab.json", "merges.txt", "tokenizer_config.json",
                   "special_tokens_map.json"):
            src = os.path.join(gen_clip.TOKDIR, fn)
            if os.path.exists(src):
                shutil.copy(src, os.path.join(d, fn))
    return 0


if __name__ == "__main__":
    sys.exit(main())
