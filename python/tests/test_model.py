"""The MuLan model in PyTorch against mulan's own tools: checkpoints move both ways.

Oracles: mulan-train's checkpoints (names, shapes, metadata), mulan-embed's embeddings.npy (audio
and text), mulan-eval and mulan-search run on a checkpoint written here, and Hugging Face
transformers' BertModel for the warm start from all-MiniLM-L6-v2.

The audio tower's input must be mulan's log-mel. To compare the model alone, bit-identical inputs
come from ``mulan-embed --dump-log-mel`` (every window's tower input as mulan-embed formed it); the
dump itself is checked against librosa (which mulan's LogMelSpectrogram matches to 1e-4 relative,
Tests/MulanDSPTests/LogMelTests.swift).
"""

from __future__ import annotations

import io
import json
import math
import os
import random
import tarfile
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np
import pytest
import torch

from conftest import TINY, generate, mulan_bin, run
from mulan_torch import MulanModel, token_batch, training_config
from mulan_torch import checkpoint as ckpt
from mulan_torch.model import ContrastiveLoss, load_pretrained_text, parameter_names_and_shapes

TEXTS = ["square wave", "pure tone", "white noise with a sawtooth and some pulsing beeps over brown noise, "
         "recorded live in a very large concert hall", "Café ÜBER-straße, naïve", "brown"]


# MARK: helpers


@pytest.fixture(scope="session")
def tokenizer(vocab: str) -> Any:
    """Hugging Face's BERT WordPiece (mulan's BertTokenizer is tested against it, 1M lines)."""
    from tokenizers import BertWordPieceTokenizer

    return BertWordPieceTokenizer(vocab, lowercase=True)


def token_ids(tokenizer: Any, texts: Sequence[str]) -> List[List[int]]:
    return [tokenizer.encode(t, add_special_tokens=False).ids for t in texts]


def librosa_log_mel(samples: np.ndarray, cfg: Dict[str, Any]) -> np.ndarray:
    """librosa's log-mel with the parameters of mulan's LogMelSpectrogram (its reference)."""
    import librosa

    sr = cfg["sampleRate"]
    S = librosa.feature.melspectrogram(
        y=np.asarray(samples, dtype=np.float32), sr=sr, n_fft=cfg["fftSize"], hop_length=round(cfg["hopSeconds"] * sr),
        win_length=round(cfg["windowSeconds"] * sr), window="hann", center=True, pad_mode="constant", power=2.0,
        n_mels=cfg["melBands"], fmin=cfg["fMin"], fmax=cfg["fMax"], htk=False, norm="slaney")
    return librosa.power_to_db(S, ref=1.0, amin=cfg["amin"], top_db=cfg["topDB"]).astype(np.float32)


def label(row: Dict[str, Any]) -> str:
    return row["path"] if row.get("path") else f"{row['shard']}#{row['key']}"


def mulan_embed(checkpoint: str, out: Path, vocab: str, dataset: str, audio: Sequence[str] = (),
                texts: Sequence[str] = ()) -> Dict[str, Any]:
    """Runs mulan-embed (shards' test split, files, texts) with --dump-log-mel; returns its outputs."""
    dump = out.parent / (out.name + "-log-mel")
    args = [mulan_bin("mulan-embed"), "--checkpoint", checkpoint, "--vocab", vocab, "--shards", dataset,
            "--split", "test", "--out", str(out), "--dump-log-mel", str(dump), "--threads", "2", "--quiet"]
    if audio:
        args += ["--audio", *audio]
    for t in texts:
        args += ["--text", t]
    run(args)
    rows = [json.loads(line) for line in (out / "index.jsonl").read_text().splitlines()]
    lines = [json.loads(line) for line in (dump / "log-mel.jsonl").read_text().splitlines()]
    windows = np.load(dump / "log-mel.npy")
    assert windows.shape[0] == len(lines) > 0
    m, t = lines[0]["mel_bands"], lines[0]["frames"]
    return {"rows": rows, "matrix": np.load(out / "embeddings.npy"), "lines": lines,
            "windows": windows.reshape(-1, m, t)}


