"""The deployment files agree with the project: Beam and Python versions, the launcher's flags,
the entry point the image names. (Nothing here needs Docker, a cloud or a cluster.)"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import tomllib
import yaml
from apache_beam.options.pipeline_options import FlinkRunnerOptions

from beam_pipeline.launch import _parser

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
BEAM = re.search(r"apache-beam==([\d.]+)", " ".join(PYPROJECT["project"]["dependencies"]))[1]


def dockerfile_args() -> dict[str, str]:
    return dict(re.findall(r"^ARG (\w+)=(\S+)$", (DEPLOY / "dataflow" / "Dockerfile").read_text(), re.M))


def test_image_runs_the_pinned_beam_and_this_python():
    args = dockerfile_args()
    assert args["BEAM_VERSION"] == BEAM
    assert args["PYTHON_VERSION"] == f"{sys.version_info.major}.{sys.version_info.minor}"
    text = (DEPLOY / "dataflow" / "Dockerfile").read_text()
    assert f"python{args['PYTHON_VERSION'].replace('.', '')}-template-launcher-base" in text
    # Every base image is pinned: a rebuild gets the same launcher and SDK.
    assert not re.search(r"^FROM \S+:latest", text, re.M) and re.fullmatch(r"\d{8}_RC\d\d", args["LAUNCHER_TAG"])
    assert 'ENTRYPOINT ["/opt/apache/beam/boot"]' in text


def test_image_copies_every_package_and_names_an_existing_launcher():
    text = (DEPLOY / "dataflow" / "Dockerfile").read_text()
    copied = set(re.findall(r"^COPY (\w+) \./\1$", text, re.M))
    # Each package's top-level directory (a sub-package travels with it).
    assert copied == {name.split(".")[0] for name in PYPROJECT["tool"]["setuptools"]["packages"]}
    (launcher,) = re.findall(r"^ENV FLEX_TEMPLATE_PYTHON_PY_FILE=/template/(\S+)$", text, re.M)
    assert (REPO / launcher).is_file()
    # The Flex launcher runs it as a script (`python FILE --recipe=...`), not as a module.
    result = subprocess.run([sys.executable, str(REPO / launcher), "--help"], capture_output=True, text=True,
                            cwd=REPO.parent, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "--recipe" in result.stdout


def test_template_parameters_are_launcher_flags():
    metadata = json.loads((DEPLOY / "dataflow" / "metadata.json").read_text())
    flags = {option for action in _parser()._actions for option in action.option_strings}
    for parameter in metadata["parameters"]:
        assert f"--{parameter['name']}" in flags, parameter["name"]
        for pattern in parameter.get("regexes", []):
            re.compile(pattern)
    assert [p["name"] for p in metadata["parameters"] if not p["isOptional"]] == ["recipe"]


def test_flink_compose_matches_the_beam_pin():
    compose = yaml.safe_load((DEPLOY / "flink" / "docker-compose.yml").read_text())
    services = compose["services"]
    job_server = re.fullmatch(r"apache/beam_flink([\d.]+)_job_server:([\d.]+)", services["job-server"]["image"])
    assert job_server[2] == BEAM
    assert job_server[1] in FlinkRunnerOptions.PUBLISHED_FLINK_VERSIONS
    assert services["jobmanager"]["image"].startswith(f"flink:{job_server[1]}")
    assert services["taskmanager"]["image"] == services["jobmanager"]["image"]
    pool = services["sdk-worker-pool"]
    assert (REPO / pool["build"]["dockerfile"]).is_file()
    assert pool["network_mode"] == "service:taskmanager" and pool["command"] == ["--worker_pool"]
