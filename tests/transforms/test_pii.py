"""Golden cases per PII kind, including what must not be redacted."""

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from hypothesis import given
from hypothesis import strategies as st

from schemas.recipe import PiiSpec
from schemas.records import Item, Source
from tests.batches import batched, each
from transforms.pii import (
    PiiScanner,
    redact_document,
    scanner_for,
    RedactPii,
    iban_valid,
    luhn_valid,
)

SCANNER = PiiScanner()


def redacted(text):
    return SCANNER.redact(text)[0]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Mail ada.lovelace+ft@example.co.uk now", "Mail [EMAIL] now"),
        ("Call +44 20 7946 0958 today", "Call [PHONE] today"),
        ("Call +1 415-555-2671 or (415) 555-2671.", "Call [PHONE] or [PHONE]."),
        ("Server 192.168.10.25 is down", "Server [IP] is down"),
        ("IPv6 2001:db8:85a3::8a2e:370:7334 and ::1", "IPv6 [IP] and [IP]"),
        ("Card 4111 1111 1111 1111 expired", "Card [CARD] expired"),
        ("Amex 3782-822463-10005", "Amex [CARD]"),
        ("IBAN GB82 WEST 1234 5698 7654 32 please", "IBAN [IBAN] please"),
        ("IBAN DE89370400440532013000", "IBAN [IBAN]"),
        ("key sk-proj-abcdefghijklmnopqrstuvwx1234", "key [SECRET]"),
        ("key sk-ant-api03-abcdefghijklmnopqrstuvwxyz012345", "key [SECRET]"),
        ("aws AKIAIOSFODNN7EXAMPLE id", "aws [SECRET] id"),
        ("token ghp_" + "a" * 36 + " end", "token [SECRET] end"),
        ("slack xoxb-1234567890-abcdefghij", "slack [SECRET]"),
        ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
         "jwt [SECRET]"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----", "[SECRET]"),
    ],
)
def test_each_kind_is_found(text, expected):
    assert redacted(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Upgrade to version 2.10.4 or v1.2.3.4",
        "Released on 2024-01-15, patched 15/01/2024 and 01.15.2024",
        "Order #A-99812 and order 123456789 shipped",
        "Invoice 2024000123 totals 1,234,567.89 EUR",
        "pi is 3.14159265358979 and e is 2.718281828",
        "The meeting is 10:30-11:45, room 4012",
        "ISBN 978-3-16-148410-0",
        "Tracking 1Z999AA10123456784",
        "Card-like but fails Luhn: 4111 1111 1111 1112",
        "Luhn-valid but no card network: 0000 0000 0000 0000",
        "GB82 WEST 1234 5698 7654 33 fails the IBAN check",
        "Time 12:30:45 is not an address",
        "user@localhost is not an address on the internet",
        "sk-short is not a key",
    ],
)
def test_false_positives_stay_text(text):
    assert redacted(text) == text


def test_checksums():
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert iban_valid("GB82 WEST 1234 5698 7654 32") and not iban_valid("GB82 WEST 1234 5698 7654 33")


def test_counts_replacements_and_kinds():
    scanner = PiiScanner(["email"], replacements={"email": "<mail>"})
    text, counts = scanner.redact("a@example.com, b@example.org, +1 415-555-2671")
    assert text == "<mail>, <mail>, +1 415-555-2671" and counts == {"email": 2}
    with pytest.raises(ValueError, match="unknown PII kind"):
        PiiScanner(["ssn"])


def test_national_numbers_need_their_region():
    assert PiiScanner(phone_regions=()).redact("call 020 7946 0958")[0] == "call 020 7946 0958"
    assert PiiScanner(phone_regions=("GB",)).redact("call 020 7946 0958")[0] == "call [PHONE]"


def test_redact_value_walks_json():
    doc = {"record": ["x@example.com", {"n": 1, "t": "ip 10.0.0.1"}], "errors": [{"message": "ok"}]}
    assert SCANNER.redact_value(doc) == {"record": ["[EMAIL]", {"n": 1, "t": "ip [IP]"}], "errors": [{"message": "ok"}]}


@given(st.text(max_size=80))
def test_redaction_never_raises_and_is_stable(text):
    once = redacted(text)
    assert redacted(once) == once


POLICY = PiiSpec(kinds=["email", "secret"], fields=["q", "a"], action={"email": "redact", "secret": "reject"})


