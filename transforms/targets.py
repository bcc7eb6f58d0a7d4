"""What a recipe's ``target`` decides for the stages: where token counts come from.

OpenAI (the reference) counts with the model's tiktoken encoding by the cookbook's method; an
open-weights model with its own tokenizer and chat template (``hf``); gpt-oss with harmony; a
hosted provider as its module declares (``schemas/targets/``): tiktoken, the open model's
tokenizer when the recipe names it, or the provider's characters-per-token estimate.
Each source is a small picklable value: ``check()`` before the run, ``load()`` on a worker.
"""

from __future__ import annotations

from datetime import date

from schemas.models import retirement_notice
from schemas.recipe import GptOssTarget, HfTarget, HostedTargetSpec, Recipe
from schemas.targets import HOSTED
from transforms.harmony_tokens import HarmonySource
from transforms.hf_tokens import HfSource
from transforms.tokens import CharEstimateSource, TiktokenSource

TokenSource = TiktokenSource | HfSource | HarmonySource | CharEstimateSource


def token_source(recipe: Recipe) -> TokenSource:
    target = recipe.target
    if isinstance(target, HfTarget):
        return HfSource.from_target(target)
    if isinstance(target, HostedTargetSpec):
        counting = HOSTED[target.kind].counting
        if target.tokenizer:  # an open-weights model's own tokenizer: exact
            return HfSource(target.tokenizer, target.revision, dict(target.sha256), target.allow_download)
        if counting.method == "estimate":
            return CharEstimateSource(target.kind, counting.chars_per_token)
    if isinstance(target, GptOssTarget):
        return HarmonySource.from_target(target, encodings_url=recipe.tokens.encodings_url)
    return TiktokenSource(recipe.model_spec().encoding, recipe.tokens.encodings_url)


def is_openai(recipe: Recipe) -> bool:
    return recipe.target.kind == "openai"


def is_open_weights(recipe: Recipe) -> bool:
    """Targets hf and gpt-oss: TRL's rows, a dataset card, reasoning allowed."""
    return recipe.target.kind in ("hf", "gpt-oss")


def takes_openai_job(recipe: Recipe) -> bool:
    """OpenAI's job request body: OpenAI's and Azure OpenAI's."""
    return recipe.target.kind in ("openai", "azure-openai")


def target_description(recipe: Recipe, source: TokenSource) -> dict:
    """What stats.json says of the target beyond its kind: for a hosted provider its title, the
    pages its rules come from, how tokens were counted, its per-file limits and what it does not
    publish. The per-file limits are checked against the run's counts in the stats."""
    hosted = HOSTED.get(recipe.target.kind)
    if recipe.target.kind == "openai":
        notice = retirement_notice(date.today().isoformat())
        return {"retirement": notice} if notice else {}
    if hosted is None:
        return {"trained_from": source.trained_from} if isinstance(source, HfSource) else {}
    exact = not isinstance(source, CharEstimateSource)
    counting = {"exact": exact, "method": source.label,
                "source": hosted.counting.source if not isinstance(source, HfSource) else "the model's tokenizer"}
    limits = {name: value for name, value in (
        ("min_train_examples", hosted.limits.min_train_examples), ("max_train_examples", hosted.limits.max_train_examples),
        ("max_validation_examples", hosted.limits.max_validation_examples)) if value is not None}
    model = hosted.models.get(recipe.model_spec().name)
    return {"title": hosted.title, "sources": dict(hosted.sources), "counting": counting,
            "model_limit_source": model.source if model else "target.max_length (the model is not in ftprep's table)",
            "limits": limits, "limits_source": hosted.limits.source, "unpublished": list(hosted.unpublished)}
