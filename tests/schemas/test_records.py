from schemas.records import Item, Source, TokenCount, decode_item, encode_item


def test_item_round_trips_through_its_shuffle_encoding():
    item = Item(Source("gs://b/x.parquet", 7), {"q": "é", "n": 1}, {"q": "e"}, {"messages": [{"role": "user", "content": "é"}]},
                TokenCount(10, 10, 4, (("assistant", 4), ("user", 6)), True), "train", ("missing_system_message",), b"\x00\xff")
    assert decode_item(encode_item(item)) == item
    bare = Item(Source("f", 0), {"q": None})
    assert decode_item(encode_item(bare)) == bare