def compare_with_mulan_embed(model: MulanModel, embedded: Dict[str, Any], tokenizer: Any) -> Dict[str, float]:
    """Embeds what mulan-embed embedded (audio from its dumped tower inputs, averaged as mulan-embed
    does; texts tokenized) and returns the largest absolute differences per kind; also checks the
    windows' count and offsets against ``model.window_offsets``."""
    by_item: Dict[str, List[int]] = {}
    for i, line in enumerate(embedded["lines"]):
        by_item.setdefault(label(line), []).append(i)
    worst = {"audio": 0.0, "text": 0.0}
    audio_rows = [r for r in embedded["rows"] if r["kind"] == "audio"]
    text_rows = [r for r in embedded["rows"] if r["kind"] == "text"]
    assert audio_rows and text_rows
    for row in audio_rows:
        idx = by_item[label(row)]
        assert len(idx) == row["windows"]
        samples = round(row["seconds"] * model.sample_rate)
        assert [embedded["lines"][i]["offset"] for i in idx] == model.window_offsets(samples), label(row)
        e = model.embed_audio(torch.from_numpy(embedded["windows"][idx]))
        mean = torch.nn.functional.normalize(e.sum(dim=0), dim=0, eps=1e-12).numpy()
        worst["audio"] = max(worst["audio"], float(np.abs(mean - embedded["matrix"][row["row"]]).max()))
    ids = token_ids(tokenizer, [r["text"] for r in text_rows])
    ours = model.embed_token_ids(ids).numpy()
    theirs = embedded["matrix"][[r["row"] for r in text_rows]]
    worst["text"] = float(np.abs(ours - theirs).max())
    return worst


def shard_samples(dataset: str, split: str) -> List[Tuple[bytes, Dict[str, Any]]]:
    """(FLAC bytes, sample JSON) of every sample of a split, read with tarfile."""
    manifest = json.loads(Path(dataset, "dataset.json").read_text())
    out = []
    for name in manifest["splits"][split]["shards"]:
        with tarfile.open(os.path.join(dataset, split, name)) as tar:
            members: Dict[str, Dict[str, bytes]] = {}
            for m in tar.getmembers():
                key, ext = m.name.split(".", 1)
                members.setdefault(key, {})[ext] = tar.extractfile(m).read()
            for key, parts in members.items():
                out.append((parts["flac"], json.loads(parts["json"])))
    return out


