#!/usr/bin/python3
"""gen_lm.py - writes seeded random decoder LMs in the exact Hugging Face layouts
(LlamaForCausalLM / Qwen2ForCausalLM: config.json, generation_config.json, model.safetensors,
tokenizer.json, tokenizer_config.json) into tests/data/lm/<name>/.

Tokenizers are small but "trained": merges are learnt here from a short English corpus by
plain BPE training, in the two tokenizer.json styles the target models ship:
  byte-level (GPT-2 alphabet; SmolLM2 with a Digits + ByteLevel(use_regex) pre-tokenizer,
             Qwen2 with NFC + Split(Qwen2's regex) + ByteLevel(use_regex=false))
  metaspace  (Llama-2 / llava-1.5: Prepend + Replace normalizer, byte_fallback <0xXX>
             tokens, fuse_unk, TemplateProcessing adding <s>)
with the chat templates of the target models in tokenizer_config.json.

Run with Debian's python3 (numpy only): /usr/bin/python3 tools/gen_lm.py
Then tools/ref_lm.py computes the expected outputs. Both are deterministic (seeded).
"""
import collections
import json
import os
import struct

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "data", "lm")

CORPUS = """The quick brown fox jumps over the lazy dog. A photo of a cat sitting on a red sofa.
A group of people standing on a beach at sunset. Two dogs playing in the snow near the trees.
A man riding a bicycle down the street in the city. The image shows a small kitchen with a
window and a table. There is a car parked next to the building. A woman holding an umbrella
in the rain. The mountains are covered with snow and the sky is blue. Children are playing
football in the park. A plate of food with rice, vegetables and chicken. The boat is sailing
on the lake. It's a sunny day, and they're walking along the river. I'll describe the picture:
what's in it? Numbers like 2019 and 42 appear too. Hello world! This is a test of the tokenizer.
"""

# Chat templates as the target models ship them (tokenizer_config.json "chat_template").
TEMPLATE_IDEFICS3 = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}{% if "
    "message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}{% for line "
    "in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}{% elif line['type'] "
    "== 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}{% if "
    "add_generation_prompt %}{{ 'Assistant:' }}{% endif %}")
TEMPLATE_LLAVA_QWEN = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n'}}{# Render all "
    "images first #}{% for content in message['content'] | selectattr('type', 'equalto', "
    "'image') %}{{ '<image>\n' }}{% endfor %}{# Render all text next #}{% for content in "
    "message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] }}{% endfor "
    "%}{{'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ "
    "'<|im_start|>assistant\n' }}{% endif %}")
TEMPLATE_LLAVA15 = (
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() "
    "+ ': '}}{% endif %}{# Render all images first #}{% for content in message['content'] | "
    "selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}{# Render all text "
    "next #}{% if message['role'] != 'assistant' %}{% for content in message['content'] | "
    "selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' '}}{% endfor %}{% else %}{% "
    "for content in message['content'] | selectattr('type', 'equalto', 'text') %}{% generation "
    "%}{{ content['text'] + ' '}}{% endgeneration %}{% endfor %}{% endif %}{% endfor %}{% if "
    "add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}")

QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+"
               r"[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def bytes_to_unicode():
    """GPT-2's byte -> printable character map (openai/gpt-2 encoder.py)."""
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


def train_merges(words, n_merges):
    """Plain BPE training: words is a Counter of symbol tuples; returns merges in order."""
    words = dict(words)
    merges = []
    for _ in range(n_merges):
        pairs = collections.Counter()
        for w, f in words.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] += f
        if not pairs:
            break
        best = max(sorted(pairs), key=lambda p: pairs[p])  # ties: lexicographically first
        merges.append(best)
        nw = {}
        for w, f in words.items():
            out = []
            i = 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            nw[tuple(out)] = nw.get(tuple(out), 0) + f
        words = nw
    return merges


