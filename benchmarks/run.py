"""Run the throughput benchmark: one command, one Markdown table.

    python -m benchmarks.run [--rows 200000] [--repeats 3] [--scale 10]

Generates deterministic shards (cached under --work), then runs on the same data, each
--repeats times, round after round: the plain single-process script, the pandas script, the
Hugging Face ``datasets`` script, and ftprep with the benchmark recipe on DirectRunner with 1
worker and with one worker per core (exact dedup; exact and near dedup; no dedup; and the hf
target with Qwen2.5's real tokenizer files, where the test set-up fetched them). Reports the
median wall time, rows/s, the ratio to the plain script, and the peak resident memory summed
over every process of the run (and the largest single process). With --scale N it also runs
ftprep on one worker per core with exact, and with exact and near dedup, on N times the rows
(half the repeats, at least one), to check that memory stays flat and time grows linearly.
With --near-rows N it also runs ftprep on one worker per core, exact and exact+near dedup, on
N rows of which --near-share are near duplicates of earlier rows (the shape of scraped or
synthetic data): memory must stay flat in the number of duplicates too.
With --against REF (a git commit) every ftprep command also runs from a checkout of REF, in the
same rounds: a change's speed and memory against the code before it, on the same data and machine.
With --features, ftprep on one worker per core also runs with each data-quality feature on, in
the same rounds, to show what each costs beside the line without it: decontamination against
10,000 evaluation items (1,000 of them questions of the data), dedup.against the index of an
earlier run over the first shard (exact + near), and the shards mixed as three weighted sources.
Results go to stdout and to --table (benchmarks/results.md).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from benchmarks.generate import generate

HERE = Path(__file__).resolve().parent
# Lines of features an older commit may not have: not run --against it.
FEATURE_WORDS = ("decontaminate", "dedup.against", "weighted sources")


@dataclass
class Measurement:
    seconds: float
    peak_total_mb: float
    peak_process_mb: float


def _sample_tree(process, peaks: dict, stop: threading.Event) -> None:
    import psutil  # the bench extra; imported where used, so that tests import this module without it

    while not stop.is_set():
        try:
            members = [process, *process.children(recursive=True)]
            sizes = []
            for member in members:
                try:
                    sizes.append(member.memory_info().rss)
                except psutil.Error:
                    continue
            peaks["total"] = max(peaks["total"], sum(sizes))
            peaks["process"] = max(peaks["process"], max(sizes, default=0))
        except psutil.Error:
            pass
        stop.wait(0.1)


def measure(command: list[str], env: dict, cwd: Path | None = None) -> Measurement:
    """Run ``command``; wall time and peak RSS of its whole process tree, sampled every 0.1 s."""
    import psutil

    peaks = {"total": 0, "process": 0}
    stop = threading.Event()
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=cwd)
    sampler = threading.Thread(target=_sample_tree, args=(psutil.Process(child.pid), peaks, stop), daemon=True)
    sampler.start()
    _, stderr = child.communicate()
    elapsed = time.perf_counter() - started
    stop.set()
    sampler.join()
    if child.returncode not in (0,):
        raise RuntimeError(f"{' '.join(command)} exited {child.returncode}:\n{stderr.decode()[-3000:]}")
    return Measurement(elapsed, peaks["total"] / 2**20, peaks["process"] / 2**20)


PLAIN = "plain script (1 process)"
NEAR = "{threshold: 0.8}"


# A real open-weights model's tokenizer and chat template for the hf target's line (the test
# set-up fetches it, sha256-checked: python -m tests.real_tokenizers qwen2_5).
HF_TOKENIZER = HERE.parent / ".cache" / "tokenizers" / "qwen2_5"
# The packed lines' sequence length (the benchmark's examples have at most ~700 tokens).
PACK_LENGTH = 4096


def prepare_features(paths: list[Path], work: Path) -> dict[str, str]:
    """What the --features lines need, made once per data set and kept under ``work``: an
    evaluation set, an earlier run's output (its dedup index) and a recipe of three sources."""
    import json

    import yaml

    from benchmarks.generate import rows

    home = work / f"features-{paths[0].parent.name}"
    home.mkdir(parents=True, exist_ok=True)
    evals = home / "evals.jsonl"
    if not evals.exists():
        ours = pq.read_table(paths[0], columns=["instruction"]).column("instruction").to_pylist()[::50][:1000]
        others = [row["instruction"] for row in rows(9000, seed=99)]
        evals.write_text("".join(json.dumps({"question": q}) + "\n" for q in ours + others), encoding="utf-8")
    reference = home / "reference"
    if not (reference / "_SUCCESS").exists():
        subprocess.run([sys.executable, "-m", "beam_pipeline", "run", str(HERE / "recipe.yaml"), "--overwrite",
                        "--no-progress", "--input", str(paths[0]), "--output", str(reference),
                        "--set", f"dedup.near={NEAR}"], check=True, capture_output=True, cwd=HERE.parent)
    mix = home / "mix.yaml"
    recipe = yaml.safe_load((HERE / "recipe.yaml").read_text())
    groups = [paths[:1], paths[1:2], paths[2:]] if len(paths) >= 3 else [paths[:1]] * 3
    recipe["input"] = {"sources": [{"name": name, "paths": [str(p) for p in group], "weight": weight}
                                   for name, group, weight in zip(("tickets", "docs", "synthetic"), groups, (0.5, 0.3, 0.2))]}
    mix.write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
    return {"evals": str(evals), "reference": str(reference), "mix": str(mix)}


