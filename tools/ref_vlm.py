#!/usr/bin/python3
"""ref_vlm.py - independent reference outputs for the vision-language fixtures of
tools/gen_vlm.py, written from transformers' definitions (not from shoebox's C):

  image_processing_clip.py    CLIPImageProcessor: resize shortest edge (PIL bicubic), centre
                              crop, rescale, normalise (llava-1.5)
  image_processing_siglip.py  SiglipImageProcessor: resize to height x width, rescale,
                              normalise (llava-interleave)
  image_processing_idefics3.py  do_image_splitting False: resize longest edge to
                              size["longest_edge"] (even short edge), then square to
                              max_image_size (LANCZOS), rescale, normalise
  modeling_clip.py            CLIPVisionEmbeddings (CLS + positions), pre_layrnorm, encoder
                              layers; hidden_states[k] = output after k layers (0: embeddings)
  modeling_siglip.py / modeling_idefics3.py   SigLIP embeddings (conv with bias, positions;
                              Idefics3 bucketises fractional patch coordinates), encoder,
                              post_layernorm (Idefics3's last_hidden_state)
  modeling_llava.py           get_image_features: hidden_states[vision_feature_layer],
                              "default" drops CLS, multi_modal_projector linear_1 -> gelu ->
                              linear_2; image rows replace the <image> tokens
  modeling_idefics3.py        Idefics3Connector: pixel_shuffle(scale_factor) (the view /
                              permute sequence), modality_projection (no bias)
  processing_llava.py         <image> repeated num_image_tokens times
  processing_idefics3.py      <fake_token_around_image><global-img><image>*image_seq_len
                              <fake_token_around_image> for a non-split image; for a split one
                              <fake_token_around_image><row_i_col_j><image>*image_seq_len per
                              crop, "\n" per row, then "\n" and the global image's string
  image_processing_idefics3.py  do_image_splitting True (run_split): resize_for_vision_encoder,
                              split_image (row-major crops of max_image_size, global image last)
The decoder and the tokenizers are tools/ref_lm.py's (Llama / Qwen2 in float64, tokenizer.json
pipelines re-implemented). Writes tests/data/vlm/<name>/ref.json: preprocessed pixels of
tests/data/vlm/photo.png, prompt ids (with -1 for image rows), the logits after prefill and the
greedy continuation (20 tokens, and 20 with repetition penalty 1.3); for idefics3 also
split.png + ref_split.json, the same with image splitting.
Run: /usr/bin/python3 tools/ref_vlm.py (after gen_vlm.py).
"""
import json
import math
import os
import sys

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ref_lm  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VLM = os.path.join(ROOT, "tests", "data", "vlm")
PROMPT = "Describe this photo in one sentence."
torch.set_default_dtype(torch.float64)


# ---------------------------------------------------------------------------------------------
# preprocessing

def normalize(img, mean, std, rescale):
    a = np.asarray(img, dtype=np.float64) * rescale  # HWC
    a = (a - np.array(mean)) / np.array(std)
    return a.transpose(2, 0, 1)


def pre_clip(img, pc):
    w, h = img.size
    s = pc["size"]["shortest_edge"]
    short, long = (w, h) if w <= h else (h, w)
    nl = int(s * long / short)
    nw, nh = (s, nl) if w <= h else (nl, s)
    if (nw, nh) != (w, h):
        img = img.resize((nw, nh), pc.get("resample", 3))
    ch, cw = pc["crop_size"]["height"], pc["crop_size"]["width"]
    top, left = (nh - ch) // 2, (nw - cw) // 2
    img = img.crop((left, top, left + cw, top + ch))
    return normalize(img, pc["image_mean"], pc["image_std"], pc["rescale_factor"])


def pre_siglip(img, pc):
    sz = (pc["size"]["width"], pc["size"]["height"])
    if img.size != sz:
        img = img.resize(sz, pc.get("resample", 3))
    return normalize(img, pc["image_mean"], pc["image_std"], pc["rescale_factor"])


