"""Runs Hugging Face transformers' BertModel (PyTorch, CPU, float32) on given token ids: the
reference the pretrained text tower must equal.

Usage: bert_reference.py MODEL_DIR IDS_JSON HIDDEN_OUT POOLED_OUT [THREADS]

IDS_JSON: {"batches": [{"length": L, "ids": [[...L ids...], ...], "lengths": [n, ...]}, ...]}
(rows padded to L; the first n ids of a row are valid, the attention mask covers them).

HIDDEN_OUT: raw little-endian float32, for each batch and each row in order, the last hidden
states of the row's n valid positions ([n, hidden]). POOLED_OUT: raw float32, [rows, hidden], the
mean of those n states (sentence-transformers' mean pooling with the attention mask). Prints one
JSON line: {"rows": ..., "hidden": ..., "seconds": ...}.
"""
import json
import sys
import time

import numpy as np
import torch
from transformers import BertModel

model_dir, ids_path, hidden_path, pooled_path = sys.argv[1:5]
threads = int(sys.argv[5]) if len(sys.argv) > 5 else 1
torch.set_num_threads(threads)

model = BertModel.from_pretrained(model_dir, add_pooling_layer=False, attn_implementation="eager").float()
model.eval()
batches = json.load(open(ids_path))["batches"]

rows = 0
seconds = 0.0
with open(hidden_path, "wb") as hidden_out, open(pooled_path, "wb") as pooled_out, torch.inference_mode():
    for batch in batches:
        ids = torch.tensor(batch["ids"], dtype=torch.long)
        lengths = batch["lengths"]
        mask = torch.zeros_like(ids)
        for r, n in enumerate(lengths):
            mask[r, :n] = 1
        started = time.perf_counter()
        out = model(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids)).last_hidden_state
        m = mask.unsqueeze(-1).to(out.dtype)
        pooled = (out * m).sum(1) / m.sum(1).clamp(min=1e-9)
        seconds += time.perf_counter() - started
        h = out.numpy().astype("<f4")
        for r, n in enumerate(lengths):
            hidden_out.write(np.ascontiguousarray(h[r, :n]).tobytes())
        pooled_out.write(np.ascontiguousarray(pooled.numpy().astype("<f4")).tobytes())
        rows += len(lengths)

print(json.dumps({"rows": rows, "hidden": model.config.hidden_size, "seconds": seconds}))
