"""What a recipe's ``target`` decides for the stages: where token counts come from.

OpenAI (the reference) counts with the model's tiktoken encoding by the cookbook's method; an
open-weights model with its own tokenizer and chat template (``hf``); gpt-oss with harmony.
Each source is a small picklable value: ``check()`` before the run, ``load()`` on a worker.
"""

from __future__ import annotations

from schemas.recipe import GptOssTarget, HfTarget, Recipe
from transforms.harmony_tokens import HarmonySource
from transforms.hf_tokens import HfSource
from transforms.tokens import TiktokenSource

TokenSource = TiktokenSource | HfSource | HarmonySource


def token_source(recipe: Recipe) -> TokenSource:
    target = recipe.target
    if isinstance(target, HfTarget):
        return HfSource.from_target(target)
    if isinstance(target, GptOssTarget):
        return HarmonySource.from_target(target, encodings_url=recipe.tokens.encodings_url)
    return TiktokenSource(recipe.model_spec().encoding, recipe.tokens.encodings_url)


def is_openai(recipe: Recipe) -> bool:
    return recipe.target.kind == "openai"
