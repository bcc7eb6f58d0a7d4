"""The README and docs/ stay true: links resolve, recipes validate, commands parse, samples are
what the commands print, and the README's everyday tasks run as written.

A sample is a fenced block right after ``<!-- sample: COMMAND -->`` (the command's printed
lines) or ``<!-- sample-json: FILE -->`` (an excerpt of a JSON file the commands before it
wrote; ``"…": "…"`` stands for keys left out). The commands run in this process, from a scratch
directory that holds the repository's ``examples/``, with ``--direct_running_mode=in_memory
--no-progress`` added to ``run`` and ``validate`` (the same outputs, without starting worker
processes). ``python -m tests.test_docs --write`` rewrites the samples from real output.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TASKS = "## Five everyday tasks"
README_LIMIT = 250


@dataclass
class Block:
    page: Path
    lang: str
    body: str
    line: int  # of the opening fence, 1-based
    sample: str | None  # the command (or JSON file) whose output the block is
    json_sample: bool = False


def blocks(page: Path) -> list[Block]:
    found, lines = [], page.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        fence = re.match(r"^(\s*)```(\w*)\s*$", lines[i])
        if not fence:
            i += 1
            continue
        marker = re.match(r"^<!-- (sample|sample-json): (.+) -->$", lines[i - 1].strip()) if i else None
        end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
        body = "\n".join(line[len(fence[1]):] for line in lines[i + 1:end])
        found.append(Block(page, fence[2], body, i + 1, marker[2] if marker else None,
                           bool(marker and marker[1] == "sample-json")))
        i = end + 1
    return found


def section(page: Path, heading: str) -> str:
    text = page.read_text(encoding="utf-8")
    start = text.index(heading + "\n")
    rest = text[start + len(heading):]
    following = re.search(r"^## ", rest, flags=re.M)
    return text[start:start + len(heading) + (following.start() if following else len(rest))]


def commands(text: str) -> list[str]:
    """The ``ftprep`` command lines of a page's (or section's) ``bash`` blocks, without comments."""
    found = []
    for body in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        joined = re.sub(r"\\\n\s*", " ", body)
        for line in joined.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line.startswith("$ "):
                line = line[2:]
            if line.startswith("ftprep "):
                found.append(line)
    return found


# ----------------------------------------------------------------------------- pages and links


def test_the_readme_is_short_and_links_every_docs_page():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= README_LIMIT
    for page in PAGES[1:]:
        assert f"](docs/{page.name})" in readme, f"README does not link docs/{page.name}"


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation but - and _ removed, spaces to -."""
    text = re.sub(r"[`*]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    return {_slug(h) for h in re.findall(r"^#{1,6} (.+)$", text, flags=re.M)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(page):
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"^[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(target)
        elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
            broken.append(target)
    assert not broken, f"{page.name}: {broken}"


# ----------------------------------------------------------------------------- recipes and commands


def _recipe_sections() -> set[str]:
    from schemas.recipe import Recipe

    return {field.alias or name for name, field in Recipe.model_fields.items()}


BASE_RECIPE = {
    "input": {"paths": ["data/*.parquet"]},
    "template": {"messages": [{"role": "user", "content": "{{ q }}"}, {"role": "assistant", "content": "{{ a }}"}]},
    "model": "gpt-4o-mini-2024-07-18",
    "output": {"path": "out/docs"},
}


def _yaml_blocks():
    return [b for page in PAGES for b in blocks(page) if b.lang == "yaml"]


@pytest.mark.parametrize("block", _yaml_blocks(), ids=lambda b: f"{b.page.name}:{b.line}")
def test_every_recipe_in_the_docs_validates(block):
    """A YAML block of recipe sections is checked as a recipe (with the sections it leaves out
    taken from a minimal one); YAML that is not a recipe's (a compose file) is left alone."""
    from beam_pipeline.recipe import recipe_from_document

    doc = yaml.safe_load(block.body)
    sections = _recipe_sections()
    if not isinstance(doc, dict) or not set(doc) & sections:
        return
    assert set(doc) <= sections, f"not recipe sections: {sorted(set(doc) - sections)}"
    document = {**BASE_RECIPE, **doc}
    if "template" not in doc and doc.get("input", {}).get("examples"):
        document.pop("template")
    recipe_from_document(document, origin=f"{block.page.name} line {block.line}")


def _keys(annotation) -> set[str]:
    """The keys of a recipe section's model (and of the models it nests), wherever a union or a
    list holds them."""
    import typing

    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return {key for name, field in annotation.model_fields.items()
                for key in {field.alias or name} | _keys(field.annotation)}
    return {key for arg in typing.get_args(annotation) for key in _keys(arg)}


def test_every_recipe_key_is_in_the_reference():
    """Each key of each section (nested ones too) appears as ``key:`` in that section of docs/recipe.md."""
    from schemas.recipe import Recipe

    page = ROOT / "docs" / "recipe.md"
    missing = []
    for name, field in Recipe.model_fields.items():
        text = section(page, f"## {field.alias or name}")
        missing += [f"{name}.{key}" for key in sorted(_keys(field.annotation)) if not re.search(rf"\b{key}:", text)]
    assert not missing, f"docs/recipe.md does not show: {missing}"


def _documented_commands():
    return [(page, line) for page in PAGES for line in commands(page.read_text(encoding="utf-8"))]


@pytest.mark.parametrize("page, line", _documented_commands(), ids=lambda x: x.name if isinstance(x, Path) else x[:60])
def test_every_documented_command_and_flag_exists(page, line):
    """Each ``ftprep COMMAND`` in a bash block is a command, and each ``--flag`` on its line is
    one of that command's (or, for run and validate, a Beam pipeline option)."""
    from beam_pipeline.cli import _flags_of, _parser
    from beam_pipeline.options import _beam_parser

    parser = _parser()
    command = line.split()[1]
    if command.startswith("-"):
        assert command in ("--version", "--help", "-h"), line
        return
    assert command in ("run", "preview", "inspect", "validate", "metrics"), f"{page.name}: no command {command}: {line}"
    known = set(_flags_of(parser, command)) | {"--help"}
    if command in ("run", "validate"):
        known |= {f for f in _beam_parser()._option_string_actions if f.startswith("--")}
    flags = {f for f in re.findall(r"(?<![\w-])(--[a-z][\w-]*)", line)}
    assert flags <= known, f"{page.name}: {line}: unknown {sorted(flags - known)}"


@pytest.mark.parametrize("command", ["run", "preview", "inspect", "validate", "metrics"])
def test_every_command_the_docs_name_has_help(command, capsys):
    from beam_pipeline.cli import main

    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0 and capsys.readouterr().out.startswith(f"usage: ftprep {command}")


def test_ftprep_is_on_the_path_of_the_environment_it_is_installed_in():
    """The README's first step after ``make run``: ``.venv/bin/ftprep``, the console script."""
    script = Path(sys.executable).parent / "ftprep"
    done = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("ftprep "), done


# ----------------------------------------------------------------------------- running them


@contextlib.contextmanager
def workspace():
    """A scratch directory holding the repository's examples/, as the current directory."""
    previous = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="ftprep-docs-") as directory:
        os.symlink(ROOT / "examples", Path(directory) / "examples")
        os.chdir(directory)
        try:
            yield Path(directory)
        finally:
            os.chdir(previous)


