#!/usr/bin/env python3
"""ref_tokenizer.py - independent reference for shoebox's CLIP tokenizer, and the generator of
tests/data/tokenizer/clip_cases.jsonl.

Written from the Hugging Face definitions, not from our C code:
  * transformers convert_slow_tokenizer.CLIPConverter builds CLIPTokenizerFast's pipeline:
      normalizer    Sequence[NFC, Replace(Regex(r"\\s+"), " "), Lowercase]
      pre_tokenizer Sequence[Split(Regex(CLIP_PATTERN), behavior="removed", invert=True),
                             ByteLevel(add_prefix_space=False)]
      model         BPE(continuing_subword_prefix="", end_of_word_suffix="</w>", unk_token)
      post          RobertaProcessing(cls=<|startoftext|>, sep=<|endoftext|>)
  * the BPE loop and bytes_to_unicode() are those of transformers
    models/clip/tokenization_clip.py (CLIPTokenizer.bpe).
  * tokenizers' Lowercase normalizer is Rust char::to_lowercase applied per character, so it
    has no final-sigma context: we lower each character on its own (str.lower() on a 1-char
    string), not the whole string.
  * added tokens (<|startoftext|>, <|endoftext|>) typed in the text are split out before the
    pre-tokenizer (tokenizers AddedVocabulary: non-normalized ones on the raw text, normalized
    ones on the normalized text, leftmost-longest).
  * invalid UTF-8 input: bytes.decode("utf-8", "replace") (shoebox's documented choice).

Needs python3-regex (Debian package; installed here already, `apt-get install -y
python3-regex` otherwise) for \\p{L} / \\p{N}. Its \\s is the Unicode White_Space set, the same
as Oniguruma's (which HF tokenizers uses). Also computes the slow CLIPTokenizer result (the
BasicTokenizer path used when ftfy is absent) to report where slow and fast differ.

Usage: tools/ref_tokenizer.py [--vocab V --merges M --config C] [--out FILE] [--text TEXT]
"""
import argparse
import json
import os
import random
import sys
import unicodedata

import regex

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "tests", "data", "tokenizer")

CLIP_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(2**8):
        if b not in bs:
            bs.append(b)
            cs.append(2**8 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def get_pairs(word):
    return set(zip(word, word[1:]))


class ClipRef:
    def __init__(self, vocab_path, merges_path, config_path=None):
        with open(vocab_path, encoding="utf-8") as f:
            self.encoder = json.load(f)
        with open(merges_path, encoding="utf-8") as f:
            merges = f.read().strip().split("\n")[1:49152 - 256 - 2 + 1]
        self.bpe_ranks = {tuple(m.split()): i for i, m in enumerate(merges)}
        self.byte_encoder = bytes_to_unicode()
        self.pat = regex.compile(CLIP_PATTERN)
        cfg = {}
        if config_path and os.path.exists(config_path):
            with open(config_path, encoding="utf-8") as f:
                cfg = json.load(f)

        def special(key, default):
            v = cfg.get(key, default)
            if isinstance(v, dict):
                return v["content"], v.get("normalized", True)
            return v, True

        self.bos, bos_norm = special("bos_token", "<|startoftext|>")
        self.eos, eos_norm = special("eos_token", "<|endoftext|>")
        self.unk, unk_norm = special("unk_token", "<|endoftext|>")
        self.added = {}  # content -> (id, normalized)
        for content, norm in ((self.bos, bos_norm), (self.eos, eos_norm), (self.unk, unk_norm)):
            self.added[content] = (self.encoder[content], norm)
        self.bos_id = self.encoder[self.bos]
        self.eos_id = self.encoder[self.eos]
        self.unk_id = self.encoder[self.unk]

    # --- fast tokenizer (tokenizers pipeline) -------------------------------------------------
    def bpe(self, token):
        word = tuple(token[:-1]) + (token[-1] + "</w>",)
        pairs = get_pairs(word)
        if not pairs:
            return list(word)
        while True:
            bigram = min(pairs, key=lambda p: self.bpe_ranks.get(p, float("inf")))
            if bigram not in self.bpe_ranks:
                break
            first, second = bigram
            new_word = []
            i = 0
            while i < len(word):
                try:
                    j = word.index(first, i)
                except ValueError:
                    new_word.extend(word[i:])
                    break
                new_word.extend(word[i:j])
                i = j
                if word[i] == first and i < len(word) - 1 and word[i + 1] == second:
                    new_word.append(first + second)
                    i += 2
                else:
                    new_word.append(word[i])
                    i += 1
            word = tuple(new_word)
            if len(word) == 1:
                break
            pairs = get_pairs(word)
        return list(word)

    @staticmethod
    def normalize(text):
        text = unicodedata.normalize("NFC", text)
        text = regex.sub(r"\s+", " ", text)
        return "".join(c.lower() for c in text)  # char::to_lowercase, no final sigma

    def split_added(self, text, normalized):
        """Leftmost-longest split on the added tokens of one kind: [(str, id or None)]."""
        toks = [c for c, (_, n) in self.added.items() if n == normalized]
        out, start, i = [], 0, 0
        while i < len(text):
            best = None
            for c in toks:
                if text.startswith(c, i) and (best is None or len(c) > len(best)):
                    best = c
            if best is None:
                i += 1
                continue
            out.append((text[start:i], None))
            out.append((best, self.added[best][0]))
            i += len(best)
            start = i
        out.append((text[start:], None))
        return out

    def encode_words(self, text):
        ids = []
        for word in self.pat.findall(text):
            mapped = "".join(self.byte_encoder[b] for b in word.encode("utf-8"))
            for t in self.bpe(mapped):
                ids.append(self.encoder.get(t, self.unk_id))
        return ids

    def encode(self, data, max_len=77):
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        ids = []
        for raw, rid in self.split_added(text, False):
            if rid is not None:
                ids.append(rid)
                continue
            for piece, nid in self.split_added(self.normalize(raw), True):
                ids.extend([nid] if nid is not None else self.encode_words(piece))
        if max_len is not None:
            ids = ids[:max_len - 2]
        return [self.bos_id] + ids + [self.eos_id]

    # --- slow CLIPTokenizer without ftfy (BasicTokenizer), only to report differences ----------
    def encode_slow(self, text, max_len=77):
        def is_ws(c):
            return c in " \t\n\r" or unicodedata.category(c) == "Zs"

        def is_ctrl(c):
            return c not in "\t\n\r" and unicodedata.category(c).startswith("C")

        def is_cjk(cp):
            return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
                    or 0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F
                    or 0x2B820 <= cp <= 0x2CEAF or 0xF900 <= cp <= 0xFAFF
                    or 0x2F800 <= cp <= 0x2FA1F)

        ids = []
        t = "".join(" " if is_ws(c) else c for c in text
                    if not (ord(c) == 0 or ord(c) == 0xFFFD or is_ctrl(c)))
        t = "".join(f" {c} " if is_cjk(ord(c)) else c for c in t)
        t = unicodedata.normalize("NFC", t)
        t = " ".join(w.lower() for w in t.strip().split())
        pat = regex.compile(r"<\|startoftext\|>|<\|endoftext\|>|" + CLIP_PATTERN,
                            regex.IGNORECASE)
        for word in pat.findall(t):
            if word in self.added:
                ids.append(self.added[word][0])
                continue
            mapped = "".join(self.byte_encoder[b] for b in word.encode("utf-8"))
            ids.extend(self.encoder.get(x, self.unk_id) for x in self.bpe(mapped))
        ids = ids[:max_len - 2]
        return [self.bos_id] + ids + [self.eos_id]


