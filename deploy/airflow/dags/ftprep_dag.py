"""ftprep on a schedule: prepare one day's fine-tuning data, then check what the run says of itself.

``prepare`` runs ``python -m beam_pipeline.launch`` through the Beam provider's
``BeamRunPythonPipelineOperator`` — DirectRunner by default, DataflowRunner or PortableRunner
(Flink) by DAG param — with the recipe, the day's input and a per-day output directory.
``check`` fails the DAG run unless the output has its ``_SUCCESS`` marker and the share of
rejected records in ``stats.json`` is within ``max_rejected_share``.

Parsing this file imports Airflow and the provider only: ftprep, Beam, pyarrow and tiktoken are
imported by the pipeline process and inside ``check`` at run time, never by the scheduler.

Environment (read when the file is parsed; all optional):
    FTPREP_PYTHON        interpreter with ftprep installed (default: the one running Airflow)
    FTPREP_RECIPE        default recipe URL
    FTPREP_INPUT         default input URL/glob; "{ds}" becomes the run's logical date
    FTPREP_OUTPUT_ROOT   default output root; each run writes <root>/<ds>
"""

from __future__ import annotations

import os
import sys
from datetime import datetime, timedelta

from airflow.providers.apache.beam.operators.beam import BeamRunPythonPipelineOperator
from airflow.sdk import DAG, Param, task

RUNNERS = ["DirectRunner", "DataflowRunner", "PortableRunner"]

with DAG(
    dag_id="ftprep",
    description="Tables to validated fine-tuning JSONL with ftprep (Apache Beam)",
    schedule="@daily",
    start_date=datetime(2026, 11, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 1, "retry_delay": timedelta(minutes=5)},
    tags=["ftprep", "fine-tuning"],
    params={
        "recipe": Param(os.environ.get("FTPREP_RECIPE", "gs://YOUR-BUCKET/ftprep/recipe.yaml"), type="string"),
        "input": Param(os.environ.get("FTPREP_INPUT", ""), type="string",
                       description='Input URL/glob, "{ds}" is the logical date; blank: the recipe\'s input.paths'),
        "output_root": Param(os.environ.get("FTPREP_OUTPUT_ROOT", "gs://YOUR-BUCKET/ftprep/out"), type="string"),
        "overrides": Param("", type="string", description="YAML mapping of dotted recipe keys, e.g. {split.seed: 3}"),
        "runner": Param("DirectRunner", enum=RUNNERS),
        "max_rejected_share": Param(0.05, type="number", minimum=0, maximum=1),
        # DataflowRunner
        "gcp_project": Param("", type="string"),
        "gcp_region": Param("", type="string"),
        "gcp_temp_location": Param("", type="string"),
        "sdk_container_image": Param("", type="string", description="the image from deploy/dataflow"),
        # PortableRunner (Flink): see deploy/flink
        "job_endpoint": Param("", type="string", description="e.g. localhost:8099"),
        "environment_type": Param("", type="string", description="EXTERNAL, DOCKER or LOOPBACK"),
        "environment_config": Param("", type="string", description="e.g. localhost:50000 for EXTERNAL"),
    },
) as dag:
    output = "{{ params.output_root }}/{{ ds }}"

    prepare = BeamRunPythonPipelineOperator(
        task_id="prepare",
        py_interpreter=os.environ.get("FTPREP_PYTHON", sys.executable),
        py_options=["-m"],
        py_file="beam_pipeline.launch",
        runner="{{ params.runner }}",
        pipeline_options={
            "recipe": "{{ params.recipe }}",
            "input": "{{ params.input | replace('{ds}', ds) }}",
            "output": output,
            "overrides": "{{ params.overrides }}",
            # A retry or a re-run of the same day replaces that day's output.
            "overwrite": True,
            "temp_location": "{{ params.gcp_temp_location }}",
            "sdk_container_image": "{{ params.sdk_container_image }}",
            "job_endpoint": "{{ params.job_endpoint }}",
            "environment_type": "{{ params.environment_type }}",
            "environment_config": "{{ params.environment_config }}",
        },
        # Only read with runner=DataflowRunner (the operator logs a warning otherwise).
        dataflow_config={
            "project_id": "{{ params.gcp_project }}",
            "location": "{{ params.gcp_region }}",
            "job_name": "ftprep-{{ ds_nodash }}",
            "wait_until_finished": True,
        },
    )

    @task
    def check(output: str, max_rejected_share: str) -> dict:
        """Fail unless the run finished (``_SUCCESS``) and rejected at most ``max_rejected_share``."""
        import json

        import fsspec
        from airflow.sdk.exceptions import AirflowFailException

        fs, root = fsspec.core.url_to_fs(output)
        if not fs.exists(f"{root}/_SUCCESS"):
            raise AirflowFailException(f"{output} has no _SUCCESS marker: the pipeline did not finish")
        with fs.open(f"{root}/stats.json", "rt") as f:
            stats = json.load(f)
        records = stats["records"]
        limit = float(max_rejected_share)  # rendered from a template: a string
        share = records["rejected"] / records["read"] if records["read"] else 0.0
        summary = {key: records[key] for key in ("read", "train", "validation", "rejected")}
        summary["rejected_share"] = round(share, 6)
        summary["files_skipped"] = [f["path"] for f in stats["files"]["failed"]]  # only under on_bad_file: skip
        if share > limit:
            raise AirflowFailException(
                f"{records['rejected']} of {records['read']} records rejected ({share:.1%}), "
                f"more than max_rejected_share {limit:.1%}; see {output}/rejected/"
            )
        return summary

    prepare >> check(output=output, max_rejected_share="{{ params.max_rejected_share }}")