@pytest.fixture(scope="session")
def mulan_run(timbre_dataset: Dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny model trained 30 steps by mulan-train; returns its checkpoint."""
    run_dir = tmp_path_factory.mktemp("mulan-run") / "run"
    run([mulan_bin("mulan-train"), "--dataset", timbre_dataset["dataset"], "--run-dir", str(run_dir), *TINY,
         "--steps", "30", "--lr", "2e-3", "--warmup-steps", "5", "--eval-every", "1000", "--checkpoint-every", "1000",
         "--log-every", "10", "--threads", "2", "--seed", "1"])
    path = ckpt.newest(str(run_dir))
    assert path and path.endswith("checkpoint-000030.safetensors"), path
    return path


def tiny_config(**overrides: Any) -> Dict[str, Any]:
    """mulan-train's TINY options as a TrainingConfig."""
    cfg = training_config(16000, batchSize=12, shuffleBuffer=40, windowSeconds=4.0,
                          audio={"melBands": 32, "widths": [8, 16], "blocksPerStage": 1, "embeddingDim": 128},
                          text={"vocabularySize": 30522, "width": 32, "layers": 1, "heads": 2, "feedForward": 64,
                                "maxLength": 16, "embeddingDim": 128, "layerNormEpsilon": 1e-12, "pooling": "cls"})
    cfg["logMel"]["melBands"] = 32
    cfg.update(overrides)
    return cfg


def key_tree(value: Any) -> Any:
    """The keys of nested JSON objects (values dropped), for comparing configuration layouts."""
    if isinstance(value, dict):
        return {k: key_tree(v) for k, v in value.items()}
    return None


# MARK: (d) names, shapes and metadata


def test_names_shapes_and_metadata_equal_a_mulan_train_checkpoint(mulan_run: str) -> None:
    loaded = ckpt.read(mulan_run)
    theirs = parameter_names_and_shapes(loaded.tensors)
    # A model built here from the same options, not from the checkpoint's config.
    ours = MulanModel(tiny_config())
    assert parameter_names_and_shapes(ours.mulan_state_dict()) == theirs
    # The optimizer entries: exactly the parameters mulan-train optimizes, m and v each.
    moments = {n[len("optimizer.m."):] for n in loaded.tensors if n.startswith("optimizer.m.")}
    assert moments == {n[len("optimizer.v."):] for n in loaded.tensors if n.startswith("optimizer.v.")}
    assert moments == {n for n, _ in ours.optimized_parameters()}
    # Metadata keys and the config layout, key for key (the run directory's config.json adds "blas" only).
    assert set(loaded.metadata) == {"format", "step", "optimizer_step", "config", "sampler"}
    assert loaded.metadata["format"] == ckpt.FORMAT and loaded.step == 30 and loaded.optimizer_step == 30
    assert key_tree(training_config(16000)) == key_tree(loaded.config)
    # Every value of the tiny configuration but the run's own choices (steps, lr, …) is what mulan-train wrote.
    mine = tiny_config()
    for key in ("audio", "text", "logMel", "specAugment", "adam", "windowSeconds", "batchSize", "initialTemperature",
                "decoupledLoss", "textTraining", "clipNorm"):
        assert mine[key] == loaded.config[key], key
    assert dict(zip(mine["mix"]["weights"][::2], mine["mix"]["weights"][1::2])) == \
        dict(zip(loaded.config["mix"]["weights"][::2], loaded.config["mix"]["weights"][1::2]))


def test_checkpoint_written_here_has_mulans_layout(tmp_path: Path) -> None:
    model = MulanModel(tiny_config())
    optimizer = torch.optim.AdamW(model.parameter_groups(), lr=1e-3)
    path = tmp_path / ckpt.file_name(7)
    model.save_checkpoint(str(path), step=7, optimizer=optimizer, sampler={"streams": {}})
    assert not (tmp_path / (path.name + ".tmp")).exists()
    loaded = ckpt.read(str(path))
    assert loaded.step == 7 and loaded.optimizer_step == 0 and loaded.sampler == {"streams": {}}
    assert json.loads(loaded.metadata["config"]) == model.config
    assert loaded.metadata["config"] == json.dumps(model.config, sort_keys=True, separators=(",", ":"))
    assert all(t.dtype == torch.float32 for t in loaded.tensors.values())
    names = {n for n, _ in model.optimized_parameters()}
    assert {n for n in loaded.tensors if n.startswith("optimizer.")} == \
        {f"optimizer.{k}.{n}" for n in names for k in "mv"}
    assert "num_batches_tracked" not in " ".join(loaded.tensors)


def test_damaged_and_foreign_checkpoints_are_refused_by_name(tmp_path: Path, mulan_run: str) -> None:
    data = Path(mulan_run).read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ckpt.CheckpointError, match="cut.safetensors"):
        MulanModel.from_checkpoint(str(cut))
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign), metadata={"format": "pt"})
    with pytest.raises(ckpt.CheckpointError, match="not a mulan-train checkpoint"):
        MulanModel.from_checkpoint(str(foreign))
    other = MulanModel(tiny_config(audio={"melBands": 32, "widths": [8, 24], "blocksPerStage": 1, "embeddingDim": 128}))
    with pytest.raises(ckpt.CheckpointError, match="audio.layer2.0.conv1.weight"):
        other.load_mulan_tensors(ckpt.read(mulan_run).tensors, mulan_run)


# MARK: (a) a mulan-train checkpoint in PyTorch embeds as mulan-embed