def cases():
    """Test strings: hand-picked, then seeded random mixes. Items are str or bytes."""
    c = [
        "a photo of a cat", "A  Photo of a CAT ", "", " ", "\t\n", "a", "A", "I",
        "a photo of a dog", "a photo of a golden retriever on the beach at sunset",
        "don't I'll we've they're she'd he's you'm it'd", "DON'T WE'VE", "'s", "'s'", "''s",
        "rock'n'roll", "o'clock", "can't won't shouldn't", "'twas", "y'all",
        "1234 3.14 1,000,000 0.5% -42 +7", "2023-08-14 12:30:59", "4k 8K 1080p 35mm f/1.8",
        "½ ¾ ² ³ Ⅻ ⑤ ٣ ४ ๓", "café naïve Ångström résumé", "cafe\u0301 e\u0301te\u0301",
        "A\u030a", "Å Å Å", "東京タワー", "東京 タワー の 夜景", "北京欢迎你", "한국어 사진",
        "日本語のテキストです。", "🐶🏖️", "🐶 🏖️ ❤️ 👍🏽", "👨‍👩‍👧‍👦 family", "🇫🇷 flag",
        "ΟΔΥΣΣΕΥΣ", "Οδυσσεύς", "ὈΔΥΣΣΕΎΣ", "σ ς Σ", "ΣΑΣ", "İstanbul", "İ", "ISTANBUL ıi",
        "Straße STRASSE ß ẞ", "ǅemal ǈ ǋ", "ﬁre ﬂower", "ＡＢＣ ａｂｃ １２３ ！？", "Ｈｅｌｌｏ",
        "https://example.com/path?q=1&x=y#frag", "www.shoebox.photos/index.html",
        "user@example.com", "#sunset #beach #nofilter", "@someone hello", "$100 €50 £20 ¥1000",
        "it’s a dog’s life", "‘quoted’ “double”", "«guillemets» „low“", "zero\u200bwidth",
        "zw\u200djoiner", "soft\u00adhyphen", "non\u00a0breaking\u00a0space", "ideo\u3000space",
        "em\u2003space", "nel\u0085next", "line\u2028sep", "para\u2029sep", "fs\x1cgs\x1dus\x1f",
        "tab\there", "new\nline", "cr\r\nlf", "  leading", "trailing  ", "  both  ",
        "many     spaces     between", "\t\tlots\n\n\nof\r\nwhitespace\t",
        "hello, world!", "Hello... World!!!", "what?!?", "(parenthesis) [brackets] {braces}",
        "a-b_c.d/e\\f", "***stars***", "--dashes-- —em– –en–", "~tilde~ `backtick` ^caret^",
        "<html><body>test</body></html>", "&amp; &lt; &gt; &quot;", "C++ C# F# .NET",
        "<|startoftext|>", "<|endoftext|>", "a <|endoftext|> b", "cat<|endoftext|>dog",
        "<|ENDOFTEXT|>", "<|startoftext|><|endoftext|>", "<|endoftext", "<|", "|>",
        "mañana piñata jalapeño", "Zürich Köln Düsseldorf", "Łódź Kraków Gdańsk",
        "Čeština Ďábel Řeřicha", "Ελληνικά λέξεις", "Русский текст фотография кошки",
        "Українська ґ є ї", "עברית שלום", "العربية صورة قطة", "हिन्दी फोटो", "தமிழ் படம்",
        "ภาษาไทย รูปภาพ", "Tiếng Việt ảnh mèo", "Ελλάς Ἑλλάς", "ﷺ ﷽", "\u0301", "e\u0301\u0301",
        "x\u0308y\u0327", "a\u0000b", "\u0000", "\x7f\x01\x02", "\ufeffbom", "\ufffd",
        "\U0001d400\U0001d401 math bold", "𝔉𝔯𝔞𝔨𝔱𝔲𝔯", "™ © ®", "° ± × ÷", "← ↑ → ↓", "∑∫√∞",
        "♠♣♥♦", "★☆✓✗", "𠀀 𪜀 CJK ext", "ｶﾀｶﾅ halfwidth", "Ⓐⓑⓒ circled", "ℌℑℜ",
        "a photo of a cat" * 10,
        " ".join(["supercalifragilisticexpialidocious"] * 20),
        "word " * 100, "1" * 100, "!" * 200, "東" * 300, "a" * 500,
        "the quick brown fox jumps over the lazy dog " * 5,
        "Pneumonoultramicroscopicsilicovolcanoconiosis",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "ababababababababababababababababababab", "lowercase UPPERCASE MiXeD CaSe",
        "IMG_0042.JPG DSC01234.ARW", "2019/07/04 vacation - beach (1).jpg",
    ]
    # invalid UTF-8, as bytes
    c += [b"\xff", b"abc\xffdef", b"\xc3", b"\xc3(", b"\xe2\x82", b"\xe2\x82(", b"\xed\xa0\x80",
          b"\xf0\x80\x80\x80", b"\xc0\xaf", b"\xf4\x90\x80\x80", b"\xf0\x9f\x98", b"caf\xe9",
          b"\x80\x80\x80", b"ok \xf8\x88\x80\x80\x80 ok", b"\xef\xbb\xbf\xfe\xff"]
    rnd = random.Random(1234)
    frags = ["cat", "Dog", " ", "  ", "\t", "\n", "don't", "'s", "'ll", "1", "42", "3.14", ",",
             "!", "?", "...", "é", "e\u0301", "ß", "İ", "Σ", "ς", "東京", "タワー", "🐶", "🏖️",
             "\u200d", "’", "#", "@", "http://x.y", "ＡＢ", "ǅ", "Ω", "<|endoftext|>", "\u00a0",
             "\x00", "\ufffd", "mountain", "lake", "sunset", "portrait", "of", "a", "the", "-",
             "_", "(", ")", "\"", "'", "snow", "ñ", "Ü", "ø", "ΑΒΓ", "кот", "😀😃", "½", "٣"]
    while len(c) < 260:
        n = rnd.randint(1, 25)
        c.append("".join(rnd.choice(frags) for _ in range(n)))
    return c


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vocab", default=os.path.join(DATA, "clip", "vocab.json"))
    ap.add_argument("--merges", default=os.path.join(DATA, "clip", "merges.txt"))
    ap.add_argument("--config", default=os.path.join(DATA, "clip", "tokenizer_config.json"))
    ap.add_argument("--out", default=os.path.join(DATA, "clip_cases.jsonl"))
    ap.add_argument("--text", help="print the ids of one text and exit")
    a = ap.parse_args()
    ref = ClipRef(a.vocab, a.merges, a.config)
    if a.text is not None:
        print(" ".join(map(str, ref.encode(a.text))))
        return 0
    assert ref.encode("a photo of a cat") == [49406, 320, 1125, 539, 320, 2368, 49407]
    n_diff = 0
    with open(a.out, "w", encoding="utf-8") as f:
        for i, t in enumerate(cases()):
            data = t if isinstance(t, bytes) else t.encode("utf-8", "surrogatepass")
            for max_len in ([77, 10, 3, 2] if i % 7 == 0 else [77]):
                ids = ref.encode(data, max_len)
                row = {"hex": data.hex(), "text": data.decode("utf-8", "replace"),
                       "max_len": max_len, "ids": ids}
                if max_len == 77 and not isinstance(t, bytes):
                    slow = ref.encode_slow(t, max_len)
                    if slow != ids:
                        row["slow_ids"] = slow  # the slow CLIPTokenizer (no ftfy) differs
                        n_diff += 1
                f.write(json.dumps(row, ensure_ascii=True) + "\n")
    print(f"wrote {a.out}; slow tokenizer differs on {n_diff} texts", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