def added(i, content, special=True, lstrip=False, rstrip=False, normalized=False):
    return {"id": i, "content": content, "single_word": False, "lstrip": lstrip,
            "rstrip": rstrip, "normalized": normalized, "special": special}


def byte_level_tokenizer(style, n_merges):
    """style 'smollm' (specials first, Digits + ByteLevel regex, merges as strings) or 'qwen'
    (specials last, NFC + Split(regex) + ByteLevel, merges as pairs)."""
    b2u = bytes_to_unicode()
    words = collections.Counter()
    for w in CORPUS.replace("\n", " ").split(" "):
        if w:
            words[tuple(b2u[b] for b in (" " + w).encode())] += 1
    merges = train_merges(words, n_merges)
    vocab = {}
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    if style == "smollm":
        for s in specials:
            vocab[s] = len(vocab)
    for b in range(256):
        vocab[b2u[b]] = len(vocab)
    for a, b in merges:
        if a + b not in vocab:
            vocab[a + b] = len(vocab)
    toks = []
    if style == "smollm":
        toks = [added(i, s) for i, s in enumerate(specials)]
        extra = ["<fake_token_around_image>", "<image>", "<end_of_utterance>"]
    else:
        extra = specials + ["<image>"]
    for s in extra:
        toks.append(added(len(vocab), s))
        vocab[s] = len(vocab)
    # a non-special added token (as Qwen2 ships "<|object_ref_start|>"-like ones: special=false)
    toks.append(added(len(vocab), "[nonspecial]", special=False))
    vocab["[nonspecial]"] = len(vocab)
    if style == "smollm":
        pre = {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": True},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
             "use_regex": True}]}
        norm = None
        merges_json = ["%s %s" % m for m in merges]
    else:
        pre = {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": QWEN2_REGEX}, "behavior": "Isolated",
             "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
             "use_regex": False}]}
        norm = {"type": "NFC"}
        merges_json = [[a, b] for a, b in merges]
    tj = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": toks,
        "normalizer": norm, "pre_tokenizer": pre,
        "post_processor": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
                           "use_regex": False},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                    "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": merges_json},
    }
    return tj, len(vocab)


def metaspace_tokenizer(n_merges):
    words = collections.Counter()
    for w in CORPUS.replace("\n", " ").split(" "):
        if w:
            words[tuple("▁" + w)] += 1
    merges = train_merges(words, n_merges)
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab["<0x%02X>" % b] = len(vocab)
    chars = sorted({c for w in words for c in w})
    # leave some characters out so byte fallback is exercised: 'z' and 'q' only via bytes
    for ch in chars:
        if ch not in "zq":
            vocab[ch] = len(vocab)
    for a, b in merges:
        if a + b not in vocab and "z" not in a + b and "q" not in a + b:
            vocab[a + b] = len(vocab)
    merges = [(a, b) for a, b in merges if a in vocab and b in vocab and a + b in vocab]
    toks = [added(0, "<unk>"), added(1, "<s>"), added(2, "</s>")]
    for s in ["<image>", "<pad>"]:
        toks.append(added(len(vocab), s))
        vocab[s] = len(vocab)
    tj = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": toks,
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "▁"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
        "pre_tokenizer": None,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                     {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "<s>", "type_id": 1}},
                     {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>",
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                  "vocab": vocab, "merges": ["%s %s" % m for m in merges]},
    }
    return tj, len(vocab)


# ---------------------------------------------------------------------------------------------
# models

