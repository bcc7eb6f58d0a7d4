"""The pinned environments (requirements/*.txt, `make locks`) still cover pyproject.toml: every
dependency the project declares for that environment is pinned there, with the extras it was
compiled for — so a dependency added to pyproject.toml without re-pinning fails here, not on a
fresh machine."""

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
LOCKS = {"run.txt": ("test",), "test.txt": ("test", "dataflow", "s3"), "airflow.txt": ("airflow",)}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.mark.parametrize("lock, extras", sorted(LOCKS.items()))
def test_every_declared_dependency_is_pinned(lock, extras):
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = [Requirement(r) for r in project["dependencies"]]
    declared += [Requirement(r) for extra in extras for r in project["optional-dependencies"][extra]]
    text = (REPO / "requirements" / lock).read_text()
    pinned = {canonical(m.group(1)): m.group(2) for m in re.finditer(r"^([A-Za-z0-9_.-]+)==(\S+)", text, re.M)}
    missing = [str(r) for r in declared if canonical(r.name) not in pinned]
    assert not missing, f"requirements/{lock} lacks {missing}: run `make locks`"
    wrong = [f"{r} (pinned {pinned[canonical(r.name)]})" for r in declared
             if not r.specifier.contains(pinned[canonical(r.name)], prereleases=True)]
    assert not wrong, f"requirements/{lock} pins outside pyproject.toml's ranges: {wrong}; run `make locks`"
    header = text.splitlines()[1]
    assert all(f"--extra {extra}" in header for extra in extras)
