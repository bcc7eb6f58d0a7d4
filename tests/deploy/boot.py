"""What Beam's container entry point (``boot``, a Go program in the SDK image) does before the
Python SDK harness runs, for a worker pool started with ``--container_executable``.

It asks the runner's provision service for the job's pipeline options and endpoints, hands them
to ``sdk_worker_main`` through the environment that program reads (``PIPELINE_OPTIONS``,
``CONTROL_API_SERVICE_DESCRIPTOR``, ...), and replaces itself with it. So a worker gets its
options the way it does on Flink or Dataflow, and the harness sets them on its filesystems
(``--s3_endpoint_url`` reaching Beam's S3 client, say) — which a worker pool that starts the
harness directly never does. Not ported: staging artifacts (ftprep is installed here, as it is
in the worker image of deploy/dataflow).

    python boot.py --id=1 --provision_endpoint=localhost:1234 --control_endpoint=... ...
"""

from __future__ import annotations

import argparse
import os
import sys

import grpc
from apache_beam.portability.api import beam_provision_api_pb2, beam_provision_api_pb2_grpc, endpoints_pb2
from google.protobuf import json_format, text_format


def _descriptor(url: str) -> str:
    return text_format.MessageToString(endpoints_pb2.ApiServiceDescriptor(url=url))


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    for flag in ("--id", "--logging_endpoint", "--artifact_endpoint", "--provision_endpoint", "--control_endpoint"):
        parser.add_argument(flag, default="")
    parser.add_argument("--semi_persistent_directory", default="/tmp")
    args = parser.parse_args(argv)

    with grpc.insecure_channel(args.provision_endpoint) as channel:
        stub = beam_provision_api_pb2_grpc.ProvisionServiceStub(channel)
        # The runner tells its workers apart by this metadata, as boot.go sends it.
        request = beam_provision_api_pb2.GetProvisionInfoRequest()
        info = stub.GetProvisionInfo(request, metadata=[("worker_id", args.id)], timeout=60).info

    environment = dict(
        os.environ,
        WORKER_ID=args.id,
        PIPELINE_OPTIONS=json_format.MessageToJson(info.pipeline_options),
        SEMI_PERSISTENT_DIRECTORY=args.semi_persistent_directory,
        CONTROL_API_SERVICE_DESCRIPTOR=_descriptor(args.control_endpoint or info.control_endpoint.url),
        LOGGING_API_SERVICE_DESCRIPTOR=_descriptor(args.logging_endpoint or info.logging_endpoint.url),
        RUNNER_CAPABILITIES=" ".join(info.runner_capabilities),
    )
    if info.status_endpoint.url:
        environment["STATUS_API_SERVICE_DESCRIPTOR"] = _descriptor(info.status_endpoint.url)
    command = [sys.executable, "-m", "apache_beam.runners.worker.sdk_worker_main"]
    os.execve(sys.executable, command, environment)


if __name__ == "__main__":
    main(sys.argv[1:])
