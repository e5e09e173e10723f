"""The PyTorch twin of `mulan-train`'s default configuration, for bench/train-vs-pytorch.sh.

Same data (the train split of a mulan-shard dataset, read with webdataset), same front end
(FLAC decoded with soundfile, a random 10-s window, log-mel as librosa computes it, SpecAugment),
same model (the ResNet audio tower and the BERT text tower of Sources/MulanTraining), same loss
(symmetric contrastive, learnable temperature, decoupled denominator), same optimizer (AdamW,
weight decay on weights only, warm-up + cosine schedule, gradient clipping at 1.0) and batch size.
Eager PyTorch on CPU with `--threads` intra-op threads; data loading runs in the main process
(FLAC decoding on a pool of `--threads` threads), so the whole run uses as many threads as
mulan's `--threads`.

Usage: train_torch.py --dataset DIR --threads T --warmup N --steps M --out RESULT.json
Prints one line per step; writes per-step times, examples/s over the M timed steps (the N
warm-up steps excluded) and the time per phase (data, log-mel, model) to RESULT.json.
"""
import argparse
import os
import sys

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--dataset", required=True, help="mulan-shard dataset folder (holds dataset.json)")
parser.add_argument("--threads", type=int, default=1)
parser.add_argument("--warmup", type=int, default=3, help="steps before timing")
parser.add_argument("--steps", type=int, default=10, help="timed steps")
parser.add_argument("--batch-size", type=int, default=64)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--out", required=True)
args = parser.parse_args()

# Thread counts must be fixed before torch (and its OpenMP/MKL runtimes) start.
for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[var] = str(args.threads)

import io  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import random  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402

import librosa  # noqa: E402
import numpy as np  # noqa: E402
import soundfile  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import webdataset as wds  # noqa: E402

torch.set_num_threads(args.threads)
torch.set_num_interop_threads(args.threads)
torch.manual_seed(args.seed)
random.seed(args.seed)

# --- Configuration: mulan-train's defaults (Sources/MulanTraining/TrainingConfig.swift, ----------
#     AudioTower.swift, TextTower.swift, Sources/MulanDSP/LogMel.swift, TrainCommand.swift).
SAMPLE_RATE = 16000
WINDOW = 10 * SAMPLE_RATE            # 10-s training window
N_FFT, WIN, HOP, MELS = 512, 400, 160, 128
TOP_DB, AMIN = 80.0, 1e-10
FREQ_MASKS, FREQ_WIDTH, TIME_MASKS, TIME_WIDTH = 2, 15, 2, 50
AUDIO_WIDTHS, BLOCKS, EMBED = [32, 64, 128, 256], 1, 128
VOCAB, TEXT_WIDTH, TEXT_LAYERS, HEADS, FFN, MAX_LEN, LN_EPS = 30522, 256, 4, 4, 1024, 64, 1e-12
CLS, SEP, PAD = 101, 102, 0
LR, MIN_LR, WARMUP_STEPS, WEIGHT_DECAY, CLIP = 3e-4, 0.0, 100, 0.01, 1.0
TEMPERATURE = 0.1
MIX = {"tags": 2, "descriptions": 2, "playlists": 1, "aset": 1}   # restricted to what the split has
SHUFFLE = 1000


# --- The model ------------------------------------------------------------------------------------
class BasicBlock(nn.Module):
    """torchvision's BasicBlock: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        return F.relu(h + (x if self.downsample is None else self.downsample(x)))


class AudioTower(nn.Module):
    """[B, 128, T] log-mel → [B, 1, 128, T] → conv1 3×3/2 → BN → ReLU → MaxPool 2 → 4 stages →
    global average pool → fc → L2 normalization."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, AUDIO_WIDTHS[0], 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(AUDIO_WIDTHS[0])
        self.maxpool = nn.MaxPool2d(2)
        layers, channels = [], AUDIO_WIDTHS[0]
        for s, width in enumerate(AUDIO_WIDTHS):
            blocks = []
            for b in range(BLOCKS):
                blocks.append(BasicBlock(channels, width, 2 if (s > 0 and b == 0) else 1))
                channels = width
            layers.append(nn.Sequential(*blocks))
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(channels, EMBED)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")

    def forward(self, mel):
        h = self.maxpool(F.relu(self.bn1(self.conv1(mel.unsqueeze(1)))))
        h = self.layers(h).mean(dim=(2, 3))
        return F.normalize(self.fc(h), dim=-1, eps=1e-12)


