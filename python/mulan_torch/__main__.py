"""``python -m mulan_torch`` / ``mulan-torch``: the package's command line.

Subcommands:

``export-parquet DATASET [--out FILE]``
    One Parquet row per sample of a mulan-shard dataset, written beside the shards
    (``DATASET/samples.parquet``); see :mod:`mulan_torch.parquet`.

``musicnn convert --model-dir DIR --out FILE``
    A musicnn model folder's TensorFlow checkpoint as safetensors with mulan's names (no TensorFlow
    needed); see :mod:`mulan_torch.musicnn`.

Exit codes follow the toolkit's (docs/exit-codes.md): 0 done, 64 usage (not a dataset folder, a bad
option), 1 fatal (a damaged shard: the message names it and the member).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import List, NoReturn, Optional

from . import __version__

EX_USAGE = 64


class _Parser(argparse.ArgumentParser):
    """argparse with the toolkit's usage exit code (64, not 2)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EX_USAGE, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mulan-torch", description="The PyTorch side of the mulan toolkit.")
    parser.add_argument("--version", action="version", version=f"mulan-torch {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    export = commands.add_parser(
        "export-parquet", help="write one Parquet row per sample of a mulan-shard dataset",
        description="Writes DATASET/samples.parquet (or --out): one row per sample with its key, shard, split, "
                    "track id, clip index, start, duration, kept texts per source, loudness, duplicate group and "
                    "filter versions. Written under a temporary name and renamed when complete.")
    export.add_argument("dataset", type=Path, help="the dataset folder mulan-shard wrote (holds dataset.json)")
    export.add_argument("--out", type=Path, default=None, help="where to write (default: DATASET/samples.parquet)")
    export.add_argument("--quiet", action="store_true", help="print nothing on success")
    commands.add_parser("musicnn", add_help=False, help="musicnn's pretrained taggers: mulan-torch musicnn convert "
                                                        "--model-dir DIR --out FILE (see python -m mulan_torch.musicnn)")
    commands.add_parser("train", add_help=False, help="train under torchrun or alone: python -m mulan_torch.train "
                                                      "(mulan-torch train --help lists its options)")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Runs a subcommand; returns the exit code."""
    arguments = sys.argv[1:] if argv is None else list(argv)
    if arguments[:1] == ["train"]:
        from .train import main as train

        return train(arguments[1:])
    if arguments[:1] == ["musicnn"]:
        from .musicnn import main as musicnn

        return musicnn(arguments[1:], prog="mulan-torch musicnn")
    args = _parser().parse_args(arguments)
    from .shardfiles import ShardError, UsageError

    try:
        if args.command == "export-parquet":
            from .parquet import export_parquet

            summary = export_parquet(args.dataset, args.out)
            if not args.quiet:
                print(json.dumps({"path": str(summary.path), "rows": summary.rows, "shards": summary.shards,
                                  "rows_by_split": summary.rows_by_split}, sort_keys=True))
            return 0
    except UsageError as error:
        print(f"mulan-torch {args.command}: {error}", file=sys.stderr)
        return EX_USAGE
    except ShardError as error:
        print(f"mulan-torch {args.command}: {error}", file=sys.stderr)
        return 1
    return EX_USAGE  # pragma: no cover - argparse requires a command


if __name__ == "__main__":
    sys.exit(main())