MODELS = [
    # SmolLM2-like (the SmolVLM decoder): GQA 4/2, tied embeddings, byte-level + Digits, F32
    dict(name="llama_smol", seed=11, arch="llama", dtype="F32", tok="smollm", hidden=64,
         inter=128, layers=2, heads=4, kv=2, tie=True, theta=100000.0, eps=1e-5, max_pos=256,
         template=TEMPLATE_IDEFICS3, eos=2),
    # Qwen2 (llava-interleave-qwen decoder): q/k/v biases, GQA 6/2, tied, BF16, eos list
    dict(name="qwen2_bf16", seed=12, arch="qwen2", dtype="BF16", tok="qwen", hidden=96,
         inter=160, layers=2, heads=6, kv=2, tie=True, theta=1000000.0, eps=1e-6,
         max_pos=512, template=TEMPLATE_LLAVA_QWEN, gen_eos="list", pad_vocab=64),
    # Llama-2 / llava-1.5 style: metaspace tokenizer, F16, explicit head_dim != C/H,
    # attention_bias (q/k/v/o biases), untied lm_head, linear rope scaling
    dict(name="llama_ms_f16", seed=13, arch="llama", dtype="F16", tok="metaspace", hidden=48,
         inter=80, layers=3, heads=4, kv=4, head_dim=16, tie=False, theta=10000.0, eps=1e-5,
         max_pos=128, attention_bias=True, rope_scaling={"type": "linear", "factor": 2.0},
         template=TEMPLATE_LLAVA15),
    # llama3 rope scaling
    dict(name="llama3_rope", seed=14, arch="llama", dtype="BF16", tok=None, vocab=300,
         hidden=32, inter=64, layers=1, heads=2, kv=1, tie=False, theta=500000.0, eps=1e-5,
         max_pos=256, rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                    "high_freq_factor": 4.0,
                                    "original_max_position_embeddings": 64}),
    # dynamic NTK rope: max_position_embeddings 16 < prompt + 20 generated tokens
    dict(name="llama_dynamic", seed=15, arch="llama", dtype="F32", tok=None, vocab=200,
         hidden=32, inter=48, layers=2, heads=4, kv=2, tie=False, theta=10000.0, eps=1e-6,
         max_pos=16, rope_scaling={"type": "dynamic", "factor": 2.0}),
]


def to_dtype(a, dtype):
    a = np.asarray(a, np.float32)
    if dtype == "F32":
        return a.astype("<f4").tobytes()
    if dtype == "F16":
        return a.astype("<f2").tobytes()
    u = a.view(np.uint32).astype(np.uint64)  # BF16: round to nearest even
    u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2")
    return u.tobytes()


