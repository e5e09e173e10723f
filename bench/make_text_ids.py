"""Writes the texts of the text-embedding benchmark as token ids ({"sequences": [[101, ..., 102], ...]}):
N texts mixing what MuLan's text sources look like: short tags and playlist titles, and description
sentences of 8-60 words; tokenized by Hugging Face tokenizers' BertWordPieceTokenizer (lowercase)
on VOCAB, truncated to MAX_LEN ids with [CLS] and [SEP]. Deterministic for a seed.

Usage: make_text_ids.py VOCAB OUT_JSON [N] [MAX_LEN] [SEED]
"""
import json
import random
import sys

from tokenizers import BertWordPieceTokenizer

vocab, out = sys.argv[1], sys.argv[2]
n = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
max_len = int(sys.argv[4]) if len(sys.argv) > 4 else 128
rng = random.Random(int(sys.argv[5]) if len(sys.argv) > 5 else 1)

instruments = ["piano", "acoustic guitar", "string quartet", "brass section", "flute", "church organ", "bass",
               "analog synth", "drums", "cello", "violin", "saxophone", "electric guitar", "harp"]
moods = ["calm", "melancholic", "uplifting", "dark", "dreamy", "energetic", "tense", "warm", "playful", "solemn"]
genres = ["jazz", "ambient", "rock", "classical", "hip hop", "lo-fi", "techno", "folk", "soul", "metal"]
tempos = ["slow", "mid-tempo", "fast", "laid-back", "driving", "groovy"]
places = ["a rainy evening", "a long drive", "studying", "the gym", "falling asleep", "a dinner party"]
openers = ["This track features", "The song opens with", "A recording of", "Here we hear", "The piece builds from"]


def tag():
    return rng.choice([rng.choice(instruments), rng.choice(moods), rng.choice(genres), rng.choice(tempos),
                       f"{rng.choice(moods)} {rng.choice(genres)}", f"{rng.choice(genres)} for {rng.choice(places)}"])


def sentence():
    words = [rng.choice(openers), f"a {rng.choice(tempos)} {rng.choice(instruments)} line"]
    while len(" ".join(words).split()) < rng.randint(8, 60):
        words.append(rng.choice([
            f"over a {rng.choice(moods)} {rng.choice(instruments)} part",
            f"with {rng.choice(genres)} influences",
            f"that suits {rng.choice(places)}",
            f"while the {rng.choice(instruments)} answers in a {rng.choice(moods)} mood",
            f"recorded at {rng.randint(60, 180)} bpm in {rng.choice('ABCDEFG')} {rng.choice(['major', 'minor'])}",
        ]))
    return " ".join(words) + "."


texts = [tag() if rng.random() < 0.5 else sentence() for _ in range(n)]
tokenizer = BertWordPieceTokenizer(vocab, lowercase=True)
sequences = []
for encoding in tokenizer.encode_batch(texts):
    ids = encoding.ids  # [CLS] ... [SEP]
    if len(ids) > max_len:
        ids = ids[:max_len - 1] + [ids[-1]]
    sequences.append(ids)
json.dump({"sequences": sequences}, open(out, "w"))
print(f"{len(sequences)} texts, {sum(map(len, sequences))} ids, longest {max(map(len, sequences))}")
