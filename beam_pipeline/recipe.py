"""Loading a recipe: YAML from any fsspec URL, overrides, then the typed schema.

Every change to a recipe from outside it (``--set``, ``--overrides``, ``--input``, ``--output``,
``--encodings-url``, ``--on-bad-file``, the launcher's flags, ``ftprep validate``'s options) is an
``Override``: a dotted key and its value, set in the document before it is validated — so an
override is checked exactly as the same key written in the file would be.
"""

from __future__ import annotations

import difflib
from typing import Any, Sequence, get_args

import fsspec
import yaml
from pydantic import BaseModel, ValidationError

from beam_pipeline.errors import UsageError
from schemas.recipe import Recipe
from transforms.targets.registry import TargetError, target_for


class RecipeError(UsageError):
    """The recipe cannot be used; the message names the key and what to fix."""


# A dotted recipe key and the value to set there.
Override = tuple[str, Any]


def _models_in(annotation) -> list[type[BaseModel]]:
    """The recipe sections an annotation can hold (through Optional, unions, lists, Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in get_args(annotation) for model in _models_in(arg)]


def _keys_at(loc: tuple) -> set[str]:
    """The keys the recipe allows beside the one at ``loc`` (whatever the section is)."""
    models: list[type[BaseModel]] = [Recipe]
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        inner = [inner for model in models if part in model.model_fields
                 for inner in _models_in(model.model_fields[part].annotation)]
        if inner:  # else a union's tag in the path (target.hf...): the section stays the same
            models = inner
    return {key for model in models for key in model.model_fields}


def _shown(loc: tuple) -> str:
    """The dotted key of ``loc`` as the author wrote it: without the tag pydantic adds for the
    member of a union it validated against (``target.hosted.max_length`` is target.max_length)."""
    models: list[type[BaseModel]] = [Recipe]
    shown = []
    for index, part in enumerate(loc):
        if isinstance(part, int):
            shown.append(str(part))
            continue
        inner = [inner for model in models if part in model.model_fields
                 for inner in _models_in(model.model_fields[part].annotation)]
        if any(part in model.model_fields for model in models) or not models or index == len(loc) - 1:
            shown.append(str(part))
            models = inner
        # else: a union's tag; the section stays the same
    return ".".join(shown)


def _unknown_key(where: str, loc: tuple) -> str:
    close = difflib.get_close_matches(str(loc[-1]), sorted(_keys_at(loc)), n=1, cutoff=0.6)
    return f"{where}: unknown key" + (f" (did you mean {close[0]}?)" if close else "")


def _describe(error: ValidationError) -> str:
    problems = []
    for e in error.errors():
        where = _shown(e["loc"])
        if not where:  # the recipe as a whole (the message names the keys)
            problems.append(e["msg"].removeprefix("Value error, "))
        elif e["type"] == "extra_forbidden":
            problems.append(_unknown_key(where, e["loc"]))
        elif e["type"] == "missing":
            problems.append(f"{where}: required key is missing")
        else:
            problems.append(f"{where}: {e['msg'].removeprefix('Value error, ')}")
    return "; ".join(problems)


def set_dotted(doc: dict, dotted: str, value: Any) -> None:
    """``set_dotted(doc, "split.validation_fraction", 0.2)``, creating mappings on the way."""
    *parents, leaf = dotted.split(".")
    node = doc
    for i, part in enumerate(parents):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise RecipeError(f"--set {dotted}: {'.'.join(parents[: i + 1])} is not a mapping")
        node = child
    node[leaf] = value


def parse_override(text: str) -> Override:
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise RecipeError(f"--set {text!r}: expected dotted.key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else raw
        _check_size(value, f"--set {key.strip()}")
    except RecursionError:
        raise RecipeError(f"--set {key}: value is nested too deeply") from None
    except yaml.YAMLError as error:
        raise RecipeError(f"--set {key}: value does not parse as YAML: {error}") from error
    return key.strip(), value


def parse_overrides_mapping(text: str) -> list[Override]:
    """``--overrides '{split.seed: 3, dedup.exact: true}'``: a YAML mapping of dotted keys (what
    ``--set`` takes one at a time), as launchers that pass one value per flag need it."""
    try:
        mapping = yaml.safe_load(text) if text.strip() else None
        _check_size(mapping, "--overrides")
    except RecursionError:
        raise RecipeError("--overrides is nested too deeply") from None
    except yaml.YAMLError as error:
        raise RecipeError(f"--overrides does not parse as YAML: {error}") from None
    if mapping is None:
        return []
    if not isinstance(mapping, dict):
        raise RecipeError(f"--overrides must be a mapping of dotted keys, got {text!r}")
    return [(str(key), value) for key, value in mapping.items()]


def recipe_from_document(doc: Any, *, overrides: Sequence[Override] = (), origin: str = "recipe") -> Recipe:
    """``doc`` with ``overrides`` set, validated."""
    if not isinstance(doc, dict):
        raise RecipeError(f"{origin}: expected a mapping at the top level, got {type(doc).__name__}")
    if isinstance(doc.get("target"), str) and overrides:  # target: gpt-oss, then --max-length sets into it
        doc["target"] = {"kind": doc["target"]}
    for key, value in overrides:
        set_dotted(doc, key, value)
    try:
        recipe = Recipe.model_validate(doc)
    except ValidationError as error:
        raise RecipeError(f"{origin}: {_describe(error)}") from None
    try:  # what the target takes (its model, formats, outputs): known now, not at the launch
        target_for(recipe)
    except TargetError as error:
        raise RecipeError(f"{origin}: {error}") from None
    return recipe


# A recipe is a few kilobytes; these bounds keep a hostile one (a huge file, YAML aliases that
# expand to billions of nodes) from exhausting the launcher before any check runs.
MAX_RECIPE_BYTES = 10 << 20
MAX_RECIPE_NODES = 100_000


def _check_size(doc: Any, origin: str) -> None:
    """Count the document's nodes as YAML aliases expand them, stopping at the bound."""
    stack, seen = [doc], 0
    while stack:
        node = stack.pop()
        seen += 1
        if seen > MAX_RECIPE_NODES:
            raise RecipeError(f"{origin} expands to more than {MAX_RECIPE_NODES:,} values (YAML aliases?); "
                              "a recipe this large is refused")
        if isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def load_recipe(url: str, *, overrides: Sequence[Override] = ()) -> Recipe:
    """Read the recipe at ``url``, set ``overrides`` in it and validate it."""
    try:
        with fsspec.open(url, "rb") as f:
            data = f.read(MAX_RECIPE_BYTES + 1)
        if len(data) > MAX_RECIPE_BYTES:
            raise RecipeError(f"recipe {url!r} is larger than {MAX_RECIPE_BYTES >> 20} MB")
        doc = yaml.safe_load(data.decode("utf-8"))
    except FileNotFoundError:
        raise RecipeError(f"recipe {url!r} does not exist") from None
    except UnicodeDecodeError as error:
        raise RecipeError(f"recipe {url!r} is not UTF-8 text: {error}") from None
    except RecursionError:
        raise RecipeError(f"recipe {url!r} is nested too deeply") from None
    except yaml.YAMLError as error:
        raise RecipeError(f"recipe {url!r} is not valid YAML: {error}") from None
    except (OSError, ValueError, ImportError) as error:  # no access, unknown protocol, backend not installed
        raise RecipeError(f"cannot read recipe {url!r}: {type(error).__name__}: {error}") from None
    if doc is None:
        doc = {}
    _check_size(doc, f"recipe {url!r}")
    recipe = recipe_from_document(doc, overrides=overrides, origin=f"recipe {url}")
    return recipe.with_source(data.decode("utf-8"), overrides)
