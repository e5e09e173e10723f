"""MulanShards against mulan-train: the same batches (keys, shards, sources, token ids, window offsets)
as `mulan-train --dump-batches` on a dataset made with the real tools; quotas, the once-per-batch rule,
ranks, exact resume with DataLoader workers, shard lists and pipe: URLs, damaged shards."""
from __future__ import annotations

import json
import shutil
import tarfile
from fractions import Fraction
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pytest
import torch
from safetensors import safe_open

from conftest import mulan_bin, run_tool
from mulan_torch import MulanLoader, MulanShards
from mulan_torch.sampler import SourceMix, wrap_tokens
from mulan_torch.shards import AudioDecodeError, MulanDataError, SampleRecordError, ShardReadError

STEPS = 24
SEED = 3
BATCH = 12
BUFFER = 5
MIX = {"tags": 2, "descriptions": 2, "playlists": 1, "aset": 1}
#: A tiny model that trains in seconds (the Swift end-to-end tests' sizes).
TINY = ["--batch-size", str(BATCH), "--audio-widths", "8,16", "--mel-bands", "32", "--text-width", "32",
        "--text-layers", "1", "--text-heads", "2", "--text-feed-forward", "64", "--max-text-length", "16",
        "--window-seconds", "4", "--shuffle-buffer", str(BUFFER), "--seed", str(SEED), "--threads", "1",
        "--log-every", "1", "--quiet"]


def shards(dataset: Any, **kw: Any) -> MulanShards:
    args: Dict[str, Any] = dict(batch_size=BATCH, seed=SEED, shuffle_buffer=BUFFER, window_seconds=4.0,
                                max_text_length=16, features="samples", steps=STEPS)
    args.update(kw)
    with pytest.warns(UserWarning, match="mixing tags=2,descriptions=2,playlists=1 instead"):
        return MulanShards(dataset, **args)


@pytest.fixture(scope="module")
def trained(sampler_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Any]:
    """mulan-train over the corpus for STEPS steps with --dump-batches and a checkpoint every 8 steps."""
    root = tmp_path_factory.mktemp("train")
    run = root / "run"
    dump = root / "batches.jsonl"
    run_tool([mulan_bin("mulan-train"), "run", "--dataset", str(sampler_corpus), "--run-dir", str(run), *TINY,
              "--steps", str(STEPS), "--checkpoint-every", "8", "--keep-checkpoints", "10",
              "--dump-batches", str(dump), "--dump-features", str(root / "features")], root)
    lines = [json.loads(l) for l in dump.read_text().splitlines()]
    return {"run": run, "dump": lines, "features": root / "features"}


def batches(ds: Any) -> List[Dict[str, Any]]:
    return list(ds)


def test_batches_equal_mulan_train(sampler_corpus: Path, trained: Dict[str, Any]) -> None:
    dump = trained["dump"]
    assert [l["step"] for l in dump] == list(range(STEPS))
    ours = batches(shards(sampler_corpus))
    assert len(ours) == STEPS
    for line, batch in zip(dump, ours):
        assert batch["step"] == line["step"]
        ex = line["examples"]
        assert batch["keys"] == [e["key"] for e in ex], f"step {line['step']}"
        assert batch["sources"] == [e["source"] for e in ex]
        assert batch["token_ids"] == [e["token_ids"] for e in ex]
        assert batch["window_offsets"].tolist() == [e["window_offset"] for e in ex]
        assert batch["index"].tolist() == list(range(BATCH))
    # The comparison crosses epochs: every source's stream rolled over at least once (playlists, the
    # smallest, several times), and some windows were drawn (offset > 0) while short clips got 0.
    final = ours[-1]["state"]["streams"]
    assert set(final) == {"tags", "descriptions", "playlists"}
    assert all(p["epoch"] >= 1 for p in final.values()), final
    assert final["playlists"]["epoch"] >= 3, final
    offsets = [o for b in ours for o in b["window_offsets"].tolist()]
    assert any(o > 0 for o in offsets) and any(o == 0 for o in offsets)


def test_config_json_gives_the_same_batches(sampler_corpus: Path, trained: Dict[str, Any]) -> None:
    """The run's config.json (mix, seed, batch size, buffer, window, max text length) drives MulanShards alike."""
    with pytest.warns(UserWarning, match="mixing"):
        ds = MulanShards(sampler_corpus, config=str(trained["run"] / "config.json"), features="samples", steps=STEPS)
    assert (ds.batch_size, ds.seed, ds.shuffle_buffer, ds.window_seconds, ds.max_text_length) == (BATCH, SEED, BUFFER, 4.0, 16)
    ours = batches(ds)
    assert [b["keys"] for b in ours] == [[e["key"] for e in l["examples"]] for l in trained["dump"]]
    assert [b["window_offsets"].tolist() for b in ours] == \
        [[e["window_offset"] for e in l["examples"]] for l in trained["dump"]]