def pre_idefics3(img, pc):
    w, h = img.size
    max_len = pc["size"]["longest_edge"]
    ar = w / h
    if w >= h:  # _resize_output_size_rescale_to_max_len
        w = max_len
        h = int(w / ar)
        if h % 2 != 0:
            h += 1
    else:
        h = max_len
        w = int(h * ar)
        if w % 2 != 0:
            w += 1
    h, w = max(h, 1), max(w, 1)
    if img.size != (w, h):
        img = img.resize((w, h), pc.get("resample", 1))
    m = pc["max_image_size"]["longest_edge"]
    if img.size != (m, m):
        img = img.resize((m, m), pc.get("resample", 1))  # "We square the images"
    return normalize(img, pc["image_mean"], pc["image_std"], pc["rescale_factor"])


def split_idefics3(img, pc):
    """do_image_splitting: the longest edge to size["longest_edge"], resize_for_vision_encoder
    (sides up to multiples of max_image_size), split_image (row-major crops, then the global
    image squared to max_image_size). Returns the 8-bit frames (PIL images), rows, cols."""
    w, h = img.size
    max_len = pc["size"]["longest_edge"]
    ar = w / h
    if w >= h:  # _resize_output_size_rescale_to_max_len
        w = max_len
        h = int(w / ar)
        if h % 2 != 0:
            h += 1
    else:
        h = max_len
        w = int(h * ar)
        if w % 2 != 0:
            w += 1
    h, w = max(h, 1), max(w, 1)
    rs = pc.get("resample", 1)
    if img.size != (w, h):
        img = img.resize((w, h), rs)
    S = pc["max_image_size"]["longest_edge"]
    ar = w / h  # resize_for_vision_encoder
    if w >= h:
        w = math.ceil(w / S) * S
        h = int(w / ar)
        h = math.ceil(h / S) * S
    else:
        h = math.ceil(h / S) * S
        w = int(h * ar)
        w = math.ceil(w / S) * S
    if img.size != (w, h):
        img = img.resize((w, h), rs)
    if h <= S and w <= S:
        return [img], 0, 0
    rows, cols = math.ceil(h / S), math.ceil(w / S)  # split_image
    oh, ow = math.ceil(h / rows), math.ceil(w / cols)
    frames = []
    for r in range(rows):
        for c in range(cols):
            x0, y0 = c * ow, r * oh
            frames.append(img.crop((x0, y0, min(x0 + ow, w), min(y0 + oh, h))))
    frames.append(img.resize((S, S), rs) if img.size != (S, S) else img)
    return frames, rows, cols


# ---------------------------------------------------------------------------------------------
# vision towers

def act(x, name):
    if name == "quick_gelu":
        return x * torch.sigmoid(1.702 * x)
    if name == "gelu":
        return torch.nn.functional.gelu(x)
    if name in ("gelu_pytorch_tanh", "gelu_new"):
        return torch.nn.functional.gelu(x, approximate="tanh")
    raise ValueError(name)


def ln(x, W, name, eps):
    return torch.nn.functional.layer_norm(x, (x.shape[-1],), W[name + ".weight"],
                                          W[name + ".bias"], eps)


def lin(x, W, name):
    y = x @ W[name + ".weight"].T
    if name + ".bias" in W:
        y = y + W[name + ".bias"]
    return y


def encoder_layer(x, W, p, v):
    C, H = v["hidden_size"], v["num_attention_heads"]
    E = C // H
    eps = v.get("layer_norm_eps", 1e-5)
    T = x.shape[0]
    h = ln(x, W, p + "layer_norm1", eps)
    q = lin(h, W, p + "self_attn.q_proj").view(T, H, E).transpose(0, 1)
    k = lin(h, W, p + "self_attn.k_proj").view(T, H, E).transpose(0, 1)
    vv = lin(h, W, p + "self_attn.v_proj").view(T, H, E).transpose(0, 1)
    a = torch.softmax(q @ k.transpose(1, 2) * E ** -0.5, dim=-1)
    o = (a @ vv).transpose(0, 1).reshape(T, C)
    x = x + lin(o, W, p + "self_attn.out_proj")
    h = ln(x, W, p + "layer_norm2", eps)
    h = act(lin(h, W, p + "mlp.fc1"), v["hidden_act"])
    return x + lin(h, W, p + "mlp.fc2")


