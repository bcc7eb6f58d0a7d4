"""The DAG in deploy/airflow, in a real Airflow installed in its own virtual environment
(``pip install -e '.[airflow]'``; ``make test`` builds it and points FTPREP_AIRFLOW_PYTHON at it)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy.extras import missing

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "deploy" / "airflow" / "dags"
HEAVY = ["apache_beam", "pyarrow", "tiktoken", "beam_pipeline", "transforms", "schemas", "pandas", "numpy"]

PARSE_CHECK = f"""
import importlib.util, json, sys, time
from airflow.providers.apache.beam.operators.beam import BeamRunPythonPipelineOperator  # the baseline
from airflow.sdk import DAG
before = set(sys.modules)
started = time.perf_counter()
spec = importlib.util.spec_from_file_location("ftprep_dag", {str(DAGS / "ftprep_dag.py")!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
seconds = time.perf_counter() - started
added = sorted(set(sys.modules) - before)
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder={str(DAGS)!r})
print(json.dumps({{"added": added, "seconds": seconds, "errors": {{k: str(v) for k, v in bag.import_errors.items()}},
                  "dags": sorted(bag.dag_ids), "tasks": sorted(t.task_id for t in module.dag.tasks)}}))
"""


@pytest.fixture(scope="module")
def airflow_python() -> Path:
    configured = os.environ.get("FTPREP_AIRFLOW_PYTHON")
    python = Path(configured) if configured else REPO / ".venv-airflow" / "bin" / "python"
    if not python.exists():
        missing(f"no Airflow environment at {python} (make test builds it)")
    return python


@pytest.fixture(scope="module")
def airflow_env(airflow_python, tmp_path_factory) -> dict:
    home = tmp_path_factory.mktemp("airflow_home")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "PATH": f"{airflow_python.parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    env.pop("FTPREP_PYTHON", None)  # the DAG's default: the interpreter running Airflow
    result = subprocess.run([str(airflow_python.parent / "airflow"), "db", "migrate"], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return env


def test_dag_parses_cleanly_and_imports_nothing_heavy(airflow_python, airflow_env):
    result = subprocess.run([str(airflow_python), "-c", PARSE_CHECK], env=airflow_env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["errors"] == {}
    assert report["dags"] == ["ftprep"] and report["tasks"] == ["check", "prepare"]
    heavy = [m for m in report["added"] if m.split(".")[0] in HEAVY]
    assert heavy == [], f"the DAG file imports {heavy} when it is parsed"
    assert report["seconds"] < 2.0


def airflow(airflow_env, cwd: Path, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(airflow_env["PATH"].split(os.pathsep)[0]) / "airflow"), *argv],
                          env=airflow_env, capture_output=True, text=True, timeout=600, cwd=cwd)


@pytest.fixture(scope="module")
def day_run(airflow_env, tmp_path_factory):
    """One DAG run end to end on the day's export (the input param names it with {ds}): its
    directory and what `airflow dags test` printed."""
    root = tmp_path_factory.mktemp("dag_run")
    data = root / "data"
    data.mkdir()
    (data / "2026-11-26.csv").write_bytes((REPO / "examples/data/tickets.csv").read_bytes())
    conf = {"recipe": str(REPO / "examples/recipes/csv_chat.yaml"), "input": str(data / "{ds}.csv"),
            "output_root": str(root / "out"), "max_rejected_share": 0.5}
    return root, airflow(airflow_env, root, "dags", "test", "ftprep", "2026-11-26", "--conf", json.dumps(conf))


def test_dag_runs_end_to_end_on_the_direct_runner(day_run):
    root, result = day_run
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    day = root / "out" / "2026-11-26"
    assert (day / "_SUCCESS").exists()
    stats = json.loads((day / "stats.json").read_text())
    assert stats["files"]["read"] == [{"path": str(root / "data" / "2026-11-26.csv"), "rows": 34}]
    assert "state=success" in log and "'rejected_share': 0.088235, 'files_skipped': []" in log


def test_the_check_fails_the_run_when_too_much_was_rejected(airflow_env, day_run):
    """The same day's output checked again with a lower limit (the check task alone, as Airflow
    runs it: the pipeline is not run twice)."""
    root, _ = day_run
    # Another day (a day with no DAG run yet: its params are the task's, not the earlier run's conf).
    shutil.copytree(root / "out" / "2026-11-26", root / "out" / "2026-11-27")
    params = {"output_root": str(root / "out"), "max_rejected_share": 0.01}
    result = airflow(airflow_env, root, "tasks", "test", "ftprep", "check", "2026-11-27", "-t", json.dumps(params))
    log = result.stdout + result.stderr
    # `airflow tasks test` exits 0 whatever the task did; its log says how the task ended.
    assert "state=failed" in log and "AirflowFailException" in log, log[-4000:]
    assert "3 of 34 records rejected (8.8%), more than max_rejected_share 1.0%" in log, log[-4000:]
