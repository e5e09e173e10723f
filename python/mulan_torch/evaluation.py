"""Evaluation as ``mulan-train`` runs it on the valid split (every ``evalEvery`` steps) and the test
split (at the end): text→audio and audio→text retrieval (Recall@1/5/10, median rank), zero-shot
tagging (macro ROC-AUC and mAP over the split's tags) and the contrastive loss, with the same clips,
queries, windows and formulas as ``Trainer.evaluate`` (Sources/MulanTraining/Trainer.swift) and
``RetrievalMetrics`` (Evaluation.swift):

- the clips: the first ``evalSamples`` clips of the split, in shard order, that have a text of a mixed
  source;
- a clip's audio embedding: the renormalized mean of its start, middle and end windows
  (``AudioFrontEnd.clipWindowOffsets``), the tower in inference mode (with the pitch-class branch,
  each window's embedding combines the tower's with its pitch-class profile's);
- its query: the first text of the first mixed source (tags, descriptions, playlists, aset order) it
  has; clips whose queries are the same token sequence are relevant to each other's queries and are
  not ranked against each other; ties with an irrelevant item count against the positive;
- tagging: every distinct tag text of the clips, scored against every clip, tags that some clip lacks;
- the loss: the mean over consecutive chunks of the batch size (chunks of at least 3 clips).

``evaluation_line`` gives the ``metrics.jsonl`` line mulan-train writes for it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch

from . import audio
from .model import ContrastiveLoss, MulanModel
from .sampler import SourceMix
from .shards import AudioDecodeError, ShardClip, ShardSet, scan_shard

__all__ = ["EvaluationClips", "evaluate", "evaluation_line", "diagonal_ranks", "recall_at", "median_rank",
           "roc_auc", "average_precision"]


# MARK: the metrics (RetrievalMetrics)


def diagonal_ranks(similarity: np.ndarray, transpose: bool = False, groups: Optional[Sequence[int]] = None) -> List[int]:
    """1-based rank of each row's diagonal entry (of each column's with ``transpose``), higher scores
    first; items of the query's group are skipped; ties with another item count against the positive."""
    s = np.asarray(similarity, dtype=np.float32)
    if transpose:
        s = s.T
    n = s.shape[0]
    g = np.asarray(groups if groups is not None else range(n))
    ranks = []
    for i in range(n):
        others = g != g[i]
        ranks.append(1 + int(np.count_nonzero(s[i][others] >= s[i, i])))
    return ranks


def recall_at(k: int, ranks: Sequence[int]) -> float:
    return float(sum(1 for r in ranks if r <= k)) / len(ranks) if ranks else 0.0


