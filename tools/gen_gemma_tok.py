#!/usr/bin/python3
"""gen_gemma_tok.py - a tiny tokenizer in the exact layout of the Gemma tokenizer.json that
SigLIP 2 ships (google/siglip2-*: GemmaTokenizerFast saved with add_bos_token=False,
add_eos_token=True, as transformers' convert_siglip2_to_hf.py builds it), into
tests/data/siglip/gemma_tok/ (tokenizer.json, tokenizer_config.json, special_tokens_map.json),
and the same with transformers' Siglip2Tokenizer normalizer Sequence[Lowercase, Replace] and
Gemma 3's no-op Split(" ", MergedWithPrevious) pre-tokenizer into gemma_lower/.

The layout, as in Gemma's tokenizer.json: added tokens <pad>=0 <eos>=1 <bos>=2 <unk>=3
<mask>=4, [@BOS@], <unusedN>, <start_of_turn>, <end_of_turn> (special, normalized false) and
HTML tags (not special); normalizer Replace(" ", "▁") with no Prepend (the first word has no
"▁"); no pre-tokenizer; BPE with byte_fallback and fuse_unk over <0x00>..<0xFF> tokens,
characters and merges (as "a b" strings); TemplateProcessing appending <eos>; decoder
Replace("▁", " ") + ByteFallback + Fuse (no Strip). The vocabulary is ~600 pieces (Gemma's is
256000): plain BPE trained on a small corpus; 'z' and 'q' are left out so they fall back to bytes.

Run with Debian's python3: /usr/bin/python3 tools/gen_gemma_tok.py; then
tools/ref_gemma_tok.py writes the expected ids. Deterministic.
"""
import collections
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_lm import CORPUS, train_merges  # noqa: E402  (plain BPE training)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "data", "siglip")
MS = "\u2581"

EXTRA = """a photo of a cat. a photo of a dog. a picture of my family at the beach in summer.
two children playing football in the park, sunset over the mountains. birthday cake with
candles; black and white portrait. snow  covered   trees. Photos Of Cats And Dogs.
"""


def added(i, content, special=True):
    return {"id": i, "content": content, "single_word": False, "lstrip": False,
            "rstrip": False, "normalized": False, "special": special}


def build(lower):
    text = CORPUS + EXTRA
    if lower:
        text = text.lower()
    words = collections.Counter()
    for line in text.split("\n"):
        # SentencePiece-style: spaces become "▁" attached to the next word; runs of spaces
        # give "▁▁" pieces (Gemma has whitespace-run tokens)
        s = line.replace(" ", MS)
        cur = ""
        for ch in s:
            if ch == MS and cur and cur[-1] != MS:
                words[tuple(cur)] += 1
                cur = ""
            cur += ch
        if cur:
            words[tuple(cur)] += 1
    merges = train_merges(words, 300)
    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "[@BOS@]"]
    specials += ["<unused%d>" % i for i in range(6)] + ["<start_of_turn>", "<end_of_turn>"]
    html = ["<table>", "<h1>", "</h1>"]
    vocab = {}
    toks = []
    for s in specials:
        toks.append(added(len(vocab), s))
        vocab[s] = len(vocab)
    for s in html:
        toks.append(added(len(vocab), s, special=False))
        vocab[s] = len(vocab)
    for b in range(256):
        vocab["<0x%02X>" % b] = len(vocab)
    for ch in sorted({c for w in words for c in w} | {"\n", "\t"}):
        if ch not in "zqZQ":
            vocab[ch] = len(vocab)
    for a, b in merges:
        if a + b not in vocab and not set("zqZQ") & set(a + b):
            vocab[a + b] = len(vocab)
    merges = [(a, b) for a, b in merges if a in vocab and b in vocab and a + b in vocab]
    repl = {"type": "Replace", "pattern": {"String": " "}, "content": MS}
    norm = {"type": "Sequence", "normalizers": [{"type": "Lowercase"}, repl]} if lower else repl
    pre = ({"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithPrevious",
            "invert": False} if lower else None)
    eos = {"SpecialToken": {"id": "<eos>", "type_id": 0}}
    tj = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": toks,
        "normalizer": norm, "pre_tokenizer": pre,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"Sequence": {"id": "A", "type_id": 0}}, eos],
            "pair": [{"Sequence": {"id": "A", "type_id": 0}}, eos,
                     {"Sequence": {"id": "B", "type_id": 1}},
                     {"SpecialToken": {"id": "<eos>", "type_id": 1}}],
            "special_tokens": {"<eos>": {"id": "<eos>", "ids": [1], "tokens": ["<eos>"]}}},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": MS}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>",
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                  "vocab": vocab, "merges": ["%s %s" % m for m in merges]},
    }
    cfg = {"add_bos_token": False, "add_eos_token": True,
           "added_tokens_decoder": {str(t["id"]): {k: v for k, v in t.items() if k != "id"}
                                    for t in toks},
           "bos_token": "<bos>", "clean_up_tokenization_spaces": False, "eos_token": "<eos>",
           "mask_token": "<mask>", "model_input_names": ["input_ids"],
           "model_max_length": 1000000000000000019884624838656, "pad_token": "<pad>",
           "padding_side": "right", "processor_class": "Siglip2Processor",
           "sp_model_kwargs": {}, "spaces_between_special_tokens": False,
           "tokenizer_class": "GemmaTokenizer", "unk_token": "<unk>",
           "use_default_system_prompt": False}
    stm = {"bos_token": "<bos>", "eos_token": "<eos>", "mask_token": "<mask>",
           "pad_token": "<pad>", "unk_token": "<unk>"}
    return tj, cfg, stm


def write(d, lower):
    os.makedirs(d, exist_ok=True)
    tj, cfg, stm = build(lower)
    for fn, obj, ind in (("tokenizer.json", tj, 2), ("tokenizer_config.json", cfg, 2),
                         ("special_tokens_map.json", stm, 2)):
        with open(os.path.join(d, fn), "w", encoding="utf-8") as f:
            json.dump(obj, f, ensure_ascii=False, indent=ind)
            f.write("\n")
    print("wrote", d, "vocab", len(tj["model"]["vocab"]), "merges", len(tj["model"]["merges"]))


def main():
    write(os.path.join(OUT, "gemma_tok"), False)
    write(os.path.join(OUT, "gemma_lower"), True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
