import pytest

from beam_pipeline.recipe import RecipeError, load_recipe, parse_override, set_dotted


def test_parse_override_reads_yaml_scalars():
    assert parse_override("split.validation_fraction=0.2") == ("split.validation_fraction", 0.2)
    assert parse_override("input.paths=[a.csv, b.csv]") == ("input.paths", ["a.csv", "b.csv"])
    assert parse_override("output.path=gs://b/out") == ("output.path", "gs://b/out")
    assert parse_override("template.system=") == ("template.system", "")


def test_set_dotted_creates_and_refuses_scalars():
    doc = {"split": 3}
    set_dotted(doc, "output.num_shards", 4)
    assert doc["output"] == {"num_shards": 4}
    with pytest.raises(RecipeError, match="split is not a mapping"):
        set_dotted(doc, "split.seed", 1)


def test_load_recipe_from_memory_url_with_overrides():
    import fsspec

    fsspec.filesystem("memory").pipe(
        "/recipes/r.yaml",
        b"input: {paths: [a.csv]}\ntemplate: {format: completion, prompt: '{{ q }}', completion: '{{ a }}'}\n"
        b"model: babbage-002\noutput: {path: out}\n",
    )
    recipe = load_recipe("memory://recipes/r.yaml", overrides=["split.seed=9"], inputs=["b.csv"], output="o")
    assert (recipe.split.seed, recipe.input.paths, recipe.output.path) == (9, ["b.csv"], "o")


def test_invalid_yaml(tmp_path):
    (tmp_path / "r.yaml").write_text("input: [unclosed\n")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(str(tmp_path / "r.yaml"))
