import os

import pytest
from apache_beam.options.pipeline_options import DirectOptions, StandardOptions

from beam_pipeline.options import OptionsError, local_runner, pipeline_options


def test_local_default_uses_every_core():
    options = pipeline_options([])
    direct = options.view_as(DirectOptions)
    assert options.view_as(StandardOptions).runner == "DirectRunner"
    assert (direct.direct_running_mode, direct.direct_num_workers) == ("multi_processing", os.cpu_count())


def test_user_choice_wins():
    direct = pipeline_options(["--direct_num_workers=1", "--direct_running_mode", "in_memory"]).view_as(DirectOptions)
    assert (direct.direct_running_mode, direct.direct_num_workers) == ("in_memory", 1)
    assert pipeline_options(["--direct_running_mode=in_memory"]).view_as(DirectOptions).direct_num_workers == 1


def test_other_runners_are_left_alone():
    options = pipeline_options(["--runner=PortableRunner", "--job_endpoint=localhost:8099"])
    assert options.view_as(DirectOptions).direct_running_mode == "in_memory"


def test_stray_values_are_refused():
    with pytest.raises(OptionsError, match="unexpected argument"):
        pipeline_options(["--runner=DirectRunner", "oops"])


def test_local_workers_get_two_malloc_arenas_unless_the_user_chose(monkeypatch):
    monkeypatch.setattr(os, "environ", {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"})
    local_runner(pipeline_options([]))
    assert os.environ["MALLOC_ARENA_MAX"] == "2"
    os.environ["MALLOC_ARENA_MAX"] = "8"
    local_runner(pipeline_options([]))
    assert os.environ["MALLOC_ARENA_MAX"] == "8"