def test_mulan_train_checkpoint_embeds_as_mulan_embed(mulan_run: str, timbre_dataset: Dict[str, str], vocab: str,
                                                      tokenizer: Any, tmp_path: Path) -> None:
    files = [generate(tmp_path / "files" / "long.flac", 1, 260, 45),        # 11 windows of 4 s
             generate(tmp_path / "files" / "short.wav", 0, 410, 2.5),       # one zero-padded window
             generate(tmp_path / "files" / "noise.mp3", 3, 0, 12, rate=22050, channels=2, seed=9)]  # resampled
    embedded = mulan_embed(mulan_run, tmp_path / "index", vocab, timbre_dataset["dataset"],
                           [str(f) for f in files], TEXTS)
    model = MulanModel.from_checkpoint(os.path.dirname(mulan_run))  # a run directory: its newest checkpoint
    assert model.step == 30 and model.checkpoint_path == mulan_run and not model.training
    worst = compare_with_mulan_embed(model, embedded, tokenizer)
    print("max |PyTorch − mulan-embed|:", worst)
    assert worst["audio"] <= 1e-4 and worst["text"] <= 1e-4, worst
    assert sum(r["kind"] == "audio" for r in embedded["rows"]) == 12 + 3

    # The dump is the log-mel of the windows: against librosa on the 16-kHz FLAC (no resampling).
    import soundfile

    samples, rate = soundfile.read(str(files[0]), dtype="float32")
    assert rate == 16000
    lines = [i for i, line in enumerate(embedded["lines"]) if line.get("path") == str(files[0])]
    cfg = model.config["logMel"]
    for i in lines[:3]:
        offset = embedded["lines"][i]["offset"]
        expected = librosa_log_mel(samples[offset: offset + model.window_samples], cfg)
        relative = np.abs(embedded["windows"][i] - expected).max() / np.abs(expected).max()
        assert relative <= 1e-4, relative

    # End to end from the file, with librosa (MulanDSP's reference) as the front end and embed_clip's
    # windows and averaging: the same embedding within 1e-4 too.
    clip = model.embed_clip(samples, lambda w: librosa_log_mel(w, cfg)).numpy()
    row = next(r for r in embedded["rows"] if r.get("path") == str(files[0]))
    end_to_end = float(np.abs(clip - embedded["matrix"][row["row"]]).max())
    print("max |PyTorch(librosa log-mel) − mulan-embed| on a 45-s file:", end_to_end)
    assert end_to_end <= 1e-4, end_to_end


# MARK: (b) a checkpoint trained in PyTorch is used by mulan's tools


