"""A run that decontaminates against evaluation sets: planted items dropped to
dropped/contaminated/ with the evaluation row named, per-set figures in stats.json, the summary
and the report; evaluation sets that cannot be read stop the run before it writes anything."""

import json

import jsonschema
import pyarrow as pa
import pyarrow.parquet as pq

from schemas.stats import stats_schema
from tests.beam_pipeline.helpers import IN_MEMORY, assert_conserved, read_output, run, write_recipe

QUESTION = "In which year did the first crewed landing on the Moon take place, and who stepped out first?"
SHORT_QUESTION = "What gas do plants absorb from the air?"  # 8 words: matched whole


def rows():
    filler = [{"q": f"How do I rename file number {i} in my project folder?",
               "a": f"Right-click file {i}, choose rename, and type the new name; thank you for asking."} for i in range(8)]
    planted = [
        {"q": QUESTION, "a": "1969; Neil Armstrong."},  # verbatim
        {"q": "History quiz", "a": f"Sure. {QUESTION.upper()} The answer is 1969."},  # embedded, re-cased
        {"q": "Biology", "a": "Question: what  gas do plants ABSORB from the air? Carbon dioxide."},  # short, embedded
    ]
    return filler[:4] + planted + filler[4:]


def test_planted_evaluation_items_are_dropped_and_attributed(tmp_path, capsys):
    pq.write_table(pa.Table.from_pylist(rows()), tmp_path / "train.parquet")
    (tmp_path / "history.jsonl").write_text(json.dumps({"question": QUESTION, "answer": "1969"}) + "\n"
                                           + json.dumps({"question": "Who painted the ceiling of the Sistine "
                                                                     "Chapel in Rome?", "answer": "Michelangelo"}) + "\n")
    pq.write_table(pa.Table.from_pylist([{"prompt": "Unrelated: name three prime numbers below ten please.",
                                          "gold": "2"}, {"prompt": SHORT_QUESTION, "gold": "CO2"}]),
                   tmp_path / "biology.parquet")
    recipe = write_recipe(tmp_path, {
        "input": {"paths": [str(tmp_path / "train.parquet")]},
        "template": {"messages": [{"role": "user", "content": "{{ q }}"}, {"role": "assistant", "content": "{{ a }}"}]},
        "model": "gpt-4o-mini-2024-07-18",
        "decontaminate": {"evals": [
            {"name": "history", "paths": [str(tmp_path / "history.jsonl")], "fields": ["question"]},
            {"name": "biology", "paths": [str(tmp_path / "biology.parquet")], "fields": ["prompt"]},
        ]},
        "output": {"path": str(tmp_path / "out"), "provenance": True},
    })
    assert run(recipe, IN_MEMORY) == 0
    err = capsys.readouterr().err
    out = read_output(tmp_path / "out")
    assert_conserved(out)
    jsonschema.validate(out["stats"], stats_schema())
    dropped = {d["source"]["row"]: d["contaminated_by"] for d in out["dropped"]["contaminated"]}
    assert sorted(dropped) == [4, 5, 6]  # the fillers share "thank you for asking" and stay
    assert dropped[4] == dropped[5] | {"match": dropped[4]["match"]}
    assert (dropped[4]["eval"], dropped[4]["file"], dropped[4]["row"]) == ("history", str(tmp_path / "history.jsonl"), 0)
    assert dropped[6] == {"eval": "biology", "file": str(tmp_path / "biology.parquet"), "row": 1,
                          "match": "what gas do plants absorb from the air"}
    sets = out["stats"]["decontamination"]["sets"]
    assert sets["history"] == {"files": 1, "rows": 2, "items_checked": 2, "items_matched_whole": 1,
                               "items_too_short": 0, "dropped": 2}
    assert sets["biology"]["dropped"] == 1 and sets["biology"]["items_matched_whole"] == 2
    assert out["stats"]["records"]["dropped"] == {"contaminated": 3}
    assert "evals       history: 2 dropped as contaminated (2 items checked, 0 too short to check)" in err
    assert "Evaluation sets (decontamination)" in (tmp_path / "out" / "report.html").read_text()


def test_an_evaluation_set_that_cannot_be_read_stops_the_run_before_it_writes(tmp_path, capsys):
    (tmp_path / "train.csv").write_text("q,a\nhello,world\n")
    (tmp_path / "evals.jsonl").write_text('{"question": "a question long enough to be checked here"}\n{broken\n')

    def attempt(evals):
        recipe = write_recipe(tmp_path, {
            "input": {"paths": [str(tmp_path / "train.csv")]},
            "template": {"messages": [{"role": "user", "content": "{{ q }}"}, {"role": "assistant", "content": "{{ a }}"}]},
            "model": "gpt-4o-mini-2024-07-18", "decontaminate": {"evals": [evals]},
            "output": {"path": str(tmp_path / "out")},
        })
        assert run(recipe, IN_MEMORY) == 2  # the job cannot start
        assert not (tmp_path / "out").exists()
        return capsys.readouterr().err.strip().splitlines()[-1]

    assert "evaluation set 'mmlu'" in attempt({"name": "mmlu", "paths": [str(tmp_path / "missing.jsonl")]})
    broken = attempt({"name": "qa", "paths": [str(tmp_path / "evals.jsonl")]})
    assert f"evaluation set 'qa', {tmp_path / 'evals.jsonl'} row 1 cannot be read (invalid_json)" in broken
    (tmp_path / "evals.jsonl").write_text('{"question": "a question long enough to be checked here"}\n')
    assert "has no value in prompt" in attempt({"name": "qa", "paths": [str(tmp_path / "evals.jsonl")], "fields": ["prompt"]})
    (tmp_path / "evals.jsonl").write_text('{"question": "too short"}\n')
    assert "has no text of 8 words or more" in attempt({"name": "qa", "paths": [str(tmp_path / "evals.jsonl")]})