class SelfAttention(nn.Module):
    """BERT self-attention: separate query/key/value/output projections, 1/√d scaling, keys at
    padded positions masked out."""

    def __init__(self):
        super().__init__()
        self.query = nn.Linear(TEXT_WIDTH, TEXT_WIDTH)
        self.key = nn.Linear(TEXT_WIDTH, TEXT_WIDTH)
        self.value = nn.Linear(TEXT_WIDTH, TEXT_WIDTH)
        self.output = nn.Linear(TEXT_WIDTH, TEXT_WIDTH)

    def forward(self, x, keep):
        b, n, w = x.shape

        def heads(t):
            return t.view(b, n, HEADS, w // HEADS).transpose(1, 2)

        ctx = F.scaled_dot_product_attention(heads(self.query(x)), heads(self.key(x)), heads(self.value(x)),
                                             attn_mask=keep[:, None, None, :])
        return self.output(ctx.transpose(1, 2).reshape(b, n, w))


class EncoderLayer(nn.Module):
    """BERT's post-LN layer without dropout: h = LN(x + Attn(x)); y = LN(h + W2·GELU(W1·h))."""

    def __init__(self):
        super().__init__()
        self.attention = SelfAttention()
        self.attention_norm = nn.LayerNorm(TEXT_WIDTH, eps=LN_EPS)
        self.intermediate = nn.Linear(TEXT_WIDTH, FFN)
        self.output = nn.Linear(FFN, TEXT_WIDTH)
        self.output_norm = nn.LayerNorm(TEXT_WIDTH, eps=LN_EPS)

    def forward(self, x, keep):
        h = self.attention_norm(x + self.attention(x, keep))
        return self.output_norm(h + self.output(F.gelu(self.intermediate(h))))


class TextTower(nn.Module):
    """Word + position + token-type (0) embeddings → LayerNorm → 4 encoder layers → [CLS] →
    projection → L2 normalization."""

    def __init__(self):
        super().__init__()
        self.word = nn.Embedding(VOCAB, TEXT_WIDTH)
        self.position = nn.Embedding(MAX_LEN, TEXT_WIDTH)
        self.token_type = nn.Embedding(2, TEXT_WIDTH)
        self.norm = nn.LayerNorm(TEXT_WIDTH, eps=LN_EPS)
        self.layers = nn.ModuleList(EncoderLayer() for _ in range(TEXT_LAYERS))
        self.projection = nn.Linear(TEXT_WIDTH, EMBED)
        for m in [self.word, self.position, self.token_type]:
            nn.init.normal_(m.weight, std=0.02)
        for layer in self.layers:
            for m in layer.modules():
                if isinstance(m, nn.Linear):
                    nn.init.normal_(m.weight, std=0.02)
                    nn.init.zeros_(m.bias)

    def forward(self, ids, lengths):
        n = ids.shape[1]
        positions = torch.arange(n)
        x = self.word(ids) + self.position(positions)[None] + self.token_type.weight[0]
        x = self.norm(x)
        keep = positions[None, :] < lengths[:, None]
        for layer in self.layers:
            x = layer(x, keep)
        return F.normalize(self.projection(x[:, 0]), dim=-1, eps=1e-12)


class MuLan(nn.Module):
    def __init__(self):
        super().__init__()
        self.audio = AudioTower()
        self.text = TextTower()
        self.log_temperature = nn.Parameter(torch.tensor([math.log(TEMPERATURE)]))

    def loss(self, a, t):
        """Symmetric contrastive loss, positive left out of each denominator (MuLan's decoupled form)."""
        s = a @ t.T / self.log_temperature.exp()
        b = s.shape[0]
        eye = torch.eye(b, dtype=torch.bool)
        off = s.masked_fill(eye, float("-inf"))
        pos = s.diagonal()
        a2t = torch.logsumexp(off, dim=1) - pos
        t2a = torch.logsumexp(off, dim=0) - pos
        return (a2t.sum() + t2a.sum()) / (2 * b)


def learning_rate(step, total):
    if step < WARMUP_STEPS:
        return LR * (step + 1) / WARMUP_STEPS
    progress = min(1.0, (step - WARMUP_STEPS) / max(1, total - WARMUP_STEPS))
    return MIN_LR + (LR - MIN_LR) * 0.5 * (1 + math.cos(math.pi * progress))


# --- The front end --------------------------------------------------------------------------------
MEL_BASIS = torch.from_numpy(librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=MELS, fmin=0.0,
                                                 fmax=SAMPLE_RATE / 2, htk=False, norm="slaney")).float()