def execute(line: str) -> tuple[int, str]:
    """Run one documented command in this process: its exit code and what it printed."""
    from beam_pipeline.cli import main

    argv = shlex.split(line)[1:]
    if argv[0] in ("run", "validate"):
        argv += ["--direct_running_mode=in_memory", "--no-progress"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = main(argv)
    return code, out.getvalue()


def normalise(text: str, here: Path) -> str:
    """What may differ between runs and machines: where it ran, the time taken, days left."""
    # A page may write where it ran as /…/ (what a user sees is an absolute path).
    text = text.replace(f"{here}/", "").replace(f"{ROOT}/", "").replace("/…/", "")
    text = re.sub(r"^time .*$", "time …", text, flags=re.M)
    text = re.sub(r"in \d+ days, on", "in N days, on", text)
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def printed(text: str, here: Path) -> str:
    """A sample as written to a page: the real lines, paths relative to where it ran."""
    return "\n".join(line.rstrip() for line in text.replace(f"{here}/", "").strip().splitlines())


def json_matches(expected, actual, where: str = "") -> list[str]:
    """Where an excerpt differs from the real document (``"…"`` keys stand for keys left out;
    a string starting ``/…/`` for the end of a path)."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{where}: not an object"]
        problems = []
        for key, value in expected.items():
            if key == "…":
                continue
            if key not in actual:
                problems.append(f"{where}.{key}: missing")
            else:
                problems += json_matches(value, actual[key], f"{where}.{key}")
        if "…" not in expected and set(actual) - set(expected):
            problems.append(f"{where}: also has {sorted(set(actual) - set(expected))}")
        return problems
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{where}: {actual!r} is not a list of {len(expected)}"]
        return [p for i, (e, a) in enumerate(zip(expected, actual)) for p in json_matches(e, a, f"{where}[{i}]")]
    if isinstance(expected, str) and expected.startswith("/…/") and isinstance(actual, str):
        return [] if actual.endswith(expected[3:]) else [f"{where}: {actual!r}"]
    return [] if expected == actual else [f"{where}: documented {expected!r}, is {actual!r}"]


def check_or_write(block: Block, here: Path, output: str, *, write: bool) -> str | None:
    """The block against what its command printed: the difference, or None; ``write``: the new text."""
    if block.json_sample:
        if write:  # an excerpt is chosen by hand; it is only checked
            return None
        actual = json.loads((here / block.sample).read_text())
        problems = json_matches(json.loads(block.body), actual)
        return "; ".join(problems) or None
    if normalise(block.body, here) == normalise(output, here):
        return None  # still true (a sample keeps the time and days of the run it was taken from)
    if write:
        return printed(output, here)
    return f"documented:\n{block.body}\n\nprinted:\n{printed(output, here)}"


def walkthrough(*, write: bool = False) -> dict[tuple[Path, int], str]:
    """Run the README's quickstart and everyday tasks in order, then every docs page's samples;
    the samples that differ (or with ``write``, every sample's new text), by (page, line)."""
    readme = ROOT / "README.md"
    results: dict[tuple[Path, int], str] = {}
    with workspace() as here:
        outputs: dict[str, tuple[int, str]] = {}

        def run_once(line: str) -> tuple[int, str]:
            if line not in outputs:
                outputs[line] = execute(line)
            return outputs[line]

        quickstart = [b for b in blocks(readme) if b.sample and not b.json_sample][0]
        run_once(quickstart.sample)
        for line in commands(section(readme, TASKS)):
            code, output = run_once(line)
            allowed = (0, 3) if line.startswith("ftprep validate") else (0,)
            assert code in allowed, f"README task command exited {code}: {line}\n{output}"
        for page in PAGES:
            for block in blocks(page):
                if block.sample is None:
                    continue
                output = "" if block.json_sample else run_once(block.sample)[1]
                problem = check_or_write(block, here, output, write=write)
                if problem is not None:
                    results[(page, block.line)] = problem
    return results


def test_the_readme_tasks_run_as_written_and_every_sample_is_what_its_command_prints():
    stale = walkthrough()
    assert not stale, "\n\n".join(f"{page.name} line {line}: {problem}" for (page, line), problem in stale.items()) + (
        "\n\n(python -m tests.test_docs --write rewrites the samples)")


def _write_samples() -> None:
    new = walkthrough(write=True)
    for page in PAGES:
        lines = page.read_text(encoding="utf-8").splitlines()
        for block in sorted((b for b in blocks(page) if (page, b.line) in new), key=lambda b: -b.line):
            end = next(j for j in range(block.line, len(lines)) if lines[j].strip() == "```")
            lines[block.line:end] = new[(page, block.line)].splitlines()
        page.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        _write_samples()
    else:
        sys.exit("usage: python -m tests.test_docs --write")