def feature_lines(ftprep: list[str], out: Path, workers: int, parallel: list[str], prepared: dict) -> dict:
    evals = f"{{evals: [{{name: bench, paths: [{prepared['evals']}], fields: [question]}}]}}"
    mixed = [arg for arg in ftprep if arg != "--input" and not arg.endswith(".parquet")]
    mixed[mixed.index(str(HERE / "recipe.yaml"))] = prepared["mix"]
    return {
        f"ftprep + decontaminate (10,000 items), {workers} workers": [
            *ftprep, "--output", str(out / "ftprep-decon"), "--set", f"decontaminate={evals}", *parallel],
        f"ftprep exact+near + dedup.against, {workers} workers": [
            *ftprep, "--output", str(out / "ftprep-against"), "--set", f"dedup.near={NEAR}",
            "--set", f"dedup.against=[{prepared['reference']}]", *parallel],
        f"ftprep, 3 weighted sources, {workers} workers": [*mixed, "--output", str(out / "ftprep-mix"), *parallel],
    }


def commands(paths: list[Path], out: Path, features: dict | None = None) -> dict[str, list[str]]:
    files = [str(p) for p in paths]
    workers = os.cpu_count() or 1
    ftprep = [sys.executable, "-m", "beam_pipeline", "run", str(HERE / "recipe.yaml"), "--overwrite", "--no-progress",
              *[arg for path in files for arg in ("--input", path)]]
    parallel = [f"--direct_num_workers={workers}", "--direct_running_mode=multi_processing"]
    return {
        PLAIN: [sys.executable, "-m", "benchmarks.plain", str(out / "plain"), *files],
        "pandas script (1 process)": [sys.executable, "-m", "benchmarks.pandas_script", str(out / "pandas"), *files],
        f"HF datasets, num_proc={workers}": [sys.executable, "-m", "benchmarks.hf_datasets", str(out / "hf"),
                                             str(workers), *files],
        "ftprep, 1 worker": [*ftprep, "--output", str(out / "ftprep-1"), "--direct_num_workers=1",
                             "--direct_running_mode=in_memory"],
        f"ftprep, {workers} workers": [*ftprep, "--output", str(out / "ftprep-n"), *parallel],
        f"ftprep exact+near dedup, {workers} workers": [*ftprep, "--output", str(out / "ftprep-near"),
                                                       "--set", f"dedup.near={NEAR}", *parallel],
        f"ftprep without dedup, {workers} workers": [*ftprep, "--output", str(out / "ftprep-nd"),
                                                    "--set", "dedup.exact=false", *parallel],
        **(feature_lines(ftprep, out, workers, parallel, features) if features else {}),
        **(open_weights(ftprep, files, out, workers, parallel) if HF_TOKENIZER.is_dir() else {}),
    }