def vision_hidden_states(pix, W, prefix, v, kind):
    """All hidden states (embeddings, then after each layer), as output_hidden_states gives."""
    C, p = v["hidden_size"], v["patch_size"]
    x = torch.tensor(pix)[None]
    conv = torch.nn.functional.conv2d(x, W[prefix + "embeddings.patch_embedding.weight"],
                                      W.get(prefix + "embeddings.patch_embedding.bias"), stride=p)
    G = conv.shape[-1]
    patches = conv.flatten(2).transpose(1, 2)[0]  # (N, C)
    pos = W[prefix + "embeddings.position_embedding.weight"]
    if kind == "clip":
        x = torch.cat([W[prefix + "embeddings.class_embedding"][None], patches]) + pos
        x = ln(x, W, prefix + "pre_layrnorm", v.get("layer_norm_eps", 1e-5))
    elif kind == "idefics3":
        # Idefics3VisionEmbeddings: bucketised fractional coordinates (full patch mask)
        per_side = v["image_size"] // p
        boundaries = torch.arange(1 / per_side, 1.0, 1 / per_side)
        frac = torch.arange(0, 1 - 1e-6, 1 / G)
        bh = torch.bucketize(frac, boundaries, right=True)
        bw = torch.bucketize(frac, boundaries, right=True)
        ids = (bh[:, None] * per_side + bw).flatten()
        x = patches + pos[ids]
    else:
        x = patches + pos
    hs = [x]
    for i in range(v["num_hidden_layers"]):
        x = encoder_layer(x, W, prefix + "encoder.layers.%d." % i, v)
        hs.append(x)
    return hs


def pixel_shuffle(x, s):
    """Idefics3Connector.pixel_shuffle, verbatim in its view / permute steps."""
    bsz, seq, dim = x.size()
    height = width = int(seq ** 0.5)
    x = x.view(bsz, height, width, dim)
    x = x.view(bsz, height, int(width / s), dim * s)
    x = x.permute(0, 2, 1, 3)
    x = x.reshape(bsz, int(width / s), int(height / s), dim * (s ** 2))
    x = x.permute(0, 2, 1, 3)
    return x.reshape(bsz, int(seq / (s ** 2)), dim * (s ** 2))


# ---------------------------------------------------------------------------------------------
# models

class Decoder(ref_lm.Ref):
    """ref_lm.Ref over a text_config and weights renamed to its "model." layout."""

    def __init__(self, tc, W, prefix, head):
        self.cfg = tc
        self.qwen = tc["model_type"] == "qwen2"
        self.C = tc["hidden_size"]
        self.H = tc["num_attention_heads"]
        self.G = tc.get("num_key_value_heads") or self.H
        self.D = tc.get("head_dim") or self.C // self.H
        self.L = tc["num_hidden_layers"]
        self.eps = tc.get("rms_norm_eps", 1e-6)
        self.theta = tc.get("rope_theta", 10000.0)
        self.max_pos = tc.get("max_position_embeddings", 2048)
        self.rs = tc.get("rope_scaling") or {}
        self.rtype = self.rs.get("rope_type", self.rs.get("type", "default"))
        self.tie = tc.get("tie_word_embeddings", False)
        self.w = {}
        for k, a in W.items():
            if k.startswith(prefix):
                self.w["model." + k[len(prefix):]] = a
        if head in W and not self.tie:
            self.w["lm_head.weight"] = W[head]


