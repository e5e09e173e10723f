"""Text-embedding throughput of Hugging Face transformers' BertModel (PyTorch CPU, float32, inference
mode) on ready-made token ids: the reference side of a text-embedding benchmark against mulan's
pretrained text tower (last hidden states, then mean pooling over the attention mask).

Usage: text_embed_transformers.py MODEL_DIR IDS_JSON THREADS [REPEATS] [ATTENTION] [POOLED_OUT]
  IDS_JSON: {"batches": [{"length": L, "ids": [[...], ...], "lengths": [n, ...]}, ...]} (as
  Tests/tools/bert_reference.py reads); REPEATS (3) timed passes over every batch after one warm-up
  batch; ATTENTION: sdpa (default, what transformers picks) or eager; POOLED_OUT: raw float32
  [rows, hidden] of the last pass, to check the two sides computed the same.
Prints one JSON line: threads, rows, tokens, padded tokens, seconds per pass, best texts/s.
"""
import json
import sys
import time

import numpy as np
import torch
from transformers import BertModel

model_dir, ids_path, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
repeats = int(sys.argv[4]) if len(sys.argv) > 4 else 3
attention = sys.argv[5] if len(sys.argv) > 5 else "sdpa"
pooled_path = sys.argv[6] if len(sys.argv) > 6 else None
torch.set_num_threads(threads)

model = BertModel.from_pretrained(model_dir, add_pooling_layer=False, attn_implementation=attention).float().eval()
batches = []
for b in json.load(open(ids_path))["batches"]:
    ids = torch.tensor(b["ids"], dtype=torch.long)
    mask = torch.zeros_like(ids)
    for r, n in enumerate(b["lengths"]):
        mask[r, :n] = 1
    batches.append((ids, mask, torch.zeros_like(ids)))


def embed(ids, mask, types):
    h = model(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
    m = mask.unsqueeze(-1).to(h.dtype)
    return (h * m).sum(1) / m.sum(1).clamp(min=1e-9)


times = []
with torch.inference_mode():
    embed(*batches[0])
    for _ in range(repeats):
        started = time.perf_counter()
        outputs = [embed(*b) for b in batches]
        times.append(time.perf_counter() - started)
rows = sum(len(b[0]) for b in batches)
if pooled_path:
    np.concatenate([o.numpy() for o in outputs]).astype("<f4").tofile(pooled_path)
print(json.dumps({"threads": threads, "attention": attention, "rows": rows,
                  "tokens": int(sum(b[1].sum() for b in batches)), "padded_tokens": sum(b[0].numel() for b in batches),
                  "seconds": times, "texts_per_second": rows / min(times), "torch": torch.__version__}))