def training_batches(dataset: str, config: Dict[str, Any], batches: int, seed: int = 0) -> List[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Batches of (log-mel of a random window, token ids, lengths): one tag per clip, clips drawn at
    random without repeats within a batch (librosa front end, tarfile reader: test-side only)."""
    import soundfile

    rng = random.Random(seed)
    samples = shard_samples(dataset, "train")
    decoded = [(soundfile.read(io.BytesIO(flac), dtype="float32")[0], meta) for flac, meta in samples]
    w = round(config["windowSeconds"] * config["logMel"]["sampleRate"])
    size = config["batchSize"]
    out = []
    for _ in range(batches):
        chosen = rng.sample(decoded, size)
        mels, texts = [], []
        for audio, meta in chosen:
            offset = rng.randrange(0, max(1, len(audio) - w + 1))
            mels.append(librosa_log_mel(audio[offset: offset + w], config["logMel"]))
            texts.append(rng.choice(meta["texts"]["tags"])["token_ids"])
        ids, lengths = token_batch(texts, config["text"]["maxLength"])
        out.append((torch.from_numpy(np.stack(mels)), ids, lengths))
    return out


def test_checkpoint_trained_in_pytorch_is_used_by_mulan_tools(
        timbre_dataset: Dict[str, str], vocab: str, tokenizer: Any, tmp_path: Path) -> None:
    torch.manual_seed(0)
    config = tiny_config(steps=12, learningRate=2e-3)
    model = MulanModel(config)
    optimizer = torch.optim.AdamW(model.parameter_groups(), lr=2e-3, betas=(0.9, 0.999), eps=1e-8)
    batches = training_batches(timbre_dataset["dataset"], config, batches=4)
    losses = []
    model.train()
    for step in range(12):
        log_mel, ids, lengths = batches[step % len(batches)]
        audio, text = model(log_mel, ids, lengths)
        loss = model.loss(audio, text)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config["clipNorm"])
        optimizer.step()
        model.loss.clamp_temperature_()
        losses.append(float(loss.detach()))
    print("PyTorch losses:", [round(x, 3) for x in losses])
    assert all(math.isfinite(x) for x in losses)
    assert np.mean(losses[-4:]) < np.mean(losses[:4]), losses  # it learns the 4 batches it sees

    path = tmp_path / "run" / ckpt.file_name(12)
    model.save_checkpoint(str(path), step=12, optimizer=optimizer)
    # Read back here: the same weights, and AdamW's moments under mulan's names.
    again = MulanModel.from_checkpoint(str(path))
    for name, t in model.mulan_state_dict().items():
        assert torch.equal(t, again.mulan_state_dict()[name]), name
    assert ckpt.read(str(path), weights_only=True).optimizer_step == 12
    from safetensors.torch import load_file

    stored = load_file(str(path))
    for name, p in model.optimized_parameters():
        assert torch.equal(stored["optimizer.m." + name], optimizer.state[p]["exp_avg"]), name
        assert torch.equal(stored["optimizer.v." + name], optimizer.state[p]["exp_avg_sq"]), name
    # Without a sampler state it is for inference only; reading it to resume says so.
    with pytest.raises(ckpt.CheckpointError, match="no sampler state"):
        ckpt.read(str(path))

    # mulan-embed: the same embeddings within 1e-4.
    embedded = mulan_embed(str(path), tmp_path / "index", vocab, timbre_dataset["dataset"], texts=TEXTS)
    worst = compare_with_mulan_embed(model, embedded, tokenizer)
    print("max |PyTorch − mulan-embed| (PyTorch-trained checkpoint):", worst)
    assert worst["audio"] <= 1e-4 and worst["text"] <= 1e-4, worst

    # mulan-eval: zero-shot tagging on the test split's tags, from the checkpoint alone.
    report = tmp_path / "eval.json"
    r = run([mulan_bin("mulan-eval"), "--checkpoint", str(path), "--vocab", vocab, "--shards",
             timbre_dataset["dataset"], "--split", "test", "--json", str(report), "--quiet", "--threads", "2"])
    assert "macro ROC-AUC" in r.stdout, r.stdout
    tagging = json.loads(report.read_text())["tagging"]
    assert tagging["tags_scored"] == 6 and 0 <= tagging["macro_roc_auc"] <= 1, tagging
    print("mulan-eval on the PyTorch checkpoint:", {k: tagging[k] for k in ("macro_roc_auc", "tags_scored")})

    # mulan-search over the index mulan-embed wrote with it.
    s = run([mulan_bin("mulan-search"), "--index", str(tmp_path / "index"), "square wave", "--top", "3", "--json",
             "--quiet"])
    assert len(json.loads(s.stdout)["results"]) == 3

    # mulan-filter audio: every clip of the work directory scored against prompts with it.
    summary = tmp_path / "audio-filter.json"
    run([mulan_bin("mulan-filter"), "audio", "--workdir", timbre_dataset["work"], "--quiet", "--model", str(path),
         "--vocab", vocab, "--prompt", "tone=pure tone", "--prompt", "noise=white noise", "--keep", "tone > noise",
         "--report", str(summary), "--threads", "2"])
    decided = json.loads(summary.read_text())
    assert decided["clips_total"] == 36 and decided["kept"] + decided["dropped"] == 36, decided


def test_optimizer_state_moves_both_ways(mulan_run: str, tmp_path: Path) -> None:
    """A mulan-train checkpoint's AdamW state goes into torch's AdamW and comes back out unchanged."""
    loaded = ckpt.read(mulan_run)
    model = MulanModel(loaded.config)
    model.load_mulan_tensors(loaded.tensors, mulan_run)
    optimizer = torch.optim.AdamW(model.parameter_groups(), lr=1e-3)
    model.load_optimizer_state(optimizer, loaded)
    path = tmp_path / "again.safetensors"
    model.save_checkpoint(str(path), step=loaded.step, optimizer=optimizer, sampler=loaded.sampler)
    again = ckpt.read(str(path))
    assert again.optimizer_step == loaded.optimizer_step and again.sampler == loaded.sampler
    assert again.config == loaded.config
    assert set(again.tensors) == set(loaded.tensors)
    for name, t in loaded.tensors.items():
        assert torch.equal(t, again.tensors[name]), name


def test_mulan_train_resumes_a_checkpoint_written_here_as_its_own(mulan_run: str, timbre_dataset: Dict[str, str],
                                                                 tmp_path: Path) -> None:
    """mulan-train --resume from the PyTorch copy of its checkpoint (model, AdamW state, sampler)
    ends in the same state, bit for bit, as resuming from its own file."""
    loaded = ckpt.read(mulan_run)
    model = MulanModel(loaded.config)
    model.load_mulan_tensors(loaded.tensors, mulan_run)
    optimizer = torch.optim.AdamW(model.parameter_groups(), lr=1e-3)
    model.load_optimizer_state(optimizer, loaded)
    own, copy = tmp_path / "own", tmp_path / "copy"
    own.mkdir()
    (own / ckpt.file_name(30)).write_bytes(Path(mulan_run).read_bytes())
    model.save_checkpoint(str(copy / ckpt.file_name(30)), step=30, optimizer=optimizer, sampler=loaded.sampler)
    for run_dir in (own, copy):
        run([mulan_bin("mulan-train"), "--dataset", timbre_dataset["dataset"], "--run-dir", str(run_dir), *TINY,
             "--resume", "--steps", "33", "--threads", "2"])
    a, b = ckpt.read(str(own / ckpt.file_name(33))), ckpt.read(str(copy / ckpt.file_name(33)))
    assert a.step == b.step == 33 and a.sampler == b.sampler and a.optimizer_step == b.optimizer_step == 33
    assert set(a.tensors) == set(b.tensors)
    for name, t in a.tensors.items():
        assert torch.equal(t, b.tensors[name]), name
    assert not torch.equal(a.tensors["audio.fc.weight"], loaded.tensors["audio.fc.weight"])  # it did train


# MARK: (c) warm start from all-MiniLM-L6-v2


def test_warm_start_equals_transformers_and_mulan_text_init(bert_folder: str, timbre_dataset: Dict[str, str],
                                                            vocab: str, tokenizer: Any, tmp_path: Path) -> None:
    from transformers import BertModel

    config = tiny_config(text={"maxLength": 32, "embeddingDim": 128}, textTraining="frozen")
    model = MulanModel.warm_started(config, bert_folder)
    assert model.config["text"] == {"embeddingDim": 128, "feedForward": 1536, "heads": 12, "layerNormEpsilon": 1e-12,
                                    "layers": 6, "maxLength": 32, "pooling": "mean", "vocabularySize": 30522,
                                    "width": 384}
    ids, lengths = token_batch(token_ids(tokenizer, TEXTS), 32)
    with torch.no_grad():
        ours = model.eval().text.pooled(ids, lengths)
        bert = BertModel.from_pretrained(bert_folder).eval()
        mask = (torch.arange(ids.shape[1])[None, :] < lengths[:, None]).long()
        hidden = bert(input_ids=ids, attention_mask=mask).last_hidden_state
        reference = (hidden * mask[:, :, None]).sum(1) / mask.sum(1, keepdim=True)
    diff = float((ours - reference).abs().max())
    print("max |pooled − transformers mean pooling|:", diff)
    assert diff <= 1e-5, diff

    # mulan-train --text-init with the frozen encoder: its checkpoint holds the same encoder tensors,
    # the same text configuration, and mulan-embed embeds texts as the PyTorch model of it.
    run_dir = tmp_path / "run"
    args = list(TINY)
    for option in ("--text-width", "--text-layers", "--text-heads", "--text-feed-forward", "--max-text-length"):
        at = args.index(option)
        del args[at: at + 2]
    run([mulan_bin("mulan-train"), "--dataset", timbre_dataset["dataset"], "--run-dir", str(run_dir), *args,
         "--max-text-length", "32", "--text-init", bert_folder, "--text-train", "frozen", "--steps", "2",
         "--eval-every", "1000", "--checkpoint-every", "1000", "--threads", "2", "--seed", "1"])
    path = ckpt.newest(str(run_dir))
    loaded = ckpt.read(path)
    assert loaded.config["text"] == model.config["text"] and loaded.config["textInit"] == bert_folder
    mine = model.mulan_state_dict()
    encoder = [n for n in mine if n.startswith("text.") and not n.startswith("text.projection.")]
    assert encoder and all(torch.equal(mine[n], loaded.tensors[n]) for n in encoder)
    assert {n for n in loaded.tensors if n.startswith("optimizer.m.text.")} == \
        {"optimizer.m.text.projection.weight", "optimizer.m.text.projection.bias"}
    assert {n for n, _ in model.optimized_parameters() if n.startswith("text.")} == \
        {"text.projection.weight", "text.projection.bias"}

    trained = MulanModel.from_checkpoint(path)
    embedded = mulan_embed(path, tmp_path / "index", vocab, timbre_dataset["dataset"], texts=TEXTS)
    worst = compare_with_mulan_embed(trained, embedded, tokenizer)
    print("max |PyTorch − mulan-embed| (text-init, mean pooling):", worst)
    assert worst["audio"] <= 1e-4 and worst["text"] <= 1e-4, worst


def test_pretrained_folder_errors_name_the_problem(tmp_path: Path, bert_folder: str) -> None:
    with pytest.raises(ValueError, match="has no readable config.json"):
        load_pretrained_text(str(tmp_path), max_length=16)
    with pytest.raises(ValueError, match="exceeds the 512 positions"):
        load_pretrained_text(bert_folder, max_length=600)


# MARK: layers whose behaviour the checkpoints do not show


def test_loss_matches_its_definition_and_collapsed_values() -> None:
    torch.manual_seed(1)
    a = torch.nn.functional.normalize(torch.randn(6, 8), dim=1)
    t = torch.nn.functional.normalize(torch.randn(6, 8), dim=1)
    for decoupled in (True, False):
        loss = ContrastiveLoss(0.1, decoupled)
        s = (a @ t.T / 0.1).double()
        total = 0.0
        for i in range(6):
            for logits in (s[i], s[:, i]):
                others = [logits[j] for j in range(6) if not (decoupled and j == i)]
                total += float(torch.logsumexp(torch.stack(others), 0) - logits[i])
        assert abs(float(loss(a, t).detach()) - total / 12) < 1e-5
    same = torch.nn.functional.normalize(torch.ones(5, 8), dim=1)
    assert abs(float(ContrastiveLoss(0.5, True)(same, same).detach()) - math.log(4)) < 1e-6
    assert abs(float(ContrastiveLoss(0.5, False)(same, same).detach()) - math.log(5)) < 1e-6


def test_batch_norm_running_statistics_as_mulan_keeps_them() -> None:
    """Normalization2d.swift: momentum 0.1, running variance from the unbiased batch variance; eval
    mode normalizes with the running statistics."""
    model = MulanModel(tiny_config())
    bn = model.audio.bn1
    x = torch.randn(3, bn.num_features, 5, 7)
    bn.train()
    bn(x)
    mean = x.mean(dim=(0, 2, 3))
    var = x.var(dim=(0, 2, 3), unbiased=True)
    assert torch.allclose(bn.running_mean, 0.1 * mean, atol=1e-6)
    assert torch.allclose(bn.running_var, 0.9 + 0.1 * var, atol=1e-6)
    bn.eval()
    y = bn(x)
    expected = (x - bn.running_mean[None, :, None, None]) / torch.sqrt(bn.running_var[None, :, None, None] + 1e-5)
    assert torch.allclose(y, expected, atol=1e-5)
    assert "audio.bn1.num_batches_tracked" not in model.state_dict()


def test_token_batch_wraps_and_cuts_as_mulan() -> None:
    ids, lengths = token_batch([[5, 6, 7, 8], [9]], max_length=4)
    assert ids.tolist() == [[101, 5, 6, 102], [101, 9, 102, 0]] and lengths.tolist() == [4, 3]
    ids, lengths = token_batch([[101, 5, 6, 7, 102]], max_length=4, add_special_tokens=False, pad_to_max_length=True)
    assert ids.tolist() == [[101, 5, 6, 102]] and lengths.tolist() == [4]