def test_logmel_batches_equal_mulan_train_input(sampler_corpus: Path, trained: Dict[str, Any]) -> None:
    """The log-mel + SpecAugment batches equal the tensors mulan-train fed its model (--dump-features)
    for every example of 6 steps: decode, window offset, log-mel, and SpecAugment drawing from the
    example's generator after the offset. A wrong window or mask is off by tens of dB; the tolerance
    is the issue's 1e-5 of the largest magnitude, met by the exact log-mel (the default where libavutil
    loads: equal bit for bit); the NumPy path is 1.8e-5 away here and would fail it."""
    pytest.importorskip("mulan_torch.audio", reason="the log-mel front end (mulan_torch.audio) is not in this tree")
    with pytest.warns(UserWarning, match="mixing"):
        ds = MulanShards(sampler_corpus, config=str(trained["run"] / "config.json"), features="logmel", steps=6)
    assert ds._spec_dict is not None  # mulan-train's default SpecAugment is on in this run
    for batch, line in zip(ds, trained["dump"]):
        b, mels, frames = line["features"]
        expected = np.load(trained["features"] / f"step-{line['step']:06d}.npy").reshape(b, mels, frames)
        got = batch["audio"].numpy()
        assert got.shape == expected.shape
        for i in range(b):
            scale = float(np.abs(expected[i]).max())
            assert float(np.abs(got[i] - expected[i]).max()) <= 1e-5 * scale, (line["step"], i)  # the 1e-5: log_mel's exact path (the default) gives 0


def test_state_equals_mulan_train_checkpoint_sampler(sampler_corpus: Path, trained: Dict[str, Any]) -> None:
    ours = batches(shards(sampler_corpus))
    checkpoints = sorted(trained["run"].glob("checkpoint-*.safetensors"))
    assert len(checkpoints) == 3
    for path in checkpoints:
        with safe_open(str(path), "np") as f:
            meta = f.metadata()
        step = int(meta["step"])
        assert ours[step - 1]["state"]["step"] == step
        assert ours[step - 1]["state"]["streams"] == json.loads(meta["sampler"])["streams"], path.name
        # A MulanShards started from the checkpoint's sampler state continues as mulan-train did.
        if step < STEPS:
            ds = shards(sampler_corpus)
            ds.load_state_dict({"step": step, "streams": json.loads(meta["sampler"])["streams"]})
            rest = batches(ds)
            assert [b["keys"] for b in rest] == [[e["key"] for e in l["examples"]] for l in trained["dump"][step:]]


def test_tokens_are_wrapped_and_padded_as_mulan_train(sampler_corpus: Path) -> None:
    for batch in batches(shards(sampler_corpus, steps=6)):
        rows = batch["input_ids"].tolist()
        mask = batch["attention_mask"].tolist()
        length = max(min(len(t), 14) + 2 for t in batch["token_ids"])
        assert batch["input_ids"].shape == (BATCH, length)
        for ids, row, m in zip(batch["token_ids"], rows, mask):
            n = min(len(ids), 14) + 2
            assert row[:n] == [101] + ids[:14] + [102]
            assert row[n:] == [0] * (length - n)
            assert m == [1] * n + [0] * (length - n)
        assert all(isinstance(t, str) and t for t in batch["texts"])
    assert wrap_tokens(list(range(1000, 1020)), 16) == [101] + list(range(1000, 1014)) + [102]


def exact_cumulative(weights: Dict[str, int], total: int) -> Dict[str, int]:
    """Largest remainder with exact fractions (the oracle for SourceMix's float arithmetic)."""
    order = [s for s in ("tags", "descriptions", "playlists", "aset") if weights.get(s, 0) > 0]
    whole = sum(weights[s] for s in order)
    exact = {s: Fraction(total * weights[s], whole) for s in order}
    counts = {s: int(exact[s]) for s in order}
    left = total - sum(counts.values())
    for s in sorted(order, key=lambda s: (-(exact[s] - counts[s]), order.index(s)))[:left]:
        counts[s] += 1
    return counts


