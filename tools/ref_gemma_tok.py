#!/usr/bin/python3
"""ref_gemma_tok.py - expected ids for the Gemma-layout tokenizers of tools/gen_gemma_tok.py
(SigLIP 2's GemmaTokenizerFast), from a Python re-implementation of huggingface/tokenizers'
pipeline for exactly this layout, written from the tokenizers docs and Rust sources' semantics
and not from shoebox's C:
  AddedVocabulary     added tokens (normalized false) split out of the raw text, leftmost
                      first, longest at a position
  normalizers         Lowercase (Rust char::to_lowercase, per character: no final-sigma rule)
                      then Replace(" ", "▁"); no Prepend
  pre-tokenizer       none, or Split(" ", MergedWithPrevious) (nothing left to split)
  BPE                 characters of the piece, a character not in the vocabulary becomes its
                      <0xXX> byte tokens (byte_fallback) or <unk> (fused); the lowest-ranked
                      adjacent pair merges first, leftmost on ties, until none applies
  TemplateProcessing  "$A <eos>"
  decoders            Replace("▁", " "), ByteFallback (runs of <0xXX> as UTF-8), Fuse
GemmaTok(d, lower=True, max_len=64).siglip2(text) gives what Siglip2Processor feeds the model
(truncation to max_len keeping <eos>; padding is the caller's: <pad> to max_len).
Writes tests/data/siglip/{gemma_tok,gemma_lower}/tok_cases.json.
Run: /usr/bin/python3 tools/ref_gemma_tok.py (after gen_gemma_tok.py).
"""
import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIGDIR = os.path.join(ROOT, "tests", "data", "siglip")
MS = "\u2581"


class GemmaTok:
    def __init__(self, d, lower=None, max_len=64):
        with open(os.path.join(d, "tokenizer.json"), encoding="utf-8") as f:
            tj = json.load(f)
        m = tj["model"]
        assert m["type"] == "BPE" and m["byte_fallback"] and m["fuse_unk"]
        self.vocab = m["vocab"]
        self.unk = self.vocab[m["unk_token"]]
        self.rank = {}
        for r, mg in enumerate(m["merges"]):
            a, b = mg.split(" ") if isinstance(mg, str) else mg
            self.rank.setdefault((a, b), r)
        self.added = {a["content"]: a["id"] for a in tj["added_tokens"]}
        self.special = {a["id"] for a in tj["added_tokens"] if a["special"]}
        self.id2tok = {i: t for t, i in self.vocab.items()}
        self.id2tok.update({i: c for c, i in self.added.items()})
        n = tj["normalizer"]
        norms = n["normalizers"] if n["type"] == "Sequence" else [n]
        self.lower = any(x["type"] == "Lowercase" for x in norms) if lower is None else lower
        assert norms[-1] == {"type": "Replace", "pattern": {"String": " "}, "content": MS}
        pp = tj["post_processor"]["single"]
        self.post = [tj["post_processor"]["special_tokens"][e["SpecialToken"]["id"]]["ids"][0]
                     for e in pp if "SpecialToken" in e]
        self.max_len = max_len
        self.pad = self.vocab["<pad>"]

    def _segments(self, text):
        """[str | int]: raw text between added tokens, and the added tokens' ids."""
        out, start, i = [], 0, 0
        by_len = sorted(self.added, key=len, reverse=True)
        while i < len(text):
            hit = next((a for a in by_len if text.startswith(a, i)), None)
            if hit is None:
                i += 1
                continue
            out.append(text[start:i])
            out.append(self.added[hit])
            i += len(hit)
            start = i
        out.append(text[start:])
        return [s for s in out if s != ""]

    def _bpe(self, piece):
        syms = []
        for ch in piece:
            if ch in self.vocab:
                syms.append(ch)
            else:
                syms.extend("<0x%02X>" % b for b in ch.encode("utf-8"))
        while len(syms) > 1:
            best = min(range(len(syms) - 1),
                       key=lambda i: (self.rank.get((syms[i], syms[i + 1]), 1 << 62), i))
            if (syms[best], syms[best + 1]) not in self.rank:
                break
            syms[best:best + 2] = [syms[best] + syms[best + 1]]
        return [self.vocab[s] for s in syms]

    def encode(self, text, add_special):
        ids = []
        for seg in self._segments(text):
            if isinstance(seg, int):
                ids.append(seg)
                continue
            if self.lower:
                seg = "".join(c.lower() for c in seg)
            ids.extend(self._bpe(seg.replace(" ", MS)))
        return ids + (self.post if add_special else [])

    def siglip2(self, text):
        """truncation=True, max_length: the text's ids are cut, the <eos> stays."""
        ids = self.encode(text, False)
        return ids[:self.max_len - len(self.post)] + self.post

    def decode(self, ids, skip_special):
        out = bytearray()
        for i in ids:
            if skip_special and i in self.special:
                continue
            t = self.id2tok[i]
            mt = re.fullmatch(r"<0x([0-9A-F]{2})>", t)
            if mt:
                out.append(int(mt.group(1), 16))
            else:
                out.extend(t.replace(MS, " ").encode("utf-8"))
        return out.decode("utf-8", "replace")


TEXTS = [
    "a photo of a cat",
    "",
    " ",
    "A  Photo of a CAT!",
    "   leading and trailing   ",
    "The quick brown fox jumps over the lazy dog.",
    "zebra quiz jazz",
    "snow  covered   trees",
    "café crème naïve ÅNGSTRÖM Straße",
    "İstanbul ΟΔΥΣΣΕΥΣ",
    "日本語 and an emoji 🐱",
    "tabs\tand\nnewlines\n\nend",
    "<start_of_turn>user\nDescribe the photo.<end_of_turn>",
    "text<bos>more<eos><pad>",
    "<table><h1>Title</h1>",
    "<unused3> [@BOS@]x",
    "▁under▁score▁",
    "Numbers 2019, 42 and 1234567",
]


def main():
    for name in ("gemma_tok", "gemma_lower"):
        d = os.path.join(SIGDIR, name)
        t = GemmaTok(d)
        cases = []
        for text in TEXTS:
            for add in (False, True):
                ids = t.encode(text, add)
                cases.append({"text": text, "add_special": add, "ids": ids,
                              "decoded": t.decode(ids, False),
                              "decoded_skip": t.decode(ids, True)})
        with open(os.path.join(d, "tok_cases.json"), "w", encoding="utf-8") as f:
            json.dump(cases, f, ensure_ascii=False, indent=0)
            f.write("\n")
        print(name, len(cases), "cases, e.g.", cases[0]["ids"], cases[7]["ids"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