HANN = torch.hann_window(WIN, periodic=True)


def log_mel(audio):
    """[B, samples] → [B, 128, frames]: librosa.power_to_db(melspectrogram(center=True,
    pad_mode='constant', power 2, Slaney), ref=1, amin=1e-10, top_db=80), per spectrogram."""
    spec = torch.stft(audio, N_FFT, hop_length=HOP, win_length=WIN, window=HANN, center=True,
                      pad_mode="constant", return_complex=True)
    power = spec.real.square() + spec.imag.square()
    db = 10.0 * torch.log10(torch.clamp(MEL_BASIS @ power, min=AMIN))
    peak = db.amax(dim=(1, 2), keepdim=True)
    return torch.maximum(db, peak - TOP_DB)


def spec_augment(mel, generator):
    """2 frequency masks of 0…15 bands and 2 time masks of 0…50 frames per example, set to the
    example's mean before masking (as Sources/MulanDSP/LogMel.swift's SpecAugment)."""
    b, m, t = mel.shape
    mask = torch.zeros(b, m, t, dtype=torch.bool)
    bands, frames = torch.arange(m)[None, :], torch.arange(t)[None, :]
    for count, widest, extent, axis in ((FREQ_MASKS, FREQ_WIDTH, m, bands), (TIME_MASKS, TIME_WIDTH, t, frames)):
        for _ in range(count):
            width = torch.randint(0, widest + 1, (b, 1), generator=generator)
            start = (torch.rand(b, 1, generator=generator) * (extent - width + 1)).floor().long()
            hit = (axis >= start) & (axis < start + width)
            mask |= hit[:, :, None] if axis is bands else hit[:, None, :]
    mean = mel.mean(dim=(1, 2), keepdim=True)
    return torch.where(mask, mean, mel)


# --- Data: the train split's shards through webdataset --------------------------------------------
root = args.dataset
manifest = json.load(open(os.path.join(root, "dataset.json")))
split = manifest["splits"]["train"]
urls = [os.path.join(root, "train", s) for s in split["shards"]]
available = {k for k, v in split.get("texts_by_source", {}).items() if v > 0}
mix = {k: w for k, w in MIX.items() if k in available}
quota, left = {}, args.batch_size
for k in mix:   # largest remainder, like SourceMix.quotas for one batch
    quota[k] = int(args.batch_size * mix[k] / sum(mix.values()))
    left -= quota[k]
for k in sorted(mix, key=lambda k: -(args.batch_size * mix[k] / sum(mix.values()) - quota[k]))[:left]:
    quota[k] += 1
batch_sources = [k for k in mix for _ in range(quota[k])]


def samples():
    """Endless: each epoch shuffles the shard order and passes the samples through a shuffle buffer."""
    epoch = 0
    while True:
        pipeline = wds.WebDataset(urls, shardshuffle=len(urls), seed=args.seed + epoch, nodesplitter=None,
                                  empty_check=False).shuffle(SHUFFLE, rng=random.Random(args.seed + epoch))
        yield from pipeline
        epoch += 1


stream = samples()
pool = ThreadPoolExecutor(args.threads)
rng = random.Random(args.seed)


