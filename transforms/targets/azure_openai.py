"""Azure OpenAI (Microsoft Foundry) fine-tuning: OpenAI's chat JSONL, Azure's model table.

The rows, their rules and the token accounting are OpenAI's (Azure documents the same chat,
tool-calling, weight and DPO formats); the job request is OpenAI's body, sent to the Azure
resource's ``/openai/fine_tuning/jobs``.
"""

from __future__ import annotations

from transforms.targets.base import Counting, DatasetLimits, HostedModel, Provider
from transforms.targets.hosted import HostedTarget
from transforms.targets.openai import OpenAI

FINE_TUNING = "https://learn.microsoft.com/en-us/azure/ai-services/openai/how-to/fine-tuning"
# Azure's fine-tuning model table ("Training example context length: 65,536" for these).
MODELS = {name: HostedModel(name, 65_536, FINE_TUNING, "o200k_base") for name in (
    "gpt-4o-2024-08-06", "gpt-4o-mini-2024-07-18", "gpt-4.1-2025-04-14", "gpt-4.1-mini-2025-04-14",
    "gpt-4.1-nano-2025-04-14")}


PROVIDER = Provider(
    title="Azure OpenAI", sources={"format, models and limits": FINE_TUNING},
    formats=("chat", "preference"), models=MODELS,
    limits=DatasetLimits(min_train_examples=10, source=FINE_TUNING),
    counting=Counting("tiktoken", source="OpenAI's cookbook method with the model's encoding, as for OpenAI"),
    schema_file="openai_chat.schema.json",
    unpublished=("the per-file maximum number of examples",),
)


class AzureOpenAI(HostedTarget):
    kind = "azure-openai"
    provider = PROVIDER
    # OpenAI's rows (its rules already ran, transforms/rules.py), billing and job body.
    converts = False
    openai_billing = True

    convert = staticmethod(lambda example, fmt: example)

    job_request = OpenAI.job_request
