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
    overrides = [parse_override("split.seed=9"), ("input.paths", ["b.csv"]), ("output.path", "o")]
    recipe = load_recipe("memory://recipes/r.yaml", overrides=overrides)
    assert (recipe.split.seed, recipe.input.paths, recipe.output.path) == (9, ["b.csv"], "o")


def test_invalid_yaml(tmp_path):
    (tmp_path / "r.yaml").write_text("input: [unclosed\n")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(str(tmp_path / "r.yaml"))


def _alias_bomb(levels: int = 9) -> str:
    """A YAML mapping whose aliases expand to 10**levels values (a few hundred bytes of text)."""
    entries = ["k0: &k0 [x, x, x, x, x, x, x, x, x, x]"]
    entries += [f"k{i}: &k{i} [{', '.join([f'*k{i - 1}'] * 10)}]" for i in range(1, levels)]
    return "{" + ", ".join(entries) + "}"


def test_yaml_aliases_that_expand_to_billions_of_values_are_refused(tmp_path):
    (tmp_path / "bomb.yaml").write_text(_alias_bomb() + "\n")
    with pytest.raises(RecipeError, match="expands to more than 100,000 values"):
        load_recipe(str(tmp_path / "bomb.yaml"))
    with pytest.raises(RecipeError, match="--set template.system expands to more than 100,000 values"):
        parse_override("template.system=" + _alias_bomb())


def test_a_recipe_nested_too_deeply_or_too_large_is_refused(tmp_path):
    (tmp_path / "deep.yaml").write_text("a: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(RecipeError, match="nested too deeply"):
        load_recipe(str(tmp_path / "deep.yaml"))
    (tmp_path / "big.yaml").write_text("# " + "x" * (11 << 20) + "\n")
    with pytest.raises(RecipeError, match="larger than 10 MB"):
        load_recipe(str(tmp_path / "big.yaml"))


def test_an_unknown_key_suggests_the_likely_one(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("input: {paths: [a.csv]}\nmodel: gpt-4o-mini\noutput: {path: o}\n"
                    "template: {messages: [{role: user, contnt: '{{ q }}'}, {role: assistant, content: '{{ a }}'}]}\n"
                    "split: {valdation_fraction: 0.2}\n")
    with pytest.raises(RecipeError) as error:
        load_recipe(str(path))
    assert "split.valdation_fraction: unknown key (did you mean validation_fraction?)" in str(error.value)
    assert "template.messages.0.contnt: unknown key (did you mean content?)" in str(error.value)
    path.write_text("input: {paths: [a.csv]}\nmodel: gpt-4o-mni\noutput: {path: o}\n"
                    "template: {messages: [{role: user, content: '{{ q }}'}, {role: assistant, content: '{{ a }}'}]}\n")
    with pytest.raises(RecipeError, match=r"unknown model 'gpt-4o-mni' \(did you mean gpt-4o-mini\?\)"):
        load_recipe(str(path))