def write_safetensors(path, tensors, dtype):
    header = {}
    blobs = []
    off = 0
    for name, a in tensors:
        b = to_dtype(a, dtype)
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def make_model(spec, vocab):
    rng = np.random.default_rng(spec["seed"])
    C, F, H, G = spec["hidden"], spec["inter"], spec["heads"], spec["kv"]
    D = spec.get("head_dim", C // H)
    qwen = spec["arch"] == "qwen2"
    bias = qwen or spec.get("attention_bias", False)
    t = []

    def lin(name, n_out, n_in, b=False, ob=False):
        t.append((name + ".weight", rng.standard_normal((n_out, n_in)) / np.sqrt(n_in)))
        if b:
            t.append((name + ".bias", 0.2 * rng.standard_normal(n_out)))

    # rows of equal norm: with tied embeddings a long row would win every argmax
    e = rng.standard_normal((vocab, C))
    e *= 0.5 * np.sqrt(C) / np.linalg.norm(e, axis=1, keepdims=True)
    t.append(("model.embed_tokens.weight", e))
    for i in range(spec["layers"]):
        p = "model.layers.%d." % i
        t.append((p + "input_layernorm.weight", 1.0 + 0.1 * rng.standard_normal(C)))
        lin(p + "self_attn.q_proj", H * D, C, bias)
        lin(p + "self_attn.k_proj", G * D, C, bias)
        lin(p + "self_attn.v_proj", G * D, C, bias)
        lin(p + "self_attn.o_proj", C, H * D, bias and not qwen)
        t.append((p + "post_attention_layernorm.weight", 1.0 + 0.1 * rng.standard_normal(C)))
        lin(p + "mlp.gate_proj", F, C)
        lin(p + "mlp.up_proj", F, C)
        lin(p + "mlp.down_proj", C, F)
    t.append(("model.norm.weight", 1.0 + 0.1 * rng.standard_normal(C)))
    if not spec["tie"]:
        lin("lm_head", vocab, C)
    return t


def main():
    for spec in MODELS:
        d = os.path.join(OUT, spec["name"])
        os.makedirs(d, exist_ok=True)
        tok_n = None
        if spec["tok"] in ("smollm", "qwen"):
            tj, tok_n = byte_level_tokenizer(spec["tok"], 300)
        elif spec["tok"] == "metaspace":
            tj, tok_n = metaspace_tokenizer(300)
        vocab = spec.get("vocab", tok_n)
        if spec.get("pad_vocab"):
            vocab = (vocab + spec["pad_vocab"] - 1) // spec["pad_vocab"] * spec["pad_vocab"]
        if spec["tok"]:
            with open(os.path.join(d, "tokenizer.json"), "w", encoding="utf-8") as f:
                json.dump(tj, f, ensure_ascii=False, indent=2)
            vocab_ids = tj["model"]["vocab"]
            if spec["tok"] == "metaspace":
                tc = {"add_bos_token": True, "add_eos_token": False, "bos_token": "<s>",
                      "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>",
                      "legacy": True, "model_max_length": 4096,
                      "tokenizer_class": "LlamaTokenizer", "chat_template": spec["template"]}
            else:
                tc = {"add_prefix_space": False, "bos_token": "<|im_start|>" if
                      spec["tok"] == "smollm" else None,
                      "eos_token": "<|im_end|>" if spec["tok"] == "smollm" else "<|endoftext|>",
                      "pad_token": "<|endoftext|>", "model_max_length": 8192,
                      "tokenizer_class": "GPT2Tokenizer", "chat_template": spec["template"]}
            with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
                json.dump(tc, f, indent=2)
        cfg = {
            "architectures": ["Qwen2ForCausalLM" if spec["arch"] == "qwen2" else
                              "LlamaForCausalLM"],
            "model_type": spec["arch"], "hidden_act": "silu", "hidden_size": spec["hidden"],
            "intermediate_size": spec["inter"], "num_hidden_layers": spec["layers"],
            "num_attention_heads": spec["heads"], "num_key_value_heads": spec["kv"],
            "max_position_embeddings": spec["max_pos"], "rms_norm_eps": spec["eps"],
            "rope_theta": spec["theta"], "tie_word_embeddings": spec["tie"],
            "vocab_size": vocab, "torch_dtype": {"F32": "float32", "F16": "float16",
                                                  "BF16": "bfloat16"}[spec["dtype"]],
            "initializer_range": 0.02, "use_cache": True, "transformers_version": "4.45.0",
        }
        if spec["arch"] == "llama":
            cfg.update(attention_bias=spec.get("attention_bias", False), mlp_bias=False,
                       pretraining_tp=1, bos_token_id=1, eos_token_id=spec.get("eos", 2))
        else:
            cfg.update(use_sliding_window=False, sliding_window=None, max_window_layers=21,
                       bos_token_id=vocab_ids["<|endoftext|>"],
                       eos_token_id=vocab_ids["<|endoftext|>"])
        if "head_dim" in spec:
            cfg["head_dim"] = spec["head_dim"]
        if "rope_scaling" in spec:
            cfg["rope_scaling"] = spec["rope_scaling"]
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg, f, indent=2)
        if spec.get("gen_eos") == "list":
            gc = {"bos_token_id": vocab_ids["<|endoftext|>"],
                  "eos_token_id": [vocab_ids["<|im_end|>"], vocab_ids["<|endoftext|>"]],
                  "repetition_penalty": 1.05, "transformers_version": "4.45.0"}
            with open(os.path.join(d, "generation_config.json"), "w") as f:
                json.dump(gc, f, indent=2)
        write_safetensors(os.path.join(d, "model.safetensors"), make_model(spec, vocab),
                          spec["dtype"])
        print("wrote", d, "vocab", vocab)


if __name__ == "__main__":
    main()
