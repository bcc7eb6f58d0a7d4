import orjson

from schemas.records import Dropped, Rejected, Rejection, Source, dumps_line


def test_rejected_and_dropped_documents_keep_their_key_order():
    """Readers of rejected/ and dropped/ (and the duplicates writer, which composes the line
    itself) rely on this order."""
    rejected = Rejected(Source("f", 3), [Rejection("missing_content", "m")], {"q": "x"}, {"messages": []})
    assert list(rejected.to_json()) == ["source", "errors", "record", "example"]
    dropped = Dropped(Source("f", 4), "duplicate_exact", {"messages": []}, duplicate_of=Source("e", 0))
    assert list(dropped.to_json()) == ["source", "reason", "duplicate_of", "record"]
    assert orjson.loads(dumps_line(dropped.to_json())) == dropped.to_json()


def test_a_rejected_row_that_is_the_example_is_written_once():
    row = {"messages": []}
    assert "example" not in Rejected(Source("f", 0), [], row, row).to_json()
