import jsonschema

from schemas.stats import stats_schema


def test_schema_is_valid_json_schema():
    jsonschema.Draft202012Validator.check_schema(stats_schema())


def test_schema_rejects_a_document_missing_counts():
    validator = jsonschema.Draft202012Validator(stats_schema())
    errors = list(validator.iter_errors({"records": {"read": 1}}))
    assert errors
