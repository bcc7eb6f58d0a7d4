"""The same bytes every time, for the Parquet example recipes (see ``test_determinism.py``)."""

from __future__ import annotations

import pytest

from tests.deploy.portable import job_service
from tests.deploy.test_determinism import CSV_RECIPES, RECIPES, REPO, check_recipe

PARQUET_RECIPES = [recipe for recipe in RECIPES if recipe not in CSV_RECIPES]


@pytest.fixture(scope="module")
def jobs(tmp_path_factory):
    with job_service(tmp_path_factory.mktemp("services") / "job_service.log") as endpoint:
        yield endpoint


@pytest.mark.parametrize("recipe", PARQUET_RECIPES)
def test_example_recipes_write_the_same_bytes_everywhere(recipe, jobs, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    check_recipe(recipe, jobs, tmp_path)
