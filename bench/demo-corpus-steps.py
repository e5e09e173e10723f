#!/usr/bin/env python3
"""CPU time of each rendering step of scripts/make-demo-corpus.py (FluidSynth, the shaping and
measuring ffmpeg pass, the encoding ffmpeg pass), for one or more versions of the generator run one
after the other on the same arguments, one job each.

Each generator runs in this process with its `run` (the one place it starts a tool) wrapped: the
children's user + system CPU is summed per step name. A generator that renders with libfluidsynth in
its own process (a `synthesize` function) has that wrapped too: the process's own CPU while it runs. The corpora go to a scratch folder and are
deleted.

Usage:
  bench/demo-corpus-steps.py [--tracks N] [--seed S] [--soundfonts A,B] SCRIPT [SCRIPT ...]

e.g. the generator of an earlier commit beside the current one:
  git show COMMIT:scripts/make-demo-corpus.py > /tmp/before.py
  bench/demo-corpus-steps.py --tracks 24 /tmp/before.py scripts/make-demo-corpus.py
"""
import argparse
import collections
import importlib.util
import os
import resource
import shutil
import sys
import tempfile
import time


def measure(script, args):
    spec = importlib.util.spec_from_file_location("demo_corpus_under_test", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cpu = collections.defaultdict(float)
    calls = collections.Counter()
    run = module.run
    # One job (below): a step's CPU is the children's CPU that grew while it ran, which holds only when
    # nothing else runs beside it.

    def timed(cmd, what):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        result = run(cmd, what)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu[what] += (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        calls[what] += 1
        return result

    module.run = timed
    # Since FluidSynth runs in the generator's own process (libfluidsynth through ctypes), its step is
    # the process's own CPU, and any child's, while `synthesize` runs.
    if hasattr(module, "synthesize"):
        synthesize = module.synthesize

        def cpu_now():
            own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
            return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

        def timed_synthesize(t, mid, wav):
            before = cpu_now()
            synthesize(t, mid, wav)
            cpu["fluidsynth"] += cpu_now() - before
            calls["fluidsynth"] += 1

        module.synthesize = timed_synthesize
    scratch = tempfile.mkdtemp(prefix="demo-corpus-steps-")
    try:
        sys.argv = [script, "--out", os.path.join(scratch, "corpus"), "--tracks", str(args.tracks), "--seed", str(args.seed),
                    "--soundfonts", args.soundfonts, "--jobs", "1"]
        start = time.monotonic()
        status = module.main()
        wall = time.monotonic() - start
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if status != 0:
        sys.exit(f"demo-corpus-steps: {script} exited {status}")
    return wall, cpu, calls


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracks", type=int, default=24)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--soundfonts", default="fluidr3,musescore")
    parser.add_argument("scripts", nargs="+")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    rows = []
    for script in args.scripts:
        wall, cpu, calls = measure(script, args)
        rows.append((script, wall, cpu, calls))
    steps = sorted({s for _, _, cpu, _ in rows for s in cpu})
    print(f"demo corpus: {args.tracks} tracks, seed {args.seed}, soundfonts {args.soundfonts}, 1 job; "
          f"load average before: {load:.2f}")
    print("| generator | wall (s) | " + " | ".join(f"{s} CPU (s), calls" for s in steps) + " |")
    print("|---|---:|" + "---:|" * len(steps))
    for script, wall, cpu, calls in rows:
        print(f"| {script} | {wall:.1f} | " + " | ".join(f"{cpu.get(s, 0):.1f}, {calls.get(s, 0)}" for s in steps) + " |")


if __name__ == "__main__":
    main()
