from hypothesis import given
from hypothesis import strategies as st
import numpy as np
import pytest

from schemas.recipe import DecontaminateSpec
from schemas.records import CONTAMINATED, Item, Source
from transforms.decontaminate import Decontaminate, EvalIndex, build_index, texts_in, words_of
from transforms.stage import RecordChain

QUESTION = ("A train leaves the station at nine and travels at sixty miles per hour; how far has it gone by "
            "half past eleven?")
SHORT = "Which element has the chemical symbol Au?"  # 7 words: under the default min_words
MEDIUM = "Name the largest moon of the planet Saturn"  # 8 words: matched whole


def spec(**options):
    return DecontaminateSpec(evals=[{"name": "math", "paths": ["m.jsonl"]}, {"name": "trivia", "paths": ["t.jsonl"]}],
                             **options)


def index(**options):
    sets = [
        ("math", ["m0.jsonl", "m1.jsonl"], [(0, 0, {"question": "Unrelated filler question about nothing at all, "
                                                    "written to pad the set out beyond a few words.", "answer": "x"}),
                                            (1, 4, {"question": QUESTION, "answer": "150 miles"})]),
        ("trivia", ["t.jsonl"], [(0, 0, {"question": SHORT, "choices": ["Gold", "Silver"]}),
                                 (0, 1, {"question": MEDIUM, "answer": "Titan"})]),
    ]
    return build_index(spec(**options), sets)


def example(user, assistant="Sure."):
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]}


def matches(idx, *examples):
    return idx.matches([[m["content"] for m in e["messages"]] for e in examples])


def test_planted_items_are_found_verbatim_embedded_and_respaced_and_attributed():
    idx = index()
    verbatim, embedded, respaced, medium_embedded = matches(
        idx,
        example(QUESTION),
        example("Homework help please", "Here is the problem. " + QUESTION + " Think about the units first."),
        example("a TRAIN leaves the station at nine, and travels at\tsixty  miles-per-hour: HOW FAR has it gone"),
        example("Quiz night!", "Question three: name the largest moon of the planet saturn. Answer below."),
    )
    assert verbatim["eval"] == embedded["eval"] == respaced["eval"] == "math"
    assert (verbatim["file"], verbatim["row"]) == ("m1.jsonl", 4)
    assert verbatim["match"] == "a train leaves the station at nine and travels at sixty miles per"
    assert respaced["match"].split()[:3] == ["a", "train", "leaves"]
    assert medium_embedded == {"eval": "trivia", "file": "t.jsonl", "row": 1,
                               "match": "name the largest moon of the planet saturn"}


def test_common_phrases_and_short_items_do_not_contaminate():
    idx = index()
    found = matches(
        idx,
        example("Which element has the chemical symbol Au?", "Gold."),  # too short to check: counted, not matched
        example("thank you for your help, how far has it gone"),  # a few shared words, no whole run
        # 12 of the 13 words of a run, then something else: not a run of 13.
        example("a train leaves the station at nine and travels at sixty miles then rests"),
        example("Name the largest moon", "of the planet Saturn"),  # split across two messages: no run in one text
    )
    assert found == [None, None, None, None]
    summary = idx.summary
    # The short question, its two choices and the answer Titan; the medium question matched whole.
    assert summary["trivia"].too_short == 4 and summary["trivia"].whole == 1
    assert summary["math"].items == 2 and summary["math"].rows == 2 and summary["math"].files == 2


def test_runs_of_other_lengths_and_min_words_follow_the_options():
    idx = index(ngram=5, min_words=3)
    assert matches(idx, example("what is it that travels at sixty miles per hour"))[0]["eval"] == "math"
    assert matches(idx, example("it has the chemical symbol au, I think"))[0]["eval"] == "trivia"
    assert idx.summary["trivia"].too_short == 3  # the choices and Titan, one word each


def test_the_index_round_trips_through_its_file(tmp_path):
    idx = index()
    loaded = EvalIndex.load(idx.save(str(tmp_path / "index.npz")))
    assert loaded.sets == ["math", "trivia"] and loaded.files == ["m0.jsonl", "m1.jsonl", "t.jsonl"]
    assert sorted(loaded.runs) == sorted(idx.runs) and all(np.array_equal(loaded.runs[n], idx.runs[n]) for n in idx.runs)
    assert matches(loaded, example(QUESTION)) == matches(idx, example(QUESTION))


def test_the_stage_drops_with_the_evaluation_row_and_keeps_the_rest(tmp_path):
    path = index().save(str(tmp_path / "index.npz"))
    chain = RecordChain([Decontaminate(index_path=path).dofn])
    chain.setup()
    items = [Item(Source("train.csv", row), {}, example=e)
             for row, e in enumerate([example("hello there"), example(QUESTION), example("bye")])]
    kept, left = chain.run(items)
    assert [i.source.row for i in kept] == [0, 2]
    (dropped,) = left[CONTAMINATED]
    doc = dropped.to_json()
    assert doc["source"] == {"file": "train.csv", "row": 1} and doc["reason"] == CONTAMINATED
    assert doc["contaminated_by"]["eval"] == "math" and doc["contaminated_by"]["row"] == 4


def test_texts_in_nested_values_and_words():
    assert list(texts_in({"a": ["x", {"b": "y"}], "c": 3, "d": None})) == ["x", "y"]
    assert words_of("  Hello,\u00a0WORLD—again! ") == ["hello", "world", "again"]


def test_bad_options():
    with pytest.raises(ValueError, match="differ"):
        DecontaminateSpec(evals=[{"name": "a", "paths": ["x"]}, {"name": "a", "paths": ["y"]}])
    with pytest.raises(ValueError, match="min_words"):
        DecontaminateSpec(evals=[{"name": "a", "paths": ["x"]}], ngram=5, min_words=8)
    with pytest.raises(ValueError):
        DecontaminateSpec(evals=[])


@given(st.lists(st.text(alphabet=st.sampled_from(list("aZ9_ .,!?-\n\tÉéßﬁ—…日本\u00a0")), max_size=40), max_size=6))
def test_the_batch_words_are_each_texts_words(texts):
    """_Words cuts the texts in numpy, code point by code point: the same words as ``words_of``
    (the regex), each hashed by its definition, each text's counted apart."""
    from transforms.decontaminate import _WEIGHTS, _Words

    def word_hash(word: str) -> int:
        return sum((ord(c) + 1) * int(_WEIGHTS[i % 64]) for i, c in enumerate(word)) % 2**64

    words = _Words(texts)
    assert words.counts.tolist() == [len(words_of(text)) for text in texts]
    for index, text in enumerate(texts):
        found = words.hashes[words.starts[index]:words.ends[index]]
        assert found.tolist() == [word_hash(word) for word in words_of(text)]
