#!/usr/bin/python3
"""ref_lm.py - independent reference outputs for the decoder LM fixtures of tools/gen_lm.py.

Written from transformers' definitions, not from shoebox's C:
  configuration_llama.py / configuration_qwen2.py   defaults (head_dim = hidden / heads,
                          num_key_value_heads = heads, rope_theta 10000, rms_norm_eps 1e-6)
  modeling_rope_utils.py  default / linear / dynamic / llama3 inverse frequencies
  modeling_llama.py       LlamaRMSNorm, LlamaRotaryEmbedding + rotate_half, repeat_kv,
                          eager attention with the causal mask, LlamaMLP, tied lm_head
  modeling_qwen2.py       the same with q/k/v biases
  generation/logits_process.py   RepetitionPenaltyLogitsProcessor (gather, <0 * p, >0 / p)
  generation/utils.py     greedy search: argmax, stop after an eos id (kept in the output)
The forward runs in torch float64 with a KV cache (dynamic NTK rope recomputes the
frequencies per call from the call's last position, as _dynamic_frequency_update does).
Tokenizers: tokenizer.json pipelines re-implemented from the huggingface/tokenizers docs
(added tokens, NFC, Prepend/Replace normalizers, Digits, Split regex, ByteLevel, BPE merges
by rank, byte_fallback, fuse_unk, TemplateProcessing; decoders ByteLevel / Replace +
ByteFallback + Fuse + Strip). Regexes run on Python's re with \\p{L}, \\p{N} and \\s expanded
to explicit Unicode classes from unicodedata.
Writes tests/data/lm/<name>/ref.json and tests/data/lm/<name>/tok_cases.json.
Run: /usr/bin/python3 tools/ref_lm.py (after gen_lm.py).
"""
import json
import math
import os
import re
import struct
import sys
import unicodedata

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LM = os.path.join(ROOT, "tests", "data", "lm")
torch.set_default_dtype(torch.float64)


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b0, b1 = e["data_offsets"]
        raw = data[base + b0:base + b1]
        dt = e["dtype"]
        if dt == "F32":
            a = np.frombuffer(raw, "<f4")
        elif dt == "F16":
            a = np.frombuffer(raw, "<f2")
        elif dt == "BF16":
            a = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view("<f4")
        else:
            raise ValueError(dt)
        out[name] = torch.tensor(a.astype(np.float64).reshape(e["shape"]))
    return out


# ---------------------------------------------------------------------------------------------
# model


