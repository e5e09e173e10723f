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


def cpu_seconds(who):
    """User + system CPU of the getrusage targets in `who`, summed."""
    return sum(r.ru_utime + r.ru_stime for r in map(resource.getrusage, who))


def measure(script, args):
    spec = importlib.util.spec_from_file_location("demo_corpus_under_test", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cpu = collections.defaultdict(float)
    calls = collections.Counter()
    # One job (below): a step's CPU is the CPU that grew while it ran, which holds only when nothing
    # else runs beside it. A tool the generator starts is counted in its children's CPU; FluidSynth,
    # when the generator runs it in its own process (libfluidsynth through ctypes, a `synthesize`
    # function), in the process's own CPU and any child's.

    def timed(function, step, who):
        def wrapper(*arguments):
            before = cpu_seconds(who)
            result = function(*arguments)
            name = step(*arguments)
            cpu[name] += cpu_seconds(who) - before
            calls[name] += 1
            return result
        return wrapper

    module.run = timed(module.run, lambda cmd, what: what, [resource.RUSAGE_CHILDREN])
    if hasattr(module, "synthesize"):
        module.synthesize = timed(module.synthesize, lambda *_: "fluidsynth",
                                  [resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN])
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