def open_weights(ftprep: list[str], files: list[str], out: Path, workers: int, parallel: list[str]) -> dict:
    """The same recipe for an open-weights model: each example rendered through Qwen2.5's chat
    template (TRL's training version where trl is installed) and tokenized — counted and written as
    TRL's rows, or written as the tokens and masks the trainer trains on (output.tokens: trl) — and
    what a TRL user runs to make those tokens and masks (benchmarks/trl_style.py)."""
    hf = [*ftprep, "--target", "hf", "--tokenizer", str(HF_TOKENIZER), "--model", "Qwen2.5"]
    longest = ["--max-length", "32768"]  # nothing rejected for its length
    lines = {
        f"ftprep --target hf (Qwen2.5), {workers} workers": [*hf, *longest, "--output", str(out / "ftprep-hf"),
                                                           *parallel],
        f"ftprep --target hf, output.tokens: trl, {workers} workers": [
            *hf, *longest, "--output", str(out / "ftprep-tokens"), "--set", "output.format=parquet",
            "--set", "output.tokens=trl", *parallel],
        # (--max-length, not --set target.max_length: the command line's flags apply after --set)
        f"ftprep --target hf, tokens packed to {PACK_LENGTH:,}, {workers} workers": [
            *hf, "--max-length", str(PACK_LENGTH), "--output", str(out / "ftprep-packed"),
            "--set", "output.format=parquet", "--set", "output.tokens=trl", "--set", "target.packing=true", *parallel],
    }
    template = trl_training_template()
    if template is not None and importlib.util.find_spec("transformers") is not None:
        lines[f"TRL-style datasets.map (Qwen2.5), num_proc={workers}"] = [
            sys.executable, "-m", "benchmarks.trl_style", str(out / "trl-style"), str(workers), str(HF_TOKENIZER),
            str(template), *files]
        lines[f"TRL-style map + pack_dataset to {PACK_LENGTH:,}, num_proc={workers}"] = [
            sys.executable, "-m", "benchmarks.trl_style", str(out / "trl-packed"), str(workers), str(HF_TOKENIZER),
            str(template), f"--pack={PACK_LENGTH}", *files]
    return lines


def trl_training_template() -> Path | None:
    """TRL's training version of Qwen2.5's template, from the installed trl (not imported)."""
    spec = importlib.util.find_spec("trl")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "chat_templates" / "qwen2_5_training.jinja"
    return path if path.is_file() else None


def environment(work: Path) -> dict:
    """For every command: the tiktoken files resolved (offline, verified) by ftprep into a cache
    the scripts' tiktoken reads too, and Hugging Face's cache under the work directory."""
    cache = work / "tiktoken-cache"
    env = {**os.environ, "PYTHONPATH": str(HERE.parent), "TIKTOKEN_CACHE_DIR": str(cache),
           "HF_DATASETS_CACHE": str(work / "hf-cache"), "HF_HUB_OFFLINE": "1"}
    os.environ["TIKTOKEN_CACHE_DIR"] = str(cache)
    from transforms.encodings import load_encoding

    load_encoding("o200k_base")
    return env


def checkout(ref: str, work: Path) -> tuple[str, Path]:
    """The repository at ``ref`` (its short commit and a directory holding its files)."""
    repo = HERE.parent
    commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", ref], check=True, capture_output=True,
                            text=True).stdout.strip()
    target = work / f"checkout-{commit}"
    if not target.exists():
        # Unpacked beside it and renamed when whole: an interrupted unpack is never reused.
        work.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(dir=work, prefix=f".checkout-{commit}-"))
        archive = subprocess.run(["git", "-C", str(repo), "archive", commit], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(partial)], input=archive, check=True)
        partial.rename(target)
    return commit, target


def run_all(paths: list[Path], rows: int, repeats: int, work: Path, names: list[str] | None = None,
            against: tuple[str, Path] | None = None, features: dict | None = None) -> dict[str, list[Measurement]]:
    env = environment(work)
    results: dict[str, list[Measurement]] = {}
    with tempfile.TemporaryDirectory(dir=work) as out:
        todo = {name: (command, env, None) for name, command in commands(paths, Path(out), features).items()
                if names is None or name in names}
        if against is not None:
            commit, tree = against
            # The same command line, run in the checkout with it first on the path (workers
            # inherit both): `python -m` puts the working directory before everything else.
            old_env = {**env, "PYTHONPATH": str(tree)}
            for name, (command, _, _) in list(todo.items()):
                if name.startswith("ftprep") and not any(word in name for word in FEATURE_WORDS):
                    old = [str(tree / "benchmarks" / "recipe.yaml") if arg == str(HERE / "recipe.yaml") else arg
                           for arg in command]
                    old = [arg.replace(out, f"{out}/at-{commit}") if arg.startswith(out) else arg for arg in old]
                    todo[f"{name} @{commit}"] = (old, old_env, tree)
        # Round after round of every command, not every run of one command then the next: the
        # machine is shared, and a slow spell should slow every command alike.
        for attempt in range(repeats):
            for name, (command, command_env, cwd) in todo.items():
                m = measure(command, command_env, cwd)
                results.setdefault(name, []).append(m)
                print(f"  {name:<40} run {attempt + 1}: {m.seconds:7.2f} s, {rows / m.seconds:9,.0f} rows/s, "
                      f"peak {m.peak_total_mb:,.0f} MB total / {m.peak_process_mb:,.0f} MB largest process", flush=True)
    return results


