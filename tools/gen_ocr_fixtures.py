#!/usr/bin/python3
"""gen_ocr_fixtures.py - images with known words for tests/test_ocr.c and tests/e2e_ocr.sh.

Run with Debian's python3 (it has PIL): /usr/bin/python3 tools/gen_ocr_fixtures.py
Needs fonts-dejavu-core. Writes tests/data/ocr/gen_*.{png,jpg} and tests/data/ocr/expected.tsv
(file, kind, expected text). Deterministic: same fonts and PIL give the same files.

kind: "text" images must be read with low character error; "hard" ones are measured but
known to defeat Tesseract (white outlined letters over a busy photo); the rest (scan,
handwriting, tiny) are read for robustness only. Backgrounds are the repo's samples/ photos (licences in
samples/MANIFEST.tsv). The real-world text images copied from ../shared/testdata are listed
in expected.tsv too (their text transcribed by hand).
"""
import os
import random

from PIL import Image, ImageDraw, ImageFont

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(REPO, "tests", "data", "ocr")
SAMPLES = os.path.join(REPO, "samples")
FONTS = "/usr/share/fonts/truetype/dejavu"


def font(name, size):
    return ImageFont.truetype(os.path.join(FONTS, name), size)


def centered(draw, y, text, f, w, **kw):
    box = draw.textbbox((0, 0), text, font=f, **{k: v for k, v in kw.items() if k == "stroke_width"})
    draw.text(((w - (box[2] - box[0])) // 2, y), text, font=f, **kw)


def background(name, w, h):
    img = Image.open(os.path.join(SAMPLES, name)).convert("RGB")
    return img.resize((w, h), Image.BICUBIC)


def meme(bg, top, bottom, w=800, h=560, size=56):
    img = background(bg, w, h)
    d = ImageDraw.Draw(img)
    f = font("DejaVuSans-Bold.ttf", size)
    kw = dict(fill="white", stroke_width=3, stroke_fill="black")
    centered(d, 20, top, f, w, **kw)
    centered(d, h - size - 40, bottom, f, w, **kw)
    return img


def document(lines, fname, size, w=900, h=700, margin=60):
    img = Image.new("RGB", (w, h), (250, 250, 246))
    d = ImageDraw.Draw(img)
    y = margin
    for text, face, sz in lines:
        f = font(face or fname, sz or size)
        d.text((margin, y), text, font=f, fill=(20, 20, 20))
        y += int((sz or size) * 1.6)
    return img


def rotated_text(text, face, size, angle, w=900, h=300, fg=(10, 10, 60), bg=(235, 240, 250)):
    img = Image.new("RGB", (w, h), bg)
    d = ImageDraw.Draw(img)
    f = font(face, size)
    d.text((40, (h - size) // 2), text, font=f, fill=fg)
    return img.rotate(angle, expand=True, fillcolor=bg, resample=Image.BICUBIC)


def sign_on_photo(bg, lines, face, size, w=900, h=600):
    img = background(bg, w, h)
    over = Image.new("RGBA", img.size, (0, 0, 0, 0))
    d = ImageDraw.Draw(over)
    f = font(face, size)
    tw = max(d.textbbox((0, 0), t, font=f)[2] for t in lines)
    x0, y0 = (w - tw) // 2 - 30, 60
    d.rectangle((x0, y0, x0 + tw + 60, y0 + len(lines) * int(size * 1.4) + 40),
                fill=(250, 240, 215, 235), outline=(90, 40, 20, 255), width=4)
    for i, t in enumerate(lines):
        d.text((x0 + 30, y0 + 20 + i * int(size * 1.4)), t, font=f, fill=(90, 30, 10, 255))
    return Image.alpha_composite(img.convert("RGBA"), over).convert("RGB")


def terminal(lines, w=960, h=420):
    img = Image.new("RGB", (w, h), (30, 32, 36))
    d = ImageDraw.Draw(img)
    d.rectangle((0, 0, w, 28), fill=(60, 62, 68))
    f = font("DejaVuSansMono.ttf", 20)
    for i, t in enumerate(lines):
        d.text((16, 48 + i * 30), t, font=f, fill=(200, 230, 200))
    return img


def main():
    random.seed(9)
    os.makedirs(OUT, exist_ok=True)
    rows = []

    def save(img, name, kind, text, **kw):
        img.save(os.path.join(OUT, name), **kw)
        rows.append((name, kind, text))

    save(meme("rocket_launch_pad_night.jpg", "ONE DOES NOT SIMPLY", "WALK INTO MORDOR"),
         "gen_meme_one_does_not_simply.jpg", "text", "ONE DOES NOT SIMPLY WALK INTO MORDOR",
         quality=88)
    save(meme("cat_chelsea.png", "I CAN HAS", "CHEEZBURGER", size=64),
         "gen_meme_cat_cheezburger.jpg", "hard", "I CAN HAS CHEEZBURGER", quality=88)
    doc = [("INVOICE 2023", "DejaVuSerif-Bold.ttf", 44),
           ("Invoice number: 4711", None, None),
           ("Date: 14 March 2023", None, None),
           ("Customer: Harbour Books Ltd", None, None),
           ("Description: framed prints", None, None),
           ("Total due: 1234.56 EUR", "DejaVuSerif-Bold.ttf", 30)]
    save(document(doc, "DejaVuSerif.ttf", 28), "gen_doc_invoice_2023.png", "text",
         " ".join(t for t, _, _ in doc))
    save(sign_on_photo("coffee_cup.png", ["FRESH COFFEE", "OPEN DAILY"], "DejaVuSerif-Bold.ttf",
                       54), "gen_sign_fresh_coffee.jpg", "text", "FRESH COFFEE OPEN DAILY",
         quality=90)
    term = ["$ shoebox index ~/Pictures --ocr", "indexed 1204 photos in 93 seconds",
            "$ shoebox search --text receipt", "no photo matches well enough"]
    save(terminal(term), "gen_screenshot_terminal.png", "text", " ".join(term))
    save(rotated_text("Passport renewal form", "DejaVuSans.ttf", 48, 90),
         "gen_rotated_90.png", "text", "Passport renewal form")
    save(rotated_text("Library card expires soon", "DejaVuSerif.ttf", 44, 270),
         "gen_rotated_270.png", "text", "Library card expires soon")
    save(rotated_text("Parking permit zone seven", "DejaVuSans-Bold.ttf", 46, 6),
         "gen_tilted_6deg.png", "text", "Parking permit zone seven")
    sizes = [("Small print matters", 14), ("Medium sized words here", 20),
             ("Large headline text", 32)]
    img = Image.new("RGB", (700, 220), (255, 255, 255))
    d = ImageDraw.Draw(img)
    y = 20
    for t, s in sizes:
        d.text((20, y), t, font=font("DejaVuSans.ttf", s), fill=(0, 0, 0))
        y += int(s * 2.2)
    save(img, "gen_sizes_14_20_32.png", "text", " ".join(t for t, _ in sizes))
    save(document([("Café crème à la carte", "DejaVuSans.ttf", 40)], "DejaVuSans.ttf", 40,
                  w=760, h=180), "gen_accents_cafe_creme.png", "text", "Café crème à la carte")
    save(document([("Hello World", "DejaVuSansMono-Bold.ttf", 18)], "DejaVuSansMono.ttf", 18,
                  w=320, h=90, margin=20), "gen_tiny_hello_world.png", "text", "Hello World")

    with open(os.path.join(OUT, "expected.tsv"), "w", encoding="utf-8") as f:
        f.write("file\tkind\ttext\n")
        for r in rows:
            f.write("\t".join(r) + "\n")
        # copied from ../shared/testdata/photos (transcribed by hand)
        f.write("text_moby_dick_quote.png\ttext\tMen may seem detestable as joint "
                "stock-companies and nations; knaves, fools, and murderers there may be; "
                "men may have mean and meagre faces; but, man, in the ideal, is so noble and "
                "so sparkling, such a grand and glowing creature, that over any ignominious "
                "blemish in him all his fellows should run to throw their costliest robes.\n")
        f.write("text_scanned_page.png\tscan\t\n")
        f.write("text_handwritten_equations.png\thandwriting\t\n")
        f.write("meme_no_time_for_that_tiny.gif\ttiny\t\n")


if __name__ == "__main__":
    main()
