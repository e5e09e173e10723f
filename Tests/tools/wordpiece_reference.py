"""Writes a multilingual test corpus and the reference WordPiece ids for it.

The ids come from Hugging Face `tokenizers` (BertWordPieceTokenizer(vocab, lowercase=True),
add_special_tokens=False), the reference mulan's tokenizer must equal id for id.

Usage: wordpiece_reference.py VOCAB CORPUS_OUT IDS_OUT LINES SEED
Lines are separated by "\\n" only; no line contains "\\n".
"""
import random
import sys

from tokenizers import BertWordPieceTokenizer

vocab_path, corpus_path, ids_path, count, seed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
rng = random.Random(seed)
vocab = [w for w in (l.rstrip("\n") for l in open(vocab_path, encoding="utf-8")) if w and not w.startswith("[")]
words = [w for w in vocab if not w.startswith("##")]
pieces = [w[2:] for w in vocab if w.startswith("##")]

def pick(ranges):
    lo, hi = rng.choice(ranges)
    return chr(rng.randint(lo, hi))

LATIN_ACCENTED = [(0x00C0, 0x024F), (0x1E00, 0x1EFF)]
CYRILLIC = [(0x0400, 0x04FF)]
ARABIC = [(0x0600, 0x06FF), (0xFB50, 0xFDFF)]
CJK = [(0x4E00, 0x9FFF), (0x3040, 0x30FF), (0xAC00, 0xD7A3), (0x3400, 0x4DBF), (0xF900, 0xFAFF), (0x20000, 0x2A6DF)]
EMOJI = [(0x1F300, 0x1F5FF), (0x1F600, 0x1F64F), (0x1F900, 0x1F9FF), (0x2600, 0x27BF), (0x1FA70, 0x1FAFF)]
MARKS = [(0x0300, 0x036F), (0x0483, 0x0489), (0x0591, 0x05BD), (0x064B, 0x065F), (0x20D0, 0x20FF), (0x1AB0, 0x1AFF)]
CONTROLS = [(0x0001, 0x0008), (0x000B, 0x000C), (0x000E, 0x001F), (0x007F, 0x009F), (0x200B, 0x200F),
            (0x202A, 0x202E), (0x2060, 0x2064), (0xFEFF, 0xFEFF), (0xE000, 0xE0FF)]
SPACES = [(0x0009, 0x0009), (0x000D, 0x000D), (0x00A0, 0x00A0), (0x2000, 0x200A), (0x3000, 0x3000),
          (0x2028, 0x2029), (0x1680, 0x1680)]
PUNCT = [(0x0021, 0x002F), (0x003A, 0x0040), (0x005B, 0x0060), (0x007B, 0x007E), (0x00A1, 0x00BF),
         (0x2010, 0x2027), (0x3001, 0x3003), (0xFF01, 0xFF0F), (0x2E00, 0x2E5D)]

def any_scalar():
    while True:
        c = rng.randint(0x80, 0x10FFFF) if rng.random() < 0.7 else rng.randint(0x80, 0xFFFF)
        if not (0xD800 <= c <= 0xDFFF):
            return chr(c)

def token():
    r = rng.random()
    if r < 0.45:
        w = rng.choice(words)
        if rng.random() < 0.3:
            w += rng.choice(pieces)
        if rng.random() < 0.15:
            w = w.capitalize() if rng.random() < 0.5 else w.upper()
        return w
    if r < 0.55:
        return "".join(pick(LATIN_ACCENTED) for _ in range(rng.randint(1, 8)))
    if r < 0.60:
        return "".join(pick(CYRILLIC) for _ in range(rng.randint(1, 10)))
    if r < 0.65:
        return "".join(pick(ARABIC) for _ in range(rng.randint(1, 8)))
    if r < 0.72:
        return "".join(pick(CJK) for _ in range(rng.randint(1, 6)))
    if r < 0.76:
        return "".join(pick(EMOJI) for _ in range(rng.randint(1, 3)))
    if r < 0.80:
        return rng.choice(words) + "".join(pick(MARKS) for _ in range(rng.randint(1, 6)))
    if r < 0.84:
        return "".join(pick(PUNCT) for _ in range(rng.randint(1, 12)))
    if r < 0.87:
        return rng.choice(words) + pick(CONTROLS) + rng.choice(words)
    if r < 0.89:
        return "".join(rng.choice("abcdefghijklmnopqrstuvwxyzé") for _ in range(rng.randint(90, 130)))
    if r < 0.92:
        return "".join(any_scalar() for _ in range(rng.randint(1, 4)))
    if r < 0.95:
        return str(rng.randint(0, 10**rng.randint(1, 12)))
    return rng.choice(["http://example.com/a?b=c", "#hiphop", "@user_01", "rock'n'roll", "don't",
                       "e-mail", "C++", "Ⅻ", "ﬁne", "Ｆｕｌｌ", "ＡＢＣ", "½", "x²", "İstanbul", "ǅ", "ß", "ẞ"])

# Lines are drawn from a large pool of generated tokens and separators (fast, and still varied).
POOL = [token() for _ in range(200_000)]
SEPARATORS = [" "] * 24 + [pick(SPACES) for _ in range(2)] + ["", ", ", " - ", "... "]

def line():
    if rng.random() < 0.02:
        return ""
    n = rng.randint(1, 16)
    toks = rng.choices(POOL, k=n)
    seps = rng.choices(SEPARATORS, k=n)
    return "".join(t + s for t, s in zip(toks, seps))

tok = BertWordPieceTokenizer(vocab_path, lowercase=True)
with open(corpus_path, "w", encoding="utf-8", newline="\n") as corpus, open(ids_path, "w") as ids:
    batch = []
    def flush():
        for enc in tok.encode_batch(batch, add_special_tokens=False):
            ids.write(" ".join(map(str, enc.ids)) + "\n")
        batch.clear()
    for _ in range(count):
        text = line()
        corpus.write(text + "\n")
        batch.append(text)
        if len(batch) == 10000:
            flush()
    flush()