def run(name):
    d = os.path.join(VLM, name)
    cfg = json.load(open(os.path.join(d, "config.json")))
    pc = json.load(open(os.path.join(d, "preprocessor_config.json")))
    W = ref_lm.read_safetensors(os.path.join(d, "model.safetensors"))
    v = cfg["vision_config"]
    tok = ref_lm.Tok(d)
    img = Image.open(os.path.join(VLM, "photo.png")).convert("RGB")
    idefics = cfg["model_type"] == "idefics3"
    if idefics:
        pix = pre_idefics3(img, pc)
        hs = vision_hidden_states(pix, W, "model.vision_model.", v, "idefics3")
        feats = ln(hs[-1], W, "model.vision_model.post_layernorm", v.get("layer_norm_eps", 1e-6))
        feats = pixel_shuffle(feats[None], cfg["scale_factor"])[0]
        feats = feats @ W["model.connector.modality_projection.proj.weight"].T
        dec = Decoder(cfg["text_config"], W, "model.text_model.", "lm_head.weight")
        text = "<|im_start|>User:<image>" + PROMPT + "<end_of_utterance>\nAssistant:"
        n_img = feats.shape[0]
        expand = ("<fake_token_around_image><global-img>" + "<image>" * n_img +
                  "<fake_token_around_image>")
        text = text.replace("<image>", expand)
        stop = [tok.vocab["<end_of_utterance>"]]
    else:
        clip = v["model_type"] == "clip_vision_model"
        pix = pre_clip(img, pc) if clip else pre_siglip(img, pc)
        hs = vision_hidden_states(pix, W, "vision_tower.vision_model.", v,
                                  "clip" if clip else "siglip")
        feats = hs[cfg["vision_feature_layer"]]
        if cfg["vision_feature_select_strategy"] == "default":
            feats = feats[1:]
        h = lin(feats, W, "multi_modal_projector.linear_1")
        h = act(h, cfg["projector_hidden_act"])
        feats = lin(h, W, "multi_modal_projector.linear_2")
        dec = Decoder(cfg["text_config"], W, "language_model.model.",
                      "language_model.lm_head.weight")
        if clip:
            text = "USER: <image>\n" + PROMPT + " ASSISTANT:"
        else:
            text = "<|im_start|>user\n<image>\n" + PROMPT + "<|im_end|>\n<|im_start|>assistant\n"
        n_img = feats.shape[0]
        text = text.replace("<image>", "<image>" * n_img)
        stop = []
        if "<|im_end|>" in tok.vocab:
            stop.append(tok.vocab["<|im_end|>"])
    eos = cfg["text_config"].get("eos_token_id")
    if eos is not None and eos not in stop:
        stop.append(eos)
    ids = tok.encode(text, True)
    image_id = tok.vocab["<image>"]
    assert ids.count(image_id) == n_img, (ids.count(image_id), n_img)
    emb_ids = [-1 if i == image_id else i for i in ids]
    rows = [[float(x) for x in r] for r in feats]
    embeds = []
    k = 0
    for i in emb_ids:
        if i < 0:
            embeds.append(rows[k])
            k += 1
        else:
            embeds.append([0.0] * dec.C)
    logits, greedy = dec.generate(emb_ids, embeds, 20, 1.0, stop)
    _, greedy_pen = dec.generate(emb_ids, embeds, 20, 1.3, stop)
    ref = {"prompt": PROMPT, "pixels": [round(float(x), 7) for x in pix.flatten()],
           "pixel_shape": list(pix.shape), "ids": ids, "image_id": image_id, "n_image": n_img,
           "stop": stop, "logits": [float(x) for x in logits], "greedy": greedy,
           "penalty": 1.3, "greedy_penalty": greedy_pen,
           # ids past the tokenizer (padded embedding rows) decode to nothing
           "text": tok.decode([i for i in greedy if i in tok.id2tok], True)}
    with open(os.path.join(d, "ref.json"), "w") as f:
        json.dump(ref, f)
    print(name, "tokens", len(ids), "image rows", n_img, "greedy", greedy)