def median_rank(ranks: Sequence[int]) -> float:
    if not ranks:
        return 0.0
    s = sorted(ranks)
    n = len(s)
    return float(s[n // 2]) if n % 2 == 1 else (s[n // 2 - 1] + s[n // 2]) / 2


def roc_auc(scores: Sequence[float], labels: Sequence[bool]) -> Optional[float]:
    """Mann–Whitney U with tied scores sharing their average rank; None when a class is missing."""
    positives = sum(1 for x in labels if x)
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        return None
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    rank_sum = 0.0
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        average = (i + j) / 2 + 1
        rank_sum += average * sum(1 for k in range(i, j + 1) if labels[order[k]])
        i = j + 1
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def average_precision(scores: Sequence[float], labels: Sequence[bool]) -> Optional[float]:
    """scikit-learn's average precision (tied scores one threshold); None without positives."""
    positives = sum(1 for x in labels if x)
    if positives == 0:
        return None
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    tp = seen = 0
    ap = previous = 0.0
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        for k in range(i, j + 1):
            seen += 1
            tp += 1 if labels[order[k]] else 0
        recall = tp / positives
        ap += (recall - previous) * (tp / seen)
        previous = recall
        i = j + 1
    return ap


# MARK: the clips


@dataclass
class EvaluationClips:
    """A split's evaluation clips (chosen once; their audio is decoded at each evaluation, a chunk at
    a time, so memory stays bounded by the chunk and not the split)."""

    split: str
    shards: ShardSet
    clips: List[ShardClip]

    @classmethod
    def load(cls, shards: ShardSet, config: Mapping[str, Any], split: str) -> "EvaluationClips":
        mix = _mix_sources(config)
        limit = int(config.get("evalSamples", 1000))
        clips: List[ShardClip] = []
        for index in range(len(shards)):
            if len(clips) >= limit:
                break
            for clip in scan_shard(shards, index):
                if any(s in mix for s in clip.record.get("texts", {})):
                    clips.append(clip)
                    if len(clips) >= limit:
                        break
        return cls(split=split, shards=shards, clips=clips)

    def log_mel(self, lo: int, hi: int, config: Mapping[str, Any]) -> np.ndarray:
        """float32 [(hi − lo)·3, mel bands, frames]: clips lo..<hi, each its start, middle and end
        windows (``AudioFrontEnd.evaluationBatch``)."""
        return self.windows(lo, hi, config)[0]

    def windows(self, lo: int, hi: int, config: Mapping[str, Any],
                pitch_classes: Optional[bool] = None) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        """The tower inputs of clips lo..<hi: their windows' log-mel (as ``log_mel``) and, with
        ``pitch_classes`` (default: when the config's ``pitchProfiles`` is above 0), each window's
        pitch-class profile, float32 [(hi − lo)·3, 12] (else None)."""
        if pitch_classes is None:
            pitch_classes = int(config.get("pitchProfiles") or 0) > 0
        front = audio.FrontEndConfig.from_training_config(config)
        window = front.window_samples
        rate = int(config["logMel"]["sampleRate"])
        values = []
        profiles = []
        for clip in self.clips[lo:hi]:
            url = self.shards.urls[clip.shard]
            try:
                samples = audio.decode_flac(self.shards.read_flac(clip), rate, f"{url} member {clip.flac_member}")
            except ValueError as e:
                raise AudioDecodeError(f"shard {url}, member {clip.flac_member}: {e}", shard=url,
                                       member=clip.flac_member, hint=self.shards.verify_hint) from e
            for offset in audio.evaluation_window_offsets(samples.shape[0], window):
                cropped = audio.crop_window(samples, offset, window)
                values.append(audio.log_mel(cropped, front.log_mel))
                if pitch_classes:
                    profiles.append(audio.pitch_class_profile(cropped, rate))
        return np.stack(values), (np.stack(profiles) if pitch_classes else None)


def _mix_sources(config: Mapping[str, Any]) -> List[str]:
    from .dataset import _mix_from_config  # the config's mix, as MulanShards reads it

    return SourceMix(_mix_from_config(config["mix"])).sources


def _query(record: Mapping[str, Any], order: Sequence[str]) -> List[int]:
    texts = record.get("texts", {})
    source = next((s for s in order if texts.get(s)), None) or sorted(texts)[0]
    return [int(t) for t in texts[source][0]["token_ids"]]


# MARK: evaluation


def evaluate(model: MulanModel, data: EvaluationClips, config: Mapping[str, Any],
             device: Optional[torch.device] = None) -> Dict[str, Any]:
    """The ``EvaluationResult`` of mulan-train (as its JSON: ``split``, ``clips``, ``loss``,
    ``text_to_audio``/``audio_to_text`` with ``recall_at_1/5/10`` and ``median_rank``, ``tagging``
    with ``tags``, ``roc_auc``, ``map`` or None) plus ``examples_per_second``."""
    begin = time.monotonic()
    device = device or next(model.parameters()).device
    n = len(data.clips)
    d = model.audio.config.embedding_dim
    batch = int(config.get("batchSize", 64))
    chunk = max(1, batch // 3)
    audio_rows = np.zeros((n, d), dtype=np.float32)
    for lo in range(0, n, chunk):
        hi = min(n, lo + chunk)
        log_mel, profiles = data.windows(lo, hi, config, pitch_classes=model.pitch is not None)
        pitch = None if profiles is None else torch.from_numpy(profiles).to(device)
        e = model.embed_audio(torch.from_numpy(log_mel).to(device), pitch).cpu().numpy()
        e = e.reshape(hi - lo, 3, d) / np.float32(3)
        mean = (e[:, 0] + e[:, 1]) + e[:, 2]  # mulan's order: 0 + e₀/3 + e₁/3 + e₂/3
        norm = np.maximum(np.sqrt((mean * mean).sum(axis=1, keepdims=True)), np.float32(1e-12))
        audio_rows[lo:hi] = mean / norm
    order = _mix_sources(config)
    queries = [_query(c.record, order) for c in data.clips]
    text_rows = model.embed_token_ids(queries, batch_size=batch).cpu().numpy() if n else np.zeros((0, d), np.float32)
    similarity = audio_rows @ text_rows.T
    group_of: Dict[tuple, int] = {}
    groups = [group_of.setdefault(tuple(q), len(group_of)) for q in queries]
    a2t = diagonal_ranks(similarity, groups=groups)
    t2a = diagonal_ranks(similarity, transpose=True, groups=groups)

    def retrieval(ranks: List[int]) -> Dict[str, float]:
        return {"recall_at_1": recall_at(1, ranks), "recall_at_5": recall_at(5, ranks),
                "recall_at_10": recall_at(10, ranks), "median_rank": median_rank(ranks)}

    probe = ContrastiveLoss(min(1.0, model.loss.temperature), bool(config.get("decoupledLoss", True)))
    losses = []
    for lo in range(0, n, batch):
        hi = min(n, lo + batch)
        if hi - lo >= 3:
            with torch.no_grad():
                losses.append(float(probe(torch.from_numpy(audio_rows[lo:hi]), torch.from_numpy(text_rows[lo:hi]))))
    result: Dict[str, Any] = {
        "split": data.split, "clips": n, "loss": sum(losses) / len(losses) if losses else None,
        "text_to_audio": retrieval(t2a), "audio_to_text": retrieval(a2t),
        "tagging": _tagging(model, data.clips, audio_rows, batch),
    }
    result["examples_per_second"] = n / max(time.monotonic() - begin, 1e-9)
    return result


def _tagging(model: MulanModel, clips: List[ShardClip], audio_rows: np.ndarray, batch: int) -> Optional[Dict[str, Any]]:
    vocabulary: Dict[str, List[int]] = {}
    positives: Dict[str, set] = {}
    for i, c in enumerate(clips):
        for t in c.record.get("texts", {}).get("tags", []):
            vocabulary.setdefault(t["text"], [int(x) for x in t["token_ids"]])
            positives.setdefault(t["text"], set()).add(i)
    tags = [t for t in sorted(vocabulary) if len(positives[t]) < len(clips)]
    if not tags:
        return None
    embedded = model.embed_token_ids([vocabulary[t] for t in tags], batch_size=batch).cpu().numpy()
    scores = embedded @ audio_rows.T
    aucs, aps = [], []
    for k, tag in enumerate(tags):
        labels = [i in positives[tag] for i in range(len(clips))]
        row = [float(x) for x in scores[k]]
        auc, ap = roc_auc(row, labels), average_precision(row, labels)
        if auc is not None:
            aucs.append(auc)
        if ap is not None:
            aps.append(ap)
    if not aucs:
        return None
    return {"tags": len(aucs), "roc_auc": sum(aucs) / len(aucs), "map": sum(aps) / max(len(aps), 1)}


def evaluation_line(result: Mapping[str, Any], step: int, temperature: float, batch_size: int) -> Dict[str, Any]:
    """The ``metrics.jsonl`` line mulan-train writes for an evaluation."""
    t2a, a2t = result["text_to_audio"], result["audio_to_text"]
    line: Dict[str, Any] = {
        "step": step, "split": result["split"], "loss": result["loss"], "temperature": temperature,
        "batch_size": batch_size, "clips": result["clips"],
        "t2a_recall_at_1": t2a["recall_at_1"], "t2a_recall_at_5": t2a["recall_at_5"],
        "t2a_recall_at_10": t2a["recall_at_10"], "t2a_median_rank": t2a["median_rank"],
        "a2t_recall_at_1": a2t["recall_at_1"], "a2t_recall_at_5": a2t["recall_at_5"],
        "a2t_recall_at_10": a2t["recall_at_10"], "a2t_median_rank": a2t["median_rank"],
        "examples_per_second": result["examples_per_second"],
    }
    tagging = result.get("tagging")
    if tagging is not None:
        line["tagging_roc_auc"] = tagging["roc_auc"]
        line["tagging_map"] = tagging["map"]
        line["tagging_tags"] = tagging["tags"]
    return line