@pytest.mark.parametrize("weights,size", [(MIX, 12), (MIX, 64), ({"tags": 2, "descriptions": 2, "playlists": 1}, 12),
                                          ({"tags": 3, "aset": 1}, 7), ({"descriptions": 1}, 5)])
def test_quotas_follow_the_mix(weights: Dict[str, int], size: int) -> None:
    mix = SourceMix(weights)
    totals = {s: 0 for s in mix.sources}
    for k in range(200):
        q = mix.quotas(size, k)
        assert sum(q.values()) == size
        for s, n in q.items():
            target = Fraction(size * weights[s], sum(weights.values()))
            assert abs(n - target) < 1, (k, s, n, target)
            totals[s] += n
        assert totals == exact_cumulative(weights, size * (k + 1))


def test_batches_follow_quotas_and_hold_each_clip_once(sampler_corpus: Path) -> None:
    mix = SourceMix({"tags": 2, "descriptions": 2, "playlists": 1})
    for batch in batches(shards(sampler_corpus)):
        q = mix.quotas(BATCH, batch["step"])
        counts = {s: batch["sources"].count(s) for s in q}
        assert counts == q
        assert batch["sources"] == sorted(batch["sources"], key=["tags", "descriptions", "playlists"].index)
        assert len(set(batch["keys"])) == BATCH, batch["keys"]


def test_two_ranks_split_each_batch(sampler_corpus: Path) -> None:
    whole = batches(shards(sampler_corpus))
    parts = [batches(shards(sampler_corpus, rank=r, world_size=2)) for r in range(2)]
    assert len(parts[0]) == len(parts[1]) == len(whole) == STEPS
    for w, a, b in zip(whole, *parts):
        assert a["step"] == b["step"] == w["step"]
        assert set(a["keys"]).isdisjoint(b["keys"])
        assert a["keys"] + b["keys"] == w["keys"]
        assert a["index"].tolist() + b["index"].tolist() == list(range(BATCH))
        assert a["window_offsets"].tolist() + b["window_offsets"].tolist() == w["window_offsets"].tolist()
        assert torch.equal(torch.cat([a["audio"], b["audio"]]), w["audio"])
        assert a["state"] == b["state"] == w["state"]
    # Three ranks of 12: 4 each, still equal counts.
    thirds = [batches(shards(sampler_corpus, rank=r, world_size=3, steps=4)) for r in range(3)]
    assert [len(t) for t in thirds] == [4, 4, 4]
    assert all(len(t[0]["keys"]) == 4 for t in thirds)


def _ddp_rank(rank: int, dataset: str, port: int, out: str) -> None:
    """One process of a 2-process gloo group: MulanShards takes rank and world size from torch.distributed."""
    import warnings

    import torch.distributed as dist

    warnings.simplefilter("ignore")
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        ds = MulanShards(dataset, batch_size=BATCH, seed=SEED, shuffle_buffer=BUFFER, window_seconds=4.0,
                         max_text_length=16, features="samples", steps=10)
        assert (ds.rank, ds.world_size) == (rank, 2)
        seen = []
        for batch in torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2):
            n = torch.tensor([len(batch["keys"])])
            dist.all_reduce(n)   # a collective per batch, as DDP's backward does: an unequal count would hang
            seen.append({"step": batch["step"], "keys": batch["keys"], "total": int(n)})
        dist.barrier()
        Path(out).write_text(json.dumps(seen))
    finally:
        dist.destroy_process_group()


def test_torch_distributed_gloo_ranks(sampler_corpus: Path, tmp_path: Path) -> None:
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    outs = [str(tmp_path / f"rank{r}.json") for r in range(2)]
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_ddp_rank, args=(r, str(sampler_corpus), port, outs[r])) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=240)
    assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
    ranks = [json.loads(Path(o).read_text()) for o in outs]
    whole = batches(shards(sampler_corpus, steps=10))
    assert [len(r) for r in ranks] == [10, 10]
    for w, a, b in zip(whole, *ranks):
        assert a["step"] == b["step"] == w["step"] and a["total"] == b["total"] == BATCH
        assert a["keys"] + b["keys"] == w["keys"]


def same_batches(a: List[Dict[str, Any]], b: List[Dict[str, Any]]) -> None:
    assert [x["step"] for x in a] == [y["step"] for y in b]
    for x, y in zip(a, b):
        assert x["keys"] == y["keys"] and x["sources"] == y["sources"] and x["token_ids"] == y["token_ids"]
        assert torch.equal(x["window_offsets"], y["window_offsets"])
        assert torch.equal(x["audio"], y["audio"])
        assert x["state"] == y["state"]


