#!/usr/bin/python3
"""gen_models.py - full-size random CLIP models (ViT-B/32 and ViT-B/16, both towers at their
real sizes, real CLIP vocabulary) in the exact Hugging Face layout, for bench/embed/run.sh.
Not committed: usage /usr/bin/python3 bench/embed/gen_models.py OUTDIR  (writes OUTDIR/b32,
OUTDIR/b16). Reuses tools/gen_clip.py's writer; the weights are seeded, so reruns are equal."""
import os
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import gen_clip  # noqa: E402

TEXT = dict(hidden=512, inter=2048, layers=12, heads=8, act="quick_gelu", pos=77)
SPECS = [
    dict(name="b32", seed=11, dtype="F32", vocab=49408, text=TEXT,
         vision=dict(hidden=768, inter=3072, layers=12, heads=12, act="quick_gelu", image=224,
                     patch=32), proj=512),
    dict(name="b16", seed=12, dtype="F32", vocab=49408, text=TEXT,
         vision=dict(hidden=768, inter=3072, layers=12, heads=12, act="quick_gelu", image=224,
                     patch=16), proj=512),
]


def main():
    out = sys.argv[1]
    gen_clip.OUT = out
    for spec in SPECS:
        d = os.path.join(out, spec["name"])
        if os.path.exists(os.path.join(d, "model.safetensors")):
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
