"""Deployment tests need optional installs (the ``dataflow`` extra, the Airflow environment).

Where they are missing the tests skip, so a plain ``pytest`` works anywhere; ``make test`` (what
CI runs) installs them and sets ``FTPREP_REQUIRE_DEPLOY=1``, which turns every such skip into a
failure: CI cannot pass by not running them.
"""

from __future__ import annotations

import importlib
import os

import pytest


def required() -> bool:
    return os.environ.get("FTPREP_REQUIRE_DEPLOY") == "1"


def missing(what: str) -> None:
    if required():
        pytest.fail(f"{what} (FTPREP_REQUIRE_DEPLOY=1)")
    pytest.skip(what)


def need_module(module: str, install: str):
    try:
        return importlib.import_module(module)
    except ImportError as error:
        missing(f"{module} is not installed ({install}): {error}")
