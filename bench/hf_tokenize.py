"""The reference for bench/tokenize-vs-hf.sh: Hugging Face tokenizers' BertWordPieceTokenizer
encoding a corpus line by line into space-separated ids, as `mulan-filter tokenize` does.

Usage: hf_tokenize.py VOCAB CORPUS OUT MODE   (MODE: batch = encode_batch over 10,000-line chunks;
       line = one encode() call per line). Run with TOKENIZERS_PARALLELISM=false for one thread.
"""
import sys
from tokenizers import BertWordPieceTokenizer

vocab, corpus, out, mode = sys.argv[1:5]
tok = BertWordPieceTokenizer(vocab, lowercase=True)
with open(corpus, encoding="utf-8", newline="\n") as f, open(out, "w") as o:
    if mode == "line":
        for line in f:
            o.write(" ".join(map(str, tok.encode(line.rstrip("\n"), add_special_tokens=False).ids)) + "\n")
    else:
        batch = []
        for line in f:
            batch.append(line.rstrip("\n"))
            if len(batch) == 10000:
                for e in tok.encode_batch(batch, add_special_tokens=False):
                    o.write(" ".join(map(str, e.ids)) + "\n")
                batch.clear()
        for e in tok.encode_batch(batch, add_special_tokens=False):
            o.write(" ".join(map(str, e.ids)) + "\n")
