"""Loading a recipe: YAML from any fsspec URL, CLI overrides, then the typed schema."""

from __future__ import annotations

from typing import Any, Sequence

import fsspec
import yaml
from pydantic import ValidationError

from beam_pipeline.errors import UsageError
from schemas.recipe import Recipe


class RecipeError(UsageError):
    """The recipe cannot be used; the message names the key and what to fix."""


def _describe(error: ValidationError) -> str:
    problems = []
    for e in error.errors():
        where = ".".join(str(part) for part in e["loc"]) or "recipe"
        if e["type"] == "extra_forbidden":
            problems.append(f"{where}: unknown key")
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


def parse_override(text: str) -> tuple[str, Any]:
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


def recipe_from_document(doc: Any, *, origin: str = "recipe") -> Recipe:
    if not isinstance(doc, dict):
        raise RecipeError(f"{origin}: expected a mapping at the top level, got {type(doc).__name__}")
    try:
        return Recipe.model_validate(doc)
    except ValidationError as error:
        raise RecipeError(f"{origin}: {_describe(error)}") from None


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


def load_recipe(
    url: str,
    *,
    overrides: Sequence[str] = (),
    inputs: Sequence[str] | None = None,
    output: str | None = None,
) -> Recipe:
    """Read the recipe at ``url`` and apply ``--set``, ``--input`` and ``--output`` on top of it."""
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
    if not isinstance(doc, dict):
        raise RecipeError(f"recipe {url!r}: expected a mapping at the top level, got {type(doc).__name__}")
    _check_size(doc, f"recipe {url!r}")
    for text in overrides:
        set_dotted(doc, *parse_override(text))
    if inputs:
        set_dotted(doc, "input.paths", list(inputs))
    if output:
        set_dotted(doc, "output.path", output)
    return recipe_from_document(doc, origin=f"recipe {url}")
