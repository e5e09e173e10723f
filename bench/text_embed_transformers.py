"""Text-embedding throughput of Hugging Face transformers' BertModel (PyTorch CPU, float32, inference
mode): the reference side of bench/text-embed-vs-transformers.sh. Batching as sentence-transformers'
encode() does it and as `mulan-embed text-bench` does: texts sorted by length (longest first, ties
in the given order), batches of BATCH, each padded to its longest row; mean pooling over the mask.

Usage: text_embed_transformers.py MODEL_DIR IDS_JSON THREADS [REPEATS] [BATCH] [POOLED_OUT]
  IDS_JSON: {"sequences": [[101, ..., 102], ...]}; REPEATS (3) timed passes over all texts after
  one warm-up batch; POOLED_OUT: raw float32 [rows, hidden] of the last pass in the given order.
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
batch_size = int(sys.argv[5]) if len(sys.argv) > 5 else 32
pooled_path = sys.argv[6] if len(sys.argv) > 6 else None
torch.set_num_threads(threads)

model = BertModel.from_pretrained(model_dir, add_pooling_layer=False).float().eval()
sequences = json.load(open(ids_path))["sequences"]
order = sorted(range(len(sequences)), key=lambda i: (-len(sequences[i]), i))
batches = []
for lo in range(0, len(order), batch_size):
    rows = order[lo:lo + batch_size]
    width = max(len(sequences[r]) for r in rows)
    ids = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for k, r in enumerate(rows):
        ids[k, :len(sequences[r])] = torch.tensor(sequences[r])
        mask[k, :len(sequences[r])] = 1
    batches.append((rows, ids, mask, torch.zeros_like(ids)))


def embed(ids, mask, types):
    h = model(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
    m = mask.unsqueeze(-1).to(h.dtype)
    return (h * m).sum(1) / m.sum(1).clamp(min=1e-9)


times = []
pooled = np.zeros((len(sequences), model.config.hidden_size), dtype="<f4")
with torch.inference_mode():
    embed(*batches[0][1:])
    for _ in range(repeats):
        started = time.perf_counter()
        for rows, ids, mask, types in batches:
            pooled[rows] = embed(ids, mask, types).numpy()
        times.append(time.perf_counter() - started)
if pooled_path:
    pooled.tofile(pooled_path)
print(json.dumps({"implementation": "transformers", "threads": threads, "rows": len(sequences),
                  "tokens": sum(len(s) for s in sequences), "padded_tokens": sum(b[1].numel() for b in batches),
                  "seconds": times, "texts_per_second": len(sequences) / min(times), "torch": torch.__version__}))
