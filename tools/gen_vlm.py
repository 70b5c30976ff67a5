#!/usr/bin/python3
"""gen_vlm.py - writes seeded random vision-language models in the exact Hugging Face layouts
into tests/data/vlm/<name>/ (config.json, model.safetensors, tokenizer.json,
tokenizer_config.json, preprocessor_config.json, processor_config.json where the model has one):

  llava15      LlavaForConditionalGeneration as llava-hf/llava-1.5-7b-hf: CLIP vision tower
               (vision_tower.vision_model.*, quick_gelu, CLS + pre_layrnorm), projector
               multi_modal_projector.linear_1/linear_2 with gelu, Llama language_model.model.*
               + language_model.lm_head, vision_feature_layer -2, select "default",
               metaspace tokenizer with <image>, CLIPImageProcessor (resize + crop). F16.
  idefics3     Idefics3ForConditionalGeneration as HuggingFaceTB/SmolVLM-256M-Instruct:
               model.vision_model.* (SigLIP-style, patch bias, no CLS, post_layernorm, no head),
               model.connector.modality_projection.proj after pixel shuffle (scale_factor 2),
               model.text_model.* Llama + lm_head, byte-level tokenizer with
               <fake_token_around_image> <global-img> <image> <end_of_utterance>,
               Idefics3ImageProcessor (longest_edge, max_image_size). F32.
  llava_qwen   LlavaForConditionalGeneration as llava-hf/llava-interleave-qwen-0.5b-hf: SigLIP
               vision tower (vision_tower.vision_model.*, gelu_pytorch_tanh, with an unused
               MAP head as the checkpoint carries it), Qwen2 language model, vision_feature_layer
               -1, select "full", SiglipImageProcessor (square resize). BF16.
plus tests/data/vlm/photo.png, the fixed input image (a 44x30 synthetic picture).

Tokenizers come from tools/gen_lm.py (same trained merges). Run with Debian's python3:
/usr/bin/python3 tools/gen_vlm.py, then tools/ref_vlm.py computes the expected outputs.
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_lm  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "data", "vlm")

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def add_token(tj, content, special=True):
    vocab = tj["model"]["vocab"]
    i = max(vocab.values()) + 1
    tj["added_tokens"].append(gen_lm.added(i, content, special))
    vocab[content] = i
    return i


def vision_weights(rng, t, prefix, v, siglip, head=False):
    C, F, p, S = v["hidden_size"], v["intermediate_size"], v["patch_size"], v["image_size"]
    N = (S // p) ** 2

    def lin(name, n_out, n_in, bias=True):
        t.append((name + ".weight", rng.standard_normal((n_out, n_in)) / np.sqrt(n_in)))
        if bias:
            t.append((name + ".bias", 0.1 * rng.standard_normal(n_out)))

    def ln(name, c):
        t.append((name + ".weight", 1.0 + 0.1 * rng.standard_normal(c)))
        t.append((name + ".bias", 0.1 * rng.standard_normal(c)))

    e = prefix + "embeddings."
    t.append((e + "patch_embedding.weight", rng.standard_normal((C, 3, p, p)) / np.sqrt(3 * p * p)))
    if siglip:
        t.append((e + "patch_embedding.bias", 0.1 * rng.standard_normal(C)))
        t.append((e + "position_embedding.weight", 0.5 * rng.standard_normal((N, C))))
    else:
        t.append((e + "class_embedding", 0.5 * rng.standard_normal(C)))
        t.append((e + "position_embedding.weight", 0.5 * rng.standard_normal((N + 1, C))))
        ln(prefix + "pre_layrnorm", C)
    for i in range(v["num_hidden_layers"]):
        q = prefix + "encoder.layers.%d." % i
        ln(q + "layer_norm1", C)
        for n in ("q_proj", "k_proj", "v_proj", "out_proj"):
            lin(q + "self_attn." + n, C, C)
        ln(q + "layer_norm2", C)
        lin(q + "mlp.fc1", F, C)
        lin(q + "mlp.fc2", C, F)
    ln(prefix + "post_layernorm", C)
    if head:  # SiglipMultiheadAttentionPoolingHead: present in the file, unused by LLaVA
        t.append((prefix + "head.probe", rng.standard_normal((1, 1, C))))
        t.append((prefix + "head.attention.in_proj_weight", rng.standard_normal((3 * C, C))))
        t.append((prefix + "head.attention.in_proj_bias", rng.standard_normal(3 * C)))
        lin(prefix + "head.attention.out_proj", C, C)
        ln(prefix + "head.layernorm", C)
        lin(prefix + "head.mlp.fc1", F, C)
        lin(prefix + "head.mlp.fc2", C, F)


def text_weights(spec, vocab, rng, prefix, head_name):
    t = gen_lm.make_model(dict(spec, seed=spec["seed"] + 100), vocab)
    out = []
    for name, a in t:
        if name.startswith("model."):
            out.append((prefix + name[len("model."):], a))
        else:
            out.append((head_name, a))
    return out


def text_config(spec, vocab, ids):
    cfg = {"model_type": spec["arch"], "hidden_act": "silu", "hidden_size": spec["hidden"],
           "intermediate_size": spec["inter"], "num_hidden_layers": spec["layers"],
           "num_attention_heads": spec["heads"], "num_key_value_heads": spec["kv"],
           "max_position_embeddings": spec["max_pos"], "rms_norm_eps": spec["eps"],
           "rope_theta": spec["theta"], "tie_word_embeddings": spec["tie"], "vocab_size": vocab}
    cfg.update(ids)
    return cfg


def write_json(d, name, obj):
    with open(os.path.join(d, name), "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=2)


def tok_config_llama(template):
    return {"add_bos_token": True, "add_eos_token": False, "bos_token": "<s>",
            "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>", "legacy": False,
            "model_max_length": 4096, "tokenizer_class": "LlamaTokenizer",
            "chat_template": template}


def llava15():
    d = os.path.join(OUT, "llava15")
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(31)
    tj, vocab = gen_lm.metaspace_tokenizer(300)
    image_id = tj["model"]["vocab"]["<image>"]
    pad_id = tj["model"]["vocab"]["<pad>"]
    vocab = (vocab + 63) // 64 * 64  # llava-1.5 pads 32002 rows to 32064
    write_json(d, "tokenizer.json", tj)
    write_json(d, "tokenizer_config.json", tok_config_llama(gen_lm.TEMPLATE_LLAVA15))
    spec = dict(name="llava15", seed=31, arch="llama", hidden=48, inter=96, layers=2, heads=4,
                kv=4, tie=False, theta=10000.0, eps=1e-5, max_pos=256)
    v = {"model_type": "clip_vision_model", "hidden_size": 32, "intermediate_size": 64,
         "num_hidden_layers": 3, "num_attention_heads": 4, "image_size": 30, "patch_size": 6,
         "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5, "projection_dim": 24}
    cfg = {"architectures": ["LlavaForConditionalGeneration"], "model_type": "llava",
           "ignore_index": -100, "image_token_index": image_id, "pad_token_id": pad_id,
           "projector_hidden_act": "gelu", "vision_feature_layer": -2,
           "vision_feature_select_strategy": "default", "tie_word_embeddings": False,
           "torch_dtype": "float16", "transformers_version": "4.45.0",
           "vision_config": v,
           "text_config": dict(text_config(spec, vocab, {"bos_token_id": 1, "eos_token_id": 2,
                                                         "pad_token_id": pad_id}),
                               _name_or_path="lmsys/vicuna-7b-v1.5",
                               architectures=["LlamaForCausalLM"])}
    write_json(d, "config.json", cfg)
    write_json(d, "preprocessor_config.json", {
        "crop_size": {"height": 30, "width": 30}, "do_center_crop": True,
        "do_convert_rgb": True, "do_normalize": True, "do_rescale": True, "do_resize": True,
        "image_mean": CLIP_MEAN, "image_std": CLIP_STD,
        "image_processor_type": "CLIPImageProcessor", "processor_class": "LlavaProcessor",
        "resample": 3, "rescale_factor": 1 / 255, "size": {"shortest_edge": 30}})
    write_json(d, "processor_config.json", {"image_token": "<image>", "num_additional_image_tokens": 1,
                                            "patch_size": 6, "processor_class": "LlavaProcessor",
                                            "vision_feature_select_strategy": "default"})
    t = []
    vision_weights(rng, t, "vision_tower.vision_model.", v, siglip=False)
    C = v["hidden_size"]
    t.append(("multi_modal_projector.linear_1.weight", rng.standard_normal((48, C)) / np.sqrt(C)))
    t.append(("multi_modal_projector.linear_1.bias", 0.1 * rng.standard_normal(48)))
    t.append(("multi_modal_projector.linear_2.weight", rng.standard_normal((48, 48)) / np.sqrt(48)))
    t.append(("multi_modal_projector.linear_2.bias", 0.1 * rng.standard_normal(48)))
    t += text_weights(spec, vocab, rng, "language_model.model.", "language_model.lm_head.weight")
    gen_lm.write_safetensors(os.path.join(d, "model.safetensors"), t, "F16")
    print("wrote", d, "vocab", vocab, "image id", image_id)


def idefics3():
    d = os.path.join(OUT, "idefics3")
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(32)
    tj, vocab = gen_lm.byte_level_tokenizer("smollm", 300)
    gid = add_token(tj, "<global-img>")
    for r in range(1, 3):  # the split-image tokens the real vocabulary has (unused here)
        for c in range(1, 3):
            add_token(tj, "<row_%d_col_%d>" % (r, c))
    vocab = max(tj["model"]["vocab"].values()) + 1
    ids = tj["model"]["vocab"]
    write_json(d, "tokenizer.json", tj)
    write_json(d, "tokenizer_config.json", {
        "add_prefix_space": False, "bos_token": "<|im_start|>", "eos_token": "<end_of_utterance>",
        "pad_token": "<|im_end|>", "unk_token": "<|endoftext|>", "model_max_length": 8192,
        "tokenizer_class": "GPT2Tokenizer", "chat_template": gen_lm.TEMPLATE_IDEFICS3,
        "additional_special_tokens": ["<fake_token_around_image>", "<image>",
                                      "<end_of_utterance>"]})
    spec = dict(name="idefics3", seed=32, arch="llama", hidden=64, inter=128, layers=2,
                heads=4, kv=2, tie=False, theta=100000.0, eps=1e-5, max_pos=512)
    v = {"model_type": "idefics3_vision", "hidden_size": 32, "intermediate_size": 48,
         "num_hidden_layers": 2, "num_attention_heads": 2, "image_size": 32, "patch_size": 4,
         "hidden_act": "gelu_pytorch_tanh", "layer_norm_eps": 1e-6, "num_channels": 3}
    scale = 2
    cfg = {"architectures": ["Idefics3ForConditionalGeneration"], "model_type": "idefics3",
           "image_token_id": ids["<image>"], "scale_factor": scale, "pad_token_id": 2,
           "tie_word_embeddings": False, "torch_dtype": "float32", "use_cache": True,
           "transformers_version": "4.46.0", "vision_config": v,
           "text_config": dict(text_config(spec, vocab, {"bos_token_id": 1, "eos_token_id": 2,
                                                         "pad_token_id": 2}),
                               _name_or_path="HuggingFaceTB/SmolLM2-135M-Instruct",
                               architectures=["VLlama3ForCausalLM"])}
    write_json(d, "config.json", cfg)
    write_json(d, "preprocessor_config.json", {
        "do_convert_rgb": True, "do_image_splitting": False, "do_normalize": True,
        "do_pad": True, "do_rescale": True, "do_resize": True,
        "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
        "image_processor_type": "Idefics3ImageProcessor",
        "max_image_size": {"longest_edge": 32}, "processor_class": "Idefics3Processor",
        "resample": 1, "rescale_factor": 1 / 255, "size": {"longest_edge": 128}})
    n_img = (32 // 4) ** 2 // (scale * scale)
    write_json(d, "processor_config.json", {"image_seq_len": n_img,
                                            "processor_class": "Idefics3Processor"})
    t = []
    vision_weights(rng, t, "model.vision_model.", v, siglip=True)
    K = v["hidden_size"] * scale * scale
    t.append(("model.connector.modality_projection.proj.weight",
              rng.standard_normal((64, K)) / np.sqrt(K)))
    t += text_weights(spec, vocab, rng, "model.text_model.", "lm_head.weight")
    gen_lm.write_safetensors(os.path.join(d, "model.safetensors"), t, "F32")
    print("wrote", d, "vocab", vocab, "global-img", gid)


def llava_qwen():
    d = os.path.join(OUT, "llava_qwen")
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(33)
    tj, vocab = gen_lm.byte_level_tokenizer("qwen", 300)
    ids = tj["model"]["vocab"]
    vocab = (vocab + 63) // 64 * 64
    write_json(d, "tokenizer.json", tj)
    write_json(d, "tokenizer_config.json", {
        "add_prefix_space": False, "bos_token": None, "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>", "model_max_length": 32768,
        "tokenizer_class": "Qwen2Tokenizer", "chat_template": gen_lm.TEMPLATE_LLAVA_QWEN})
    spec = dict(name="llava_qwen", seed=33, arch="qwen2", hidden=64, inter=96, layers=2,
                heads=4, kv=2, tie=True, theta=1000000.0, eps=1e-6, max_pos=512)
    v = {"model_type": "siglip_vision_model", "hidden_size": 32, "intermediate_size": 64,
         "num_hidden_layers": 2, "num_attention_heads": 4, "image_size": 24, "patch_size": 6,
         "hidden_act": "gelu_pytorch_tanh", "layer_norm_eps": 1e-6, "vision_use_head": True}
    cfg = {"architectures": ["LlavaForConditionalGeneration"], "model_type": "llava",
           "image_token_index": ids["<image>"], "projector_hidden_act": "gelu",
           "vision_feature_layer": -1, "vision_feature_select_strategy": "full",
           "tie_word_embeddings": True, "torch_dtype": "bfloat16",
           "transformers_version": "4.45.0", "vision_config": v,
           "text_config": dict(text_config(spec, vocab, {"bos_token_id": ids["<|endoftext|>"],
                                                         "eos_token_id": ids["<|im_end|>"]}),
                               _name_or_path="Qwen/Qwen1.5-0.5B-Chat",
                               architectures=["Qwen2ForCausalLM"])}
    write_json(d, "config.json", cfg)
    write_json(d, "preprocessor_config.json", {
        "do_convert_rgb": None, "do_normalize": True, "do_rescale": True, "do_resize": True,
        "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
        "image_processor_type": "SiglipImageProcessor", "processor_class": "LlavaProcessor",
        "resample": 3, "rescale_factor": 1 / 255, "size": {"height": 24, "width": 24}})
    write_json(d, "processor_config.json", {"image_token": "<image>", "num_additional_image_tokens": 0,
                                            "patch_size": 6, "processor_class": "LlavaProcessor",
                                            "vision_feature_select_strategy": "full"})
    t = []
    vision_weights(rng, t, "vision_tower.vision_model.", v, siglip=True, head=True)
    C = v["hidden_size"]
    t.append(("multi_modal_projector.linear_1.weight", rng.standard_normal((64, C)) / np.sqrt(C)))
    t.append(("multi_modal_projector.linear_1.bias", 0.1 * rng.standard_normal(64)))
    t.append(("multi_modal_projector.linear_2.weight", rng.standard_normal((64, 64)) / np.sqrt(64)))
    t.append(("multi_modal_projector.linear_2.bias", 0.1 * rng.standard_normal(64)))
    t += text_weights(spec, vocab, rng, "language_model.model.", "language_model.lm_head.weight")
    gen_lm.write_safetensors(os.path.join(d, "model.safetensors"), t, "BF16")
    print("wrote", d, "vocab", vocab)


def photo():
    from PIL import Image
    h, w = 30, 44
    y, x = np.mgrid[0:h, 0:w]
    r = (255 * x / (w - 1)).astype(np.uint8)
    g = (255 * y / (h - 1)).astype(np.uint8)
    b = np.where((x - 30) ** 2 + (y - 12) ** 2 < 64, 230, 40).astype(np.uint8)
    Image.fromarray(np.stack([r, g, b], -1), "RGB").save(os.path.join(OUT, "photo.png"))


def main():
    os.makedirs(OUT, exist_ok=True)
    llava15()
    idefics3()
    llava_qwen()
    photo()


if __name__ == "__main__":
    main()