def test_redact_pii_transform():
    clean = Item(Source("f", 0), {"q": "hi", "a": "mail me at a@example.com"}, fields={"q": "hi", "a": "mail me at a@example.com"})
    secret = Item(Source("f", 1), {"q": "my key sk-proj-abcdefghijklmnopqrstuvwx1234", "a": "ok"})
    with TestPipeline() as p:
        items, rejected, found = batched(p, [clean, secret]) | "Pii" >> RedactPii(spec=POLICY)
        assert_that(each(items, "EachItem") | beam.Map(lambda i: (i.fields["a"], i.row["a"])), equal_to([("mail me at [EMAIL]", "mail me at [EMAIL]")]), label="Items")
        assert_that(each(rejected, "EachRejected") | beam.Map(lambda r: (r.codes, r.errors[0].message, r.record["q"])),
                    equal_to([(("pii",), "field 'q' contains secret", "my key [SECRET]")]), label="Rejected")
        assert_that(each(found, "EachFound"), equal_to([(("email", 1),), (("secret", 1),)]), label="Found")


def test_redact_document():
    scanner = scanner_for(POLICY)
    assert redact_document(scanner, {"record": "bad,row,x@example.com"}) == ({"record": "bad,row,[EMAIL]"}, (("email", 1),))
    assert redact_document(scanner, {"record": "[EMAIL]"}) == ({"record": "[EMAIL]"}, ())  # not found again


def test_a_document_that_cannot_be_redacted_is_withheld(monkeypatch):
    scanner = scanner_for(POLICY)
    monkeypatch.setattr(scanner, "redact_value", lambda value, found: 1 / 0)
    doc, found = redact_document(scanner, {"record": "x@example.com", "example": {"a": "x@example.com"}})
    assert "x@example.com" not in str(doc) and doc["record"].startswith("<withheld: redaction failed") and found == ()


def test_redact_nested_reaches_every_string_and_says_where():
    value = {
        "answer": "write to ada@example.com",
        "tags": ["ok", "call +44 20 7946 0958"],
        "pairs": [("bob@example.org", "key sk-proj-abcdefghijklmnopqrstuvwx1234")],  # an Arrow map: (key, value) pairs
        "deep": {"deeper": [{"text": "ip 10.0.0.1"}]},
        "n": 3,
        "none": None,
    }
    findings = []
    redacted = SCANNER.redact_nested(value, "meta", findings)
    assert redacted == {
        "answer": "write to [EMAIL]",
        "tags": ["ok", "call [PHONE]"],
        "pairs": [("[EMAIL]", "key [SECRET]")],
        "deep": {"deeper": [{"text": "ip [IP]"}]},
        "n": 3,
        "none": None,
    }
    assert sorted(findings) == [("meta.answer", "email"), ("meta.deep.deeper[0].text", "ip"),
                                ("meta.pairs[0][0]", "email"), ("meta.pairs[0][1]", "secret"), ("meta.tags[1]", "phone")]


def test_keys_are_redacted_and_never_collide():
    findings = []
    assert SCANNER.redact_nested({"ada@example.com": 1, "bob@example.org": 2}, "m", findings) == {"[EMAIL]": 1, "[EMAIL]#": 2}
    assert [kind for _, kind in findings] == ["email", "email"]
    assert all("example" not in where for where, _ in findings)


def test_inlined_images_are_not_scanned():
    image = "data:image/png;base64," + "4111111111111111" * 4 + "QUJD"
    assert SCANNER.redact_nested({"url": image}, "", []) == {"url": image}


def test_nested_fields_are_redacted_in_the_stage_and_the_row():
    row = {"q": "hi", "a": {"answer": "mail a@example.com", "list": ["sk-proj-abcdefghijklmnopqrstuvwx1234"]}}
    item = Item(Source("f", 0), row)
    with TestPipeline() as p:
        items, rejected, found = batched(p, [item]) | "Pii" >> RedactPii(spec=POLICY)
        assert_that(each(rejected, "EachRejected") | beam.Map(lambda r: (r.errors[0].message, r.record)),
                    equal_to([("field 'a.list[0]' contains secret",
                               {"q": "hi", "a": {"answer": "mail [EMAIL]", "list": ["[SECRET]"]}})]), label="Rejected")
        assert_that(each(found, "EachFound"), equal_to([(("email", 1), ("secret", 1))]), label="Found")


def test_what_cleaning_removed_is_redacted_in_the_row_too():
    """The row shown in rejected/ and dropped/ is the raw one: an address inside an HTML attribute
    that cleaning stripped must not show there."""
    row = {"q": 'see <a href="mailto:ada@example.com">us</a>', "a": "ok"}
    item = Item(Source("f", 0), row, fields={"q": "see us", "a": "ok"})
    with TestPipeline() as p:
        items, _, found = batched(p, [item]) | "Pii" >> RedactPii(spec=POLICY)
        assert_that(each(items, "EachItem") | beam.Map(lambda i: (i.fields["q"], i.row["q"])),
                    equal_to([("see us", 'see <a href="mailto:[EMAIL]">us</a>')]), label="Items")
        assert_that(each(found, "EachFound"), equal_to([(("email", 1),)]), label="Found")