def median(values):
    return statistics.median(values)


def table(results: dict[str, list[Measurement]], rows: int, label: str) -> list[str]:
    baseline = median([m.seconds for m in results[PLAIN]]) if PLAIN in results else None
    lines = [
        f"| {label} | median s | rows/s | × plain script | peak MB (all processes) | peak MB (largest process) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, ms in results.items():
        seconds = median([m.seconds for m in ms])
        ratio = f"{baseline / seconds:.2f}×" if baseline else "—"
        lines.append(
            f"| {name} | {seconds:.2f} | {rows / seconds:,.0f} | {ratio} | "
            f"{median([m.peak_total_mb for m in ms]):,.0f} | {median([m.peak_process_mb for m in ms]):,.0f} |"
        )
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scale", type=int, default=0, help="also run ftprep on SCALE times the rows")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "ftprep-bench")
    parser.add_argument("--table", type=Path, default=HERE / "results.md")
    parser.add_argument("--near-rows", type=int, default=0, help="also run dedup on this many rows with near duplicates")
    parser.add_argument("--near-share", type=float, default=0.4, help="the share of those rows that are near duplicates")
    parser.add_argument("--against", metavar="REF", help="also run every ftprep command from this git commit")
    parser.add_argument("--features", action="store_true",
                        help="also run ftprep with decontamination, dedup.against and weighted sources")
    args = parser.parse_args(argv)
    against = checkout(args.against, args.work) if args.against else None

    paths = generate(args.work / f"rows-{args.rows}", args.rows, args.shards)
    chars = sum(len(v or "") for path in paths for row in pq.read_table(path).to_pylist() for v in row.values())
    print(f"data: {args.rows:,} rows, {chars / 1e6:,.0f} M characters, {args.shards} shards", flush=True)
    features = prepare_features(paths, args.work) if args.features else None
    results = run_all(paths, args.rows, args.repeats, args.work, against=against, features=features)

    import psutil

    machine = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
               f"{psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()}")
    lines = [
        "# ftprep throughput benchmark",
        "",
        f"`python -m benchmarks.run --rows {args.rows} --repeats {args.repeats}"
        + (f" --scale {args.scale}" if args.scale else "")
        + (f" --near-rows {args.near_rows} --near-share {args.near_share:g}" if args.near_rows else "")
        + (f" --against {args.against}" if args.against else "") + (" --features" if args.features else "") + "`",
        f"on {machine}; {time.strftime('%Y-%m-%d')}.",
        f"Data: {args.rows:,} rows ({chars / 1e6:,.0f} M characters) in {args.shards} Parquet shards; medians of {args.repeats} runs.",
        "",
        *table(results, args.rows, f"{args.rows:,} rows"),
    ]
    if args.scale:
        big = args.rows * args.scale
        big_paths = generate(args.work / f"rows-{big}", big, args.shards)
        print(f"scale: {big:,} rows", flush=True)
        names = [n for n in results if n.startswith("ftprep") and "workers" in n and "without" not in n and "@" not in n]
        scaled = run_all(big_paths, big, max(1, args.repeats // 2), args.work, names, against)
        lines += ["", *table(scaled, big, f"{big:,} rows")]
        for name in names:
            small, large = median([m.seconds for m in results[name]]), median([m.seconds for m in scaled[name]])
            lines.append(f"\n{name}: {args.scale}× the rows took {large / small:.1f}× the time; peak memory "
                         f"{median([m.peak_total_mb for m in results[name]]):,.0f} → {median([m.peak_total_mb for m in scaled[name]]):,.0f} MB "
                         f"(largest process {median([m.peak_process_mb for m in results[name]]):,.0f} → "
                         f"{median([m.peak_process_mb for m in scaled[name]]):,.0f} MB).")
    if args.near_rows:
        near_paths = generate(args.work / f"rows-{args.near_rows}-near{args.near_share:g}", args.near_rows, args.shards,
                              near_duplicates=args.near_share)
        print(f"near duplicates: {args.near_rows:,} rows, {args.near_share:.0%} near duplicates", flush=True)
        names = [n for n in results if n.startswith(("ftprep, ", "ftprep exact+near")) and "worker" in n and "@" not in n
                 and not n.endswith("1 worker")]
        near = run_all(near_paths, args.near_rows, max(1, args.repeats // 2), args.work, names, against)
        lines += ["", *table(near, args.near_rows, f"{args.near_rows:,} rows, {args.near_share:.0%} near duplicates")]
    text = "\n".join(lines) + "\n"
    args.table.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