class Ref:
    def __init__(self, d):
        cfg = json.load(open(os.path.join(d, "config.json")))
        self.cfg = cfg
        self.qwen = cfg["model_type"] == "qwen2"
        self.C = cfg["hidden_size"]
        self.H = cfg["num_attention_heads"]
        self.G = cfg.get("num_key_value_heads") or self.H
        self.D = cfg.get("head_dim") or self.C // self.H
        self.L = cfg["num_hidden_layers"]
        self.eps = cfg.get("rms_norm_eps", 1e-6)
        self.theta = cfg.get("rope_theta", 10000.0)
        self.max_pos = cfg.get("max_position_embeddings", 2048)
        self.rs = cfg.get("rope_scaling") or {}
        self.rtype = self.rs.get("rope_type", self.rs.get("type", "default"))
        self.w = read_safetensors(os.path.join(d, "model.safetensors"))
        self.tie = cfg.get("tie_word_embeddings", False)
        self.eos = cfg.get("eos_token_id")
        gp = os.path.join(d, "generation_config.json")
        if os.path.exists(gp):
            g = json.load(open(gp))
            if "eos_token_id" in g:
                self.eos = g["eos_token_id"]
        if isinstance(self.eos, int):
            self.eos = [self.eos]

    def inv_freq(self, seq_len):
        D = self.D
        base = self.theta
        if self.rtype == "dynamic" and seq_len > self.max_pos:
            f = self.rs["factor"]
            base = base * ((f * seq_len / self.max_pos) - (f - 1)) ** (D / (D - 2))
        inv = 1.0 / (base ** (torch.arange(0, D, 2, dtype=torch.float64) / D))
        if self.rtype == "linear":
            inv = inv / self.rs["factor"]
        elif self.rtype == "llama3":
            f = self.rs["factor"]
            lo, hi = self.rs["low_freq_factor"], self.rs["high_freq_factor"]
            old = self.rs["original_max_position_embeddings"]
            low_wl, high_wl = old / lo, old / hi
            wl = 2 * math.pi / inv
            inv_l = torch.where(wl > low_wl, inv / f, inv)
            smooth = (old / wl - lo) / (hi - lo)
            smoothed = (1 - smooth) * inv_l / f + smooth * inv_l
            medium = ~(wl < high_wl) * ~(wl > low_wl)
            inv = torch.where(medium, smoothed, inv_l)
        return inv

    def rms(self, x, w):
        var = x.pow(2).mean(-1, keepdim=True)
        return w * (x * torch.rsqrt(var + self.eps))

    @staticmethod
    def rotate_half(x):
        h = x.shape[-1] // 2
        return torch.cat((-x[..., h:], x[..., :h]), dim=-1)

    def lin(self, x, name, bias=False):
        y = x @ self.w[name + ".weight"].T
        b = self.w.get(name + ".bias")
        if b is not None:
            y = y + b
        return y

    def forward(self, ids, embeds, cache, start):
        """ids (T,) with -1 for rows taken from embeds; cache: list of (k, v) per layer of
        shape (G, P, D). Returns last-row logits and the extended cache."""
        T = len(ids)
        E = self.w["model.embed_tokens.weight"]
        x = torch.stack([E[i] if i >= 0 else torch.tensor(embeds[t], dtype=E.dtype)
                         for t, i in enumerate(ids)])
        inv = self.inv_freq(start + T)
        pos = torch.arange(start, start + T, dtype=inv.dtype)
        freqs = pos[:, None] * inv[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos(), emb.sin()
        H, G, D = self.H, self.G, self.D
        new_cache = []
        for l in range(self.L):
            p = "model.layers.%d." % l
            h = self.rms(x, self.w[p + "input_layernorm.weight"])
            q = self.lin(h, p + "self_attn.q_proj").view(T, H, D).transpose(0, 1)
            k = self.lin(h, p + "self_attn.k_proj").view(T, G, D).transpose(0, 1)
            v = self.lin(h, p + "self_attn.v_proj").view(T, G, D).transpose(0, 1)
            q = q * cos + self.rotate_half(q) * sin
            k = k * cos + self.rotate_half(k) * sin
            if cache:
                k = torch.cat((cache[l][0], k), dim=1)
                v = torch.cat((cache[l][1], v), dim=1)
            new_cache.append((k, v))
            # repeat_kv: (G, S, D) -> (H, S, D), each kv head serving H/G query heads
            kr = k[:, None].expand(G, H // G, k.shape[1], D).reshape(H, k.shape[1], D)
            vr = v[:, None].expand(G, H // G, v.shape[1], D).reshape(H, v.shape[1], D)
            S = kr.shape[1]
            att = q @ kr.transpose(1, 2) / math.sqrt(D)
            mask = torch.full((T, S), float("-inf"))
            for t in range(T):
                mask[t, :start + t + 1] = 0
            att = torch.softmax(att + mask, dim=-1)
            o = (att @ vr).transpose(0, 1).reshape(T, H * D)
            x = x + self.lin(o, p + "self_attn.o_proj")
            h = self.rms(x, self.w[p + "post_attention_layernorm.weight"])
            g = self.lin(h, p + "mlp.gate_proj")
            u = self.lin(h, p + "mlp.up_proj")
            x = x + self.lin(torch.nn.functional.silu(g) * u, p + "mlp.down_proj")
        x = self.rms(x, self.w["model.norm.weight"])
        head = E if self.tie else self.w["lm_head.weight"]
        return x[-1] @ head.T, new_cache

    def generate(self, ids, embeds, n_new, penalty, stop):
        logits, cache = self.forward(ids, embeds, None, 0)
        first = logits
        seen = [i for i in ids if i >= 0]
        out = []
        pos = len(ids)
        while True:
            z = logits.clone()
            if penalty != 1.0 and seen:
                idx = torch.tensor(sorted(set(seen)))
                s = z.gather(0, idx)
                s = torch.where(s < 0, s * penalty, s / penalty)
                z = z.scatter(0, idx, s)
            tok = int(torch.argmax(z))
            out.append(tok)
            seen.append(tok)
            if tok in stop or len(out) == n_new:
                break
            logits, cache = self.forward([tok], None, cache, pos)
            pos += 1
        return first, out


def model_refs():
    for name in sorted(os.listdir(LM)):
        d = os.path.join(LM, name)
        if not os.path.exists(os.path.join(d, "config.json")):
            continue
        r = Ref(d)
        V = r.cfg["vocab_size"]
        rng = np.random.default_rng(1000 + len(name))
        prompt = [int(i) for i in rng.integers(3, V, 13)]
        logits, greedy = r.generate(prompt, None, 20, 1.0, r.eos)
        _, greedy_pen = r.generate(prompt, None, 20, 1.5, r.eos)
        # vision-language style input: rows 3..6 are embeddings given by the caller
        emb_ids = list(prompt)
        embeds = [[0.0] * r.C for _ in emb_ids]
        for t in range(3, 7):
            emb_ids[t] = -1
            embeds[t] = [float(v) for v in rng.standard_normal(r.C)]
        elog, egreedy = r.generate(emb_ids, embeds, 20, 1.0, r.eos)
        ref = {"prompt": prompt, "stop": r.eos, "logits": [float(v) for v in logits],
               "greedy": greedy, "penalty": 1.5, "greedy_penalty": greedy_pen,
               "embed_ids": emb_ids, "embeds": [e for t, e in enumerate(embeds) if emb_ids[t] < 0],
               "embed_logits": [float(v) for v in elog], "embed_greedy": egreedy}
        with open(os.path.join(d, "ref.json"), "w") as f:
            json.dump(ref, f)
        print(name, "greedy", greedy, "pen", greedy_pen)


# ---------------------------------------------------------------------------------------------
# tokenizers (huggingface/tokenizers semantics, re-implemented)

def _ranges(pred):
    out = []
    start = None
    for cp in range(0x110000):
        ok = pred(cp)
        if ok and start is None:
            start = cp
        if not ok and start is not None:
            out.append((start, cp - 1))
            start = None
    if start is not None:
        out.append((start, 0x10FFFF))
    return "".join(re.escape(chr(a)) + ("-" + re.escape(chr(b)) if b > a else "")
                   for a, b in out)


WS = set([9, 10, 11, 12, 13, 32, 0x85, 0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000] +
         list(range(0x2000, 0x200B)))
CLS = {}


def classes():
    if not CLS:
        CLS["L"] = _ranges(lambda c: unicodedata.category(chr(c)).startswith("L"))
        CLS["N"] = _ranges(lambda c: unicodedata.category(chr(c)) in ("Nd", "Nl", "No"))
        CLS["s"] = _ranges(lambda c: c in WS)
    return CLS


def translate(pat):
    """Rust-regex pattern -> Python re, with \p{L}, \p{N}, \s, \S as explicit classes."""
    c = classes()
    out = []
    i = 0
    depth = 0
    while i < len(pat):
        if pat.startswith("\\p{L}", i) or pat.startswith("\\p{N}", i):
            k = c[pat[i + 3]]
            out.append(k if depth else "[" + k + "]")
            i += 5
        elif pat.startswith("\\s", i):
            out.append(c["s"] if depth else "[" + c["s"] + "]")
            i += 2
        elif pat.startswith("\\S", i):
            assert not depth
            out.append("[^" + c["s"] + "]")
            i += 2
        elif pat[i] == "\\":
            out.append(pat[i:i + 2])
            i += 2
        else:
            if pat[i] == "[":
                depth += 1
            elif pat[i] == "]":
                depth -= 1
            out.append(pat[i])
            i += 1
    return re.compile("".join(out))


GPT2_PAT = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"


def b2u():
    bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) +
          list(range(ord("®"), ord("ÿ") + 1)))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


class Tok:
    def __init__(self, d):
        tj = json.load(open(os.path.join(d, "tokenizer.json"), encoding="utf-8"))
        m = tj["model"]
        self.vocab = m["vocab"]
        self.ranks = {}
        for r, mg in enumerate(m["merges"]):
            a, b = mg.split(" ") if isinstance(mg, str) else mg
            self.ranks.setdefault((a, b), r)
        self.added = sorted(tj["added_tokens"], key=lambda a: -len(a["content"]))
        self.special = {a["id"] for a in tj["added_tokens"] if a["special"]}
        self.id2tok = {}
        for t, i in self.vocab.items():
            self.id2tok.setdefault(i, t)
        for a in tj["added_tokens"]:
            self.id2tok[a["id"]] = a["content"]
        self.unk = self.vocab.get(m["unk_token"]) if m.get("unk_token") else None
        self.byte_fallback = m.get("byte_fallback", False)
        self.fuse_unk = m.get("fuse_unk", False)
        self.norms = []
        self._norm(tj["normalizer"])
        self.pre = []
        self.byte_level = False
        self._pre(tj["pre_tokenizer"])
        self.post_pre, self.post_post = [], []
        pp = tj["post_processor"]
        if pp and pp["type"] == "TemplateProcessing":
            seen = False
            for e in pp["single"]:
                if "Sequence" in e:
                    seen = True
                else:
                    ids = pp["special_tokens"][e["SpecialToken"]["id"]]["ids"]
                    (self.post_post if seen else self.post_pre).extend(ids)
        self.b2u = b2u()
        self.u2b = {v: k for k, v in self.b2u.items()}

    def _norm(self, n):
        if not n:
            return
        if n["type"] == "Sequence":
            for x in n["normalizers"]:
                self._norm(x)
        else:
            self.norms.append(n)

    def _pre(self, p):
        if not p:
            return
        if p["type"] == "Sequence":
            for x in p["pretokenizers"]:
                self._pre(x)
        elif p["type"] == "ByteLevel":
            self.byte_level = True
            if p.get("use_regex", True):
                self.pre.append(("re", translate(GPT2_PAT)))
        elif p["type"] == "Digits":
            self.pre.append(("digits", p["individual_digits"]))
        elif p["type"] == "Split":
            self.pre.append(("re", translate(p["pattern"]["Regex"])))
        else:
            raise ValueError(p["type"])

    def normalize(self, s):
        for n in self.norms:
            if n["type"] == "NFC":
                s = unicodedata.normalize("NFC", s)
            elif n["type"] == "Prepend":
                s = n["prepend"] + s if s else s
            elif n["type"] == "Replace":
                s = s.replace(n["pattern"]["String"], n["content"])
        return s

    def split(self, pieces, step):
        kind, arg = step
        out = []
        for p in pieces:
            if kind == "re":
                # Isolated: matches are pieces and so is any text between them
                pos = 0
                for mt in arg.finditer(p):
                    if mt.start() > pos:
                        out.append(p[pos:mt.start()])
                    out.append(mt.group())
                    pos = mt.end()
                if pos < len(p):
                    out.append(p[pos:])
            else:
                isnum = lambda ch: unicodedata.category(ch) in ("Nd", "Nl", "No")
                cur = ""
                for ch in p:
                    if isnum(ch):
                        if cur and not (not arg and isnum(cur[-1])):
                            out.append(cur)
                            cur = ""
                        cur += ch
                        if arg:
                            out.append(cur)
                            cur = ""
                    else:
                        if cur and isnum(cur[-1]):
                            out.append(cur)
                            cur = ""
                        cur += ch
                if cur:
                    out.append(cur)
        return out

    def bpe(self, piece):
        if self.byte_level:
            syms = [self.b2u[b] for b in piece.encode("utf-8")]
        else:
            syms = []
            for ch in piece:
                if ch in self.vocab:
                    syms.append(ch)
                elif self.byte_fallback:
                    syms.extend("<0x%02X>" % b for b in ch.encode("utf-8"))
                elif self.unk is not None:
                    if not (self.fuse_unk and syms and syms[-1] is None):
                        syms.append(None)
        while True:
            best = None
            for i in range(len(syms) - 1):
                r = self.ranks.get((syms[i], syms[i + 1])) if None not in syms[i:i + 2] else None
                if r is not None and (best is None or r < best[0]):
                    best = (r, i)
            if best is None:
                break
            i = best[1]
            syms[i:i + 2] = [syms[i] + syms[i + 1]]
        return [self.unk if s is None else self.vocab[s] for s in syms]

    def encode(self, text, add_special):
        ids = list(self.post_pre) if add_special else []
        segs = []
        start = i = 0
        while i < len(text):
            a = next((a for a in self.added if text.startswith(a["content"], i)), None)
            if not a:
                i += 1
                continue
            end = i
            if a["lstrip"]:
                while end > start and text[end - 1].isspace():
                    end -= 1
            segs.append(text[start:end])
            segs.append(a["id"])
            i += len(a["content"])
            if a["rstrip"]:
                while i < len(text) and text[i].isspace():
                    i += 1
            start = i
        segs.append(text[start:])
        for s in segs:
            if isinstance(s, int):
                ids.append(s)
                continue
            pieces = [self.normalize(s)] if s else []
            for step in self.pre:
                pieces = self.split(pieces, step)
            for p in pieces:
                ids.extend(self.bpe(p))
        if add_special:
            ids.extend(self.post_post)
        return ids

    def decode(self, ids, skip_special):
        toks = [self.id2tok[i] for i in ids if not (skip_special and i in self.special)]
        if self.byte_level:
            out = bytearray()
            for t in toks:
                for ch in t:
                    if ch in self.u2b:
                        out.append(self.u2b[ch])
                    else:
                        out.extend(ch.encode("utf-8"))
            return out.decode("utf-8", "replace")
        out = bytearray()
        for t in toks:
            mt = re.fullmatch(r"<0x([0-9A-F]{2})>", t)
            if mt:
                out.append(int(mt.group(1), 16))
            else:
                out.extend(t.replace("▁", " ").encode("utf-8"))
        s = out.decode("utf-8", "replace")
        return s[1:] if s.startswith(" ") else s


TOK_TEXTS = [
    "a photo of a cat",
    "",
    " ",
    "Hello world! This is a test.",
    "The quick brown fox jumps over the lazy dog.",
    "they're walking; it's late. I'LL SEE, we'Ve",
    "Numbers: 2019, 42 and 1234567 (x3.14)",
    "hello   world  \t tabs\tand\nnewlines\n\n\nend",
    "   leading and trailing   ",
    "café crème brûlée naïve",
    "Cafe\u0301 combining (NFC)",
    "日本語のテキストと中文",
    "emoji 😀👍🏽 and symbols ©®™ ∑∫",
    "zebra quiz jazz",
    "<|im_start|>user\nDescribe the image.<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>User:<image>Can you describe this image?<end_of_utterance>\nAssistant:",
    "USER: <image>\nWhat is in the picture? ASSISTANT:",
    "text<|endoftext|>more</s><s>",
    "[nonspecial] and [nonspecial]x",
    "a\r\nb\r\n\r\n  c",
    "x  \n  y",
    "don't stop 'til you're done",
    "___---...!!!???",
    "Ünïcödé ÀÉÎÕÜ ß ﬁ",
]


def tok_refs():
    for name in sorted(os.listdir(LM)):
        d = os.path.join(LM, name)
        if not os.path.exists(os.path.join(d, "tokenizer.json")):
            continue
        t = Tok(d)
        cases = []
        for text in TOK_TEXTS:
            for add in (False, True):
                ids = t.encode(text, add)
                cases.append({"text": text, "add_special": add, "ids": ids,
                              "decoded": t.decode(ids, False),
                              "decoded_skip": t.decode(ids, True)})
        with open(os.path.join(d, "tok_cases.json"), "w", encoding="utf-8") as f:
            json.dump(cases, f, ensure_ascii=False, indent=0)
        print(name, "tokenizer cases", len(cases), "e.g.", cases[6]["ids"])


if __name__ == "__main__":
    model_refs()
    tok_refs()