def test_every_kind_the_recipe_allows_has_a_detector_in_the_order():
    from schemas.recipe import PII_KINDS
    from transforms.pii import DETECTION_ORDER

    assert sorted(DETECTION_ORDER) == sorted(PII_KINDS)


# Issue 24: every pattern is linear on its pathological input, and a row's scan has a budget.
import time as _time  # noqa: E402

from schemas.recipe import LimitsSpec, PiiSpec  # noqa: E402
from schemas.records import PII_TIMEOUT, REJECTED as _REJECTED  # noqa: E402
from transforms.pii import PiiTimeout, phone_windows, redacted_quote  # noqa: E402

PATHOLOGICAL = {
    "private key BEGIN without END": "-----BEGIN PRIVATE KEY-----\n" * 15_000,
    "private key BEGINs and one END": "-----BEGIN RSA PRIVATE KEY-----\n" * 15_000 + "-----END RSA PRIVATE KEY-----",
    "email local part": "a" * 400_000 + "@",
    "email domain": "x@" + "a." * 200_000,
    "emails": "a@" * 200_000,
    "iban": "DE12" + " A" * 200_000,
    "card digits": "1 " * 200_000,
    "ipv6 colons": "1:" * 200_000,
    "ipv4 dots": "1.1.1.1." * 50_000,
    "api keys": "sk-" * 130_000,
    "jwt": "eyJ" * 130_000 + ".eyJ",
    "github": "ghp_" * 100_000,
    "phone candidates": "1-" * 200_000,
}


@pytest.mark.parametrize("name", sorted(PATHOLOGICAL))
def test_every_pattern_is_linear_on_its_pathological_input(name):
    """About 400 KB each: a quadratic pattern takes minutes here (the private key one took 104 s
    on 840 KB); linear ones take well under a second."""
    started = _time.process_time()
    PiiScanner(phone_regions=()).redact(PATHOLOGICAL[name])
    assert _time.process_time() - started < 5


def test_many_findings_are_not_compared_pairwise():
    text = " ".join(f"u{i}@example.com" for i in range(40_000))
    started = _time.process_time()
    redacted, counts = PiiScanner(["email"]).redact(text)
    assert counts["email"] == 40_000 and "@" not in redacted
    assert _time.process_time() - started < 5


def test_phone_windows_find_a_number_across_a_window_edge_once():
    for offset in (4_080, 4_090, 4_095, 4_096, 4_100):
        text = "x " * (offset // 2) + ("x" if offset % 2 else "") + "call (415) 555-2671 now " + "y " * 3000
        redacted, counts = PiiScanner(["phone"]).redact(text)
        assert counts == {"phone": 1} and "[PHONE]" in redacted, offset
    assert [w[2:] for w in phone_windows(9000)] == [(0, 4096), (4096, 8192), (8192, 9000)]


def test_a_row_whose_scan_passes_its_budget_is_rejected_with_its_values_withheld():
    from transforms.pii import _RedactFn

    fn = _RedactFn(PiiSpec(), LimitsSpec(max_pii_seconds=0.05))
    fn.setup()
    phones = " ".join(f"(415) 555-{i % 10_000:04d}" for i in range(50_000))
    out = []
    item = Item(Source("f.csv", 3), {"answer": phones, "question": "q"})
    fn.handle(item, lambda tag, value: out.append((tag, value)))
    (tag, rejected), = out
    assert tag == _REJECTED and rejected.codes == (PII_TIMEOUT,)
    assert "limits.max_pii_seconds" in rejected.errors[0].message
    assert "555" not in str(rejected.record) and set(rejected.record) == {"answer", "question"}
    with pytest.raises(PiiTimeout):
        scanner = PiiScanner(max_seconds=0.05)
        scanner.start()
        scanner.redact(phones)


def test_quotes_are_redacted_before_they_are_cut():
    assert redacted_quote("x" * 190 + " sk-abcdefghijklmnopqrstuvwxyz012345", 200).endswith("[SECRET]")
    key = "x" * 190 + "-----BEGIN PRIVATE KEY-----\n" + "A" * 5000 + "\n-----END PRIVATE KEY-----"
    assert "AAAA" not in redacted_quote(key, 200)
    assert redacted_quote("jane.roe@example.org,+1 415 555 2671", 40) == "[EMAIL],[PHONE]"


def test_bytes_are_scanned_as_text():
    findings = []
    value = PiiScanner().redact_nested(b"mail jane.roe@example.org \xff", "blob", findings)
    assert value == b"mail [EMAIL] \xff" and findings == [("blob", "email")]
