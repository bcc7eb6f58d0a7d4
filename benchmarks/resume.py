"""How much of a run ``--resume`` saves: kill -9 a run after about half of its read units are
complete, resume it, and compare with an uninterrupted run of the same data.

    python -m benchmarks.resume [--rows 200000] [--repeats 3]

Round after round (the machine is shared): a full run, timed; the same run killed (the launcher
and its workers, as ``kill -9`` of its process group does) once half of its units have written
their ``.done`` file; ``--resume`` of it, timed. Reports the medians, the resumed run's share of
the full run's time, and whether the resumed outputs are byte for byte the full run's (every
file but ``report.html``, which names its directory, and ``_FTPREP``, which holds the time).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.generate import generate
from benchmarks.run import HERE, environment

NOT_COMPARED = {"report.html", "_FTPREP"}


def every_file(output: Path) -> dict[str, bytes]:
    return {str(p.relative_to(output)): p.read_bytes() for p in sorted(output.rglob("*"))
            if p.is_file() and p.name not in NOT_COMPARED}


def planned_units(paths: list[Path]) -> int:
    from transforms.readers.registry import plan_file

    return sum(len(plan_file(str(path), "parquet", None)) for path in paths)


def command(paths: list[Path], out: Path, *extra: str) -> list[str]:
    workers = os.cpu_count() or 1
    return [sys.executable, "-m", "beam_pipeline", "run", str(HERE / "recipe.yaml"), "--no-progress",
            *[arg for path in paths for arg in ("--input", str(path))], "--output", str(out),
            f"--direct_num_workers={workers}", "--direct_running_mode=multi_processing", *extra]


def timed(argv: list[str], env: dict) -> float:
    started = time.perf_counter()
    result = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {result.returncode}:\n{result.stderr.decode()[-3000:]}")
    return time.perf_counter() - started


def killed_halfway(argv: list[str], env: dict, out: Path, half: int) -> int:
    """Start the run, kill its whole process group once ``half`` units are complete; the number
    of units complete after the kill."""
    units = out / "_temporary" / "units"
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    while process.poll() is None and len(list(units.glob("*.unit.done"))) < half:
        time.sleep(0.05)
    if process.poll() is not None:
        raise RuntimeError("the run finished before half of its units were complete")
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    return len(list(units.glob("*.unit.done")))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "ftprep-bench")
    args = parser.parse_args(argv)
    paths = generate(args.work / f"rows-{args.rows}", args.rows, args.shards)
    env = environment(args.work)
    total = planned_units(paths)
    full_times, resume_times, done_at_kill = [], [], []
    with tempfile.TemporaryDirectory(dir=args.work) as scratch:
        full, resumed = Path(scratch) / "full", Path(scratch) / "resumed"
        for attempt in range(args.repeats):
            full_times.append(timed(command(paths, full, "--overwrite"), env))
            done_at_kill.append(killed_halfway(command(paths, resumed, "--overwrite"), env, resumed, total // 2))
            resume_times.append(timed(command(paths, resumed, "--resume"), env))
            print(f"  round {attempt + 1}: full {full_times[-1]:.2f} s; killed with {done_at_kill[-1]}/{total} units "
                  f"complete; --resume {resume_times[-1]:.2f} s ({resume_times[-1] / full_times[-1]:.0%})", flush=True)
        expected, got = every_file(full), every_file(resumed)
        same = sorted(got) == sorted(expected) and all(got[name] == expected[name] for name in expected)
    full_s, resume_s = statistics.median(full_times), statistics.median(resume_times)
    print(f"{args.rows:,} rows, {total} read units, {os.cpu_count()} workers, medians of {args.repeats}: "
          f"full run {full_s:.2f} s; --resume after a kill at {statistics.median(done_at_kill):.0f}/{total} units "
          f"{resume_s:.2f} s = {resume_s / full_s:.0%} of the full run; outputs byte-identical: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