def run_split(name):
    """Idefics3 with image splitting: tests/data/vlm/<name>/split.png (the 8-bit frames stacked
    top to bottom, crops row-major then the global image) and ref_split.json (grid, prompt ids,
    logits after prefill, 20 greedy tokens)."""
    d = os.path.join(VLM, name)
    cfg = json.load(open(os.path.join(d, "config.json")))
    pc = json.load(open(os.path.join(d, "preprocessor_config.json")))
    W = ref_lm.read_safetensors(os.path.join(d, "model.safetensors"))
    v = cfg["vision_config"]
    tok = ref_lm.Tok(d)
    img = Image.open(os.path.join(VLM, "photo.png")).convert("RGB")
    frames, rows, cols = split_idefics3(img, pc)
    S = pc["max_image_size"]["longest_edge"]
    strip = Image.new("RGB", (S, S * len(frames)))
    for i, f in enumerate(frames):
        assert f.size == (S, S), f.size
        strip.paste(f, (0, i * S))
    strip.save(os.path.join(d, "split.png"), optimize=True)
    feats = []
    for f in frames:
        pix = normalize(f, pc["image_mean"], pc["image_std"], pc["rescale_factor"])
        hs = vision_hidden_states(pix, W, "model.vision_model.", v, "idefics3")
        x = ln(hs[-1], W, "model.vision_model.post_layernorm", v.get("layer_norm_eps", 1e-6))
        x = pixel_shuffle(x[None], cfg["scale_factor"])[0]
        feats.append(x @ W["model.connector.modality_projection.proj.weight"].T)
    feats = torch.cat(feats)
    R = feats.shape[0] // len(frames)
    fake, img_tok, glob = "<fake_token_around_image>", "<image>", "<global-img>"
    if rows == 0:  # processing_idefics3.get_image_prompt_string
        expand = fake + glob + img_tok * R + fake
    else:
        expand = ""
        for r in range(rows):
            for c in range(cols):
                expand += fake + "<row_%d_col_%d>" % (r + 1, c + 1) + img_tok * R
            expand += "\n"
        expand += "\n" + fake + glob + img_tok * R + fake
    text = "<|im_start|>User:<image>" + PROMPT + "<end_of_utterance>\nAssistant:"
    text = text.replace("<image>", expand)
    stop = [tok.vocab["<end_of_utterance>"]]
    eos = cfg["text_config"].get("eos_token_id")
    if eos is not None and eos not in stop:
        stop.append(eos)
    dec = Decoder(cfg["text_config"], W, "model.text_model.", "lm_head.weight")
    ids = tok.encode(text, True)
    image_id = tok.vocab["<image>"]
    n_img = feats.shape[0]
    assert ids.count(image_id) == n_img, (ids.count(image_id), n_img)
    emb_ids = [-1 if i == image_id else i for i in ids]
    rows_f = [[float(x) for x in r] for r in feats]
    embeds, k = [], 0
    for i in emb_ids:
        if i < 0:
            embeds.append(rows_f[k])
            k += 1
        else:
            embeds.append([0.0] * dec.C)
    logits, greedy = dec.generate(emb_ids, embeds, 20, 1.0, stop)
    ref = {"prompt": PROMPT, "rows": rows, "cols": cols, "images": len(frames), "ids": ids,
           "image_id": image_id, "n_image": n_img, "stop": stop,
           "logits": [float(x) for x in logits], "greedy": greedy,
           "text": tok.decode([i for i in greedy if i in tok.id2tok], True)}
    with open(os.path.join(d, "ref_split.json"), "w") as f:
        json.dump(ref, f)
    print(name, "split %dx%d" % (rows, cols), "tokens", len(ids), "image rows", n_img,
          "greedy", greedy)


if __name__ == "__main__":
    for n in ("llava15", "idefics3", "llava_qwen"):
        run(n)
    run_split("idefics3")
