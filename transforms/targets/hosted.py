"""What every hosted provider beside OpenAI shares: a model table with a page per limit, a model
outside it given with ``target.max_length``, tokens counted as the provider's ``Counting`` says
(or exactly with the open model's tokenizer given as ``target.tokenizer``), its per-file limits
checked on the run's counts, its rows checked and converted once (``to_row``)."""

from __future__ import annotations

import difflib
from typing import Any, ClassVar, Sequence

from schemas.models import ModelSpec, is_openai_model
from transforms.targets.base import Provider, Target, TargetError
from transforms.targets.hf_tokens import HfSource
from transforms.tokens import CharEstimateSource, TiktokenSource


def unknown_model_message(model: str, provider: Provider) -> str:
    """What to give instead of a model outside the provider's table: its models (the closest
    first), or for a model named as on another platform (an OpenAI model left in a recipe whose
    target was switched), the flag that names this provider's."""
    names = sorted(provider.models)
    if is_openai_model(model):
        wrong = f"model: {model!r} is an OpenAI model, not one of {provider.title}'s; give --model "
        if not names:
            return wrong + f"with the model's name on {provider.title} and --max-length with its per-example token limit"
        return wrong + names[0] + (f" (or {', '.join(names[1:])})" if len(names) > 1 else "")
    close = difflib.get_close_matches(model, names, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}? " if close else ""
    listed = f"known: {', '.join(names)}" if names else "ftprep has no table for it"
    return (f"model: {model!r} is not in ftprep's {provider.title} table ({hint}{listed}); give "
            "target.max_length (--max-length), its per-example token limit, to use it")


class HostedTarget(Target):
    """A provider module declares ``provider`` (its pages' rules) and implements ``convert`` (the
    row) and ``job_body`` (its job request)."""

    provider: ClassVar[Provider]
    converts = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "provider" in cls.__dict__:
            cls.title = cls.provider.title
            cls.example_formats = cls.provider.formats

    def resolve_model(self, recipe) -> ModelSpec:
        """The provider's model from its table (with the page its limit is from), or a model
        outside it given with target.max_length."""
        provider, spec, model = self.provider, self.spec, recipe.model
        if not isinstance(model, str) and model is not None:
            raise TargetError(f"model: with target {self.kind}, the tokenizer and max_length come from target; "
                              "give model as a name only")
        if not model:
            raise TargetError(f"model: give the {provider.title} model to fine-tune"
                              + (f" ({', '.join(sorted(provider.models))})" if provider.models else ""))
        known = provider.models.get(model)
        if known is None and spec.max_length is None:
            raise TargetError(unknown_model_message(model, provider))
        limit = min(x for x in (spec.max_length, known and known.max_tokens_per_example) if x)
        encoding = (known.encoding if known and known.encoding else
                    "o200k_base" if provider.counting.method == "tiktoken" else f"estimate:{self.kind}")
        if spec.tokenizer:
            encoding = f"hf:{spec.tokenizer}"
        return ModelSpec(model, encoding, limit)

    def token_source(self):
        spec = self.spec
        if spec.tokenizer:  # an open-weights model's own tokenizer: exact
            return HfSource(spec.tokenizer, spec.revision, dict(spec.sha256), spec.allow_download)
        if self.provider.counting.method == "estimate":
            return CharEstimateSource(self.kind, self.provider.counting.chars_per_token)
        return TiktokenSource(self.model.encoding, self.encodings_url)

    def to_row(self, example: dict[str, Any], fmt: str) -> dict[str, Any]:
        return self.convert(example, fmt)

    @staticmethod
    def convert(example: dict[str, Any], fmt: str) -> dict[str, Any]:
        raise NotImplementedError

    def job_request(self, *, finetune, example_format: str, train_files: Sequence[str],
                    validation_files: Sequence[str], n_epochs: int) -> dict[str, Any] | None:
        # The recipe's epochs, else the provider's own default (not OpenAI's estimate).
        epochs = finetune.n_epochs if finetune.n_epochs != "auto" else None
        return self.job_body(model=self.model.name, train_files=train_files, validation_files=validation_files,
                             n_epochs=epochs, suffix=finetune.suffix, example_format=example_format)

    @staticmethod
    def job_body(**_) -> dict[str, Any]:
        raise NotImplementedError

    def describe(self, source) -> dict[str, Any]:
        """Its title, the pages its rules come from, how tokens were counted, its per-file limits
        (checked against the run's counts in the stats) and what it does not publish."""
        provider = self.provider
        exact = not isinstance(source, CharEstimateSource)
        counting = {"exact": exact, "method": source.label,
                    "source": provider.counting.source if not isinstance(source, HfSource) else "the model's tokenizer"}
        limits = {name: value for name, value in (
            ("min_train_examples", provider.limits.min_train_examples),
            ("max_train_examples", provider.limits.max_train_examples),
            ("max_validation_examples", provider.limits.max_validation_examples)) if value is not None}
        model = provider.models.get(self.model.name)
        return {"title": provider.title, "sources": dict(provider.sources), "counting": counting,
                "model_limit_source": model.source if model else "target.max_length (the model is not in ftprep's table)",
                "limits": limits, "limits_source": provider.limits.source, "unpublished": list(provider.unpublished)}