def test_workers_yield_the_batches_in_order(sampler_corpus: Path) -> None:
    plain = batches(shards(sampler_corpus, steps=9))
    loader = torch.utils.data.DataLoader(shards(sampler_corpus, steps=9), batch_size=None, num_workers=2)
    same_batches(plain, list(loader))


def test_resume_with_two_workers_is_exact(sampler_corpus: Path) -> None:
    uninterrupted = batches(shards(sampler_corpus))
    ds = shards(sampler_corpus)
    loader = MulanLoader(ds, num_workers=2)
    first: List[Dict[str, Any]] = []
    for batch in loader:
        first.append(batch)
        if len(first) == 7:
            break
    state = loader.state_dict()
    assert state["step"] == 7
    del loader
    # A fresh process would build the dataset again and load the saved (JSON) state.
    state = json.loads(json.dumps(state))
    ds2 = shards(sampler_corpus)
    loader2 = MulanLoader(ds2, num_workers=2)
    loader2.load_state_dict(state)
    rest = list(loader2)
    same_batches(first + rest, uninterrupted)
    # The same with a plain DataLoader, from the state the last consumed batch carries.
    ds3 = shards(sampler_corpus)
    ds3.load_state_dict(uninterrupted[12]["state"])
    same_batches(list(torch.utils.data.DataLoader(ds3, batch_size=None, num_workers=2)), uninterrupted[13:])
    # In-process, state_dict() follows consumption; a state of other settings is refused.
    ds4 = shards(sampler_corpus)
    it = iter(ds4)
    for _ in range(5):
        next(it)
    assert ds4.state_dict() == uninterrupted[4]["state"]
    with pytest.raises(ValueError, match="seed"):
        shards(sampler_corpus, seed=SEED + 1).load_state_dict(state)
    with pytest.raises(ValueError, match="persistent_workers"):
        MulanLoader(ds4, num_workers=2, persistent_workers=True)


def test_shard_lists_and_pipe_urls_read_alike(sampler_corpus: Path) -> None:
    names = json.loads((sampler_corpus / "dataset.json").read_text())["splits"]["train"]["shards"]
    assert len(names) >= 4
    pattern = str(sampler_corpus / "train" / f"shard-{{000000..{len(names) - 1:06d}}}.tar")
    mix = {"tags": 2, "descriptions": 2, "playlists": 1}
    base = batches(shards(sampler_corpus, steps=8))
    listed = batches(MulanShards(pattern, mix=mix, batch_size=BATCH, seed=SEED, shuffle_buffer=BUFFER,
                                 window_seconds=4.0, max_text_length=16, features="samples", steps=8))
    piped = batches(MulanShards([f"pipe:cat {sampler_corpus / 'train' / n}" for n in names], mix=mix,
                                batch_size=BATCH, seed=SEED, shuffle_buffer=BUFFER, window_seconds=4.0,
                                max_text_length=16, features="samples", steps=8))
    for other in (listed, piped):
        for x, y in zip(base, other):
            assert x["keys"] == y["keys"] and x["token_ids"] == y["token_ids"]
            assert torch.equal(x["window_offsets"], y["window_offsets"]) and torch.equal(x["audio"], y["audio"])
        assert len(other) == 8


# MARK: damaged input


def copy_dataset(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=False)
    return dst


def members(path: Path) -> List[tarfile.TarInfo]:
    with tarfile.open(path) as t:
        return t.getmembers()