def decode_crop(flac):
    audio, rate = soundfile.read(io.BytesIO(flac), dtype="float32")
    assert rate == SAMPLE_RATE, f"clip at {rate} Hz"
    if audio.shape[0] <= WINDOW:
        return np.pad(audio, (0, WINDOW - audio.shape[0]))
    start = rng.randint(0, audio.shape[0] - WINDOW)
    return audio[start:start + WINDOW]


def next_batch():
    """64 distinct clips, each with one text of the source its slot of the mix names."""
    chosen, keys = [], set()
    while len(chosen) < args.batch_size:
        s = next(stream)
        if s["__key__"] in keys:
            continue
        keys.add(s["__key__"])
        chosen.append(s)
    tokens = []
    for slot, s in zip(batch_sources, chosen):
        texts = json.loads(s["json"])["texts"]
        source = slot if texts.get(slot) else next(k for k in texts if texts[k])
        ids = rng.choice(texts[source])["token_ids"]
        tokens.append([CLS] + ids[:MAX_LEN - 2] + [SEP])
    audio = np.stack(list(pool.map(decode_crop, [s["flac"] for s in chosen])))
    length = max(len(t) for t in tokens)
    ids = torch.full((len(tokens), length), PAD, dtype=torch.long)
    for i, t in enumerate(tokens):
        ids[i, :len(t)] = torch.tensor(t)
    return torch.from_numpy(audio), ids, torch.tensor([len(t) for t in tokens])


# --- Training -------------------------------------------------------------------------------------
model = MuLan()
decay = [p for n, p in model.named_parameters() if p.ndim >= 2]          # conv, linear and embedding weights
no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]        # biases, norms, log τ
optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY},
                               {"params": no_decay, "weight_decay": 0.0}], lr=LR, betas=(0.9, 0.999), eps=1e-8)
generator = torch.Generator().manual_seed(args.seed)
model.train()
total_steps = args.warmup + args.steps
steps = []
for step in range(total_steps):
    t0 = time.perf_counter()
    audio, ids, lengths = next_batch()
    t1 = time.perf_counter()
    with torch.no_grad():
        mel = spec_augment(log_mel(audio), generator)
    t2 = time.perf_counter()
    for g in optimizer.param_groups:
        g["lr"] = learning_rate(step, total_steps)
    optimizer.zero_grad(set_to_none=True)
    loss = model.loss(model.audio(mel), model.text(ids, lengths))
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
    optimizer.step()
    with torch.no_grad():
        model.log_temperature.clamp_(max=0.0)
    t3 = time.perf_counter()
    steps.append({"step": step + 1, "seconds": t3 - t0, "data": t1 - t0, "logmel": t2 - t1, "model": t3 - t2,
                  "loss": loss.item(), "gradient_norm": norm.item(), "text_length": ids.shape[1]})
    print(f"step {step + 1}: {t3 - t0:.3f} s ({args.batch_size / (t3 - t0):.2f} ex/s; data {t1 - t0:.3f}, "
          f"log-mel {t2 - t1:.3f}, model {t3 - t2:.3f}) loss {loss.item():.4f} text length {ids.shape[1]}",
          file=sys.stderr, flush=True)

timed = steps[args.warmup:]
seconds = sum(s["seconds"] for s in timed)
result = {
    "torch": torch.__version__, "threads": args.threads, "batch_size": args.batch_size,
    "warmup_steps": args.warmup, "timed_steps": len(timed), "seconds": seconds,
    "examples_per_second": args.batch_size * len(timed) / seconds,
    "time_share": {k: sum(s[k] for s in timed) / seconds for k in ("data", "logmel", "model")},
    "mean_text_length": sum(s["text_length"] for s in timed) / len(timed),
    "mix": quota, "mel_shape": list(mel.shape),
    "parameters": sum(p.numel() for p in model.parameters()),
    "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    "steps": steps,
}
with open(args.out, "w") as f:
    json.dump(result, f, indent=1)
print(json.dumps({k: v for k, v in result.items() if k != "steps"}))