def test_truncated_shard_names_shard_and_member(sampler_corpus: Path, tmp_path: Path) -> None:
    data = copy_dataset(sampler_corpus, tmp_path / "d")
    shard = data / "train" / "shard-000001.tar"
    victim = [m for m in members(shard) if m.name.endswith(".flac")][1]
    with open(shard, "r+b") as f:
        f.truncate(victim.offset_data + victim.size // 2)
    with pytest.raises(ShardReadError) as e:
        batches(shards(data, steps=4))
    assert str(shard) in str(e.value) and victim.name in str(e.value) and "truncated" in str(e.value)
    assert e.value.shard == str(shard) and e.value.member == victim.name
    assert "mulan-shard verify" in str(e.value)
    ds = shards(data, steps=4, on_error="skip")
    with pytest.warns(UserWarning, match="skipped: .*truncated"):
        got = batches(ds)
    assert len(got) == 4 and all(len(b["keys"]) == BATCH for b in got)
    assert got[-1]["skipped"] == 1 and ds.errors.count == 1
    assert ds.errors.entries[0].member == victim.name
    # The clips before the cut are still used; the one cut and those after it never appear.
    lost = {m.name.split(".")[0] for m in members(sampler_corpus / "train" / "shard-000001.tar")}
    kept_before = {m.name.split(".")[0] for m in members(sampler_corpus / "train" / "shard-000001.tar")
                   if m.offset_data + m.size <= victim.offset_data and m.name.endswith(".json")} & \
        {m.name.split(".")[0] for m in members(sampler_corpus / "train" / "shard-000001.tar")
         if m.offset_data + m.size <= victim.offset_data and m.name.endswith(".flac")}
    seen = {k for b in got for k in b["keys"]}
    assert not (lost - kept_before) & seen


def test_corrupted_json_member_names_shard_and_member(sampler_corpus: Path, tmp_path: Path) -> None:
    data = copy_dataset(sampler_corpus, tmp_path / "d")
    shard = data / "train" / "shard-000002.tar"
    victim = [m for m in members(shard) if m.name.endswith(".json")][0]
    with open(shard, "r+b") as f:
        f.seek(victim.offset_data)
        f.write(b'{"texts": ' + b"x" * (victim.size - 10))
    with pytest.raises(SampleRecordError) as e:
        batches(shards(data, steps=4))
    assert str(shard) in str(e.value) and victim.name in str(e.value) and "not a sample record" in str(e.value)
    ds = shards(data, steps=4, on_error="skip")
    with pytest.warns(UserWarning, match=victim.name):
        got = batches(ds)
    assert got[-1]["skipped"] == 1 and ds.errors.entries[0].member == victim.name
    assert victim.name.split(".")[0] not in {k for b in got for k in b["keys"]}


def test_corrupted_flac_member_names_shard_and_member(sampler_corpus: Path, tmp_path: Path) -> None:
    data = copy_dataset(sampler_corpus, tmp_path / "d")
    shard = data / "train" / "shard-000000.tar"
    flacs = [m for m in members(shard) if m.name.endswith(".flac")]
    with open(shard, "r+b") as f:
        for victim in flacs:
            f.seek(victim.offset_data)
            f.write(b"\0" * victim.size)
    bad = {m.name for m in flacs}
    with pytest.raises(AudioDecodeError) as e:
        batches(shards(data, steps=STEPS))
    assert str(shard) in str(e.value) and e.value.member in bad
    ds = shards(data, steps=STEPS, on_error="skip")
    with pytest.warns(UserWarning, match="skipped"):
        got = batches(ds)
    # Damaged examples leave their batch (counted); the rest of each batch is as drawn.
    full = batches(shards(sampler_corpus))
    dropped = 0
    for g, w in zip(got, full):
        keep = [i for i, k in enumerate(w["keys"]) if k + ".flac" not in bad]
        assert g["keys"] == [w["keys"][i] for i in keep]
        assert g["index"].tolist() == keep
        dropped += BATCH - len(keep)
    assert dropped > 0 and ds.errors.count == len({k for w in full for k in w["keys"] if k + ".flac" in bad})


def test_everything_damaged_is_an_error_not_a_hang(sampler_corpus: Path, tmp_path: Path) -> None:
    data = copy_dataset(sampler_corpus, tmp_path / "d")
    for shard in (data / "train").glob("*.tar"):
        with open(shard, "r+b") as f:
            f.truncate(700)
    ds = shards(data, steps=4, on_error="skip")
    with pytest.raises(MulanDataError, match="has no texts of source tags.*after skipping damaged data"):
        batches(ds)
    assert ds.errors.count == len(list((data / "train").glob("*.tar")))
    assert all(isinstance(e, ShardReadError) and "truncated" in str(e) for e in ds.errors.entries)


def test_bad_arguments_are_refused(sampler_corpus: Path, tmp_path: Path) -> None:
    with pytest.raises(MulanDataError, match="no samples in split 'valid'"):
        MulanShards(sampler_corpus, split="valid")
    with pytest.raises(MulanDataError, match="cannot read .*dataset.json"):
        MulanShards(tmp_path)
    with pytest.raises(ValueError, match="rank 2"):
        MulanShards(sampler_corpus, rank=2, world_size=2, mix={"tags": 1})
    with pytest.raises(MulanDataError, match="no source of mix aset=1"):
        MulanShards(sampler_corpus, mix={"aset": 1})
    with pytest.raises(ValueError, match="features"):
        MulanShards(sampler_corpus, features="mfcc", mix={"tags": 1})
