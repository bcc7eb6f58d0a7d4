"""Amazon Bedrock fine-tuning of Amazon Nova (Micro, Lite, Pro): the ``bedrock-conversation-2024`` schema.

From "Preparing data for fine-tuning Understanding models" (Nova user guide): a record is
``{"schemaVersion", "system": [{"text"}], "messages": [{"role": "user" | "assistant",
"content": [{"text"} | {"image": ...} | {"video": ...}]}]}``; the first message is the user's,
the last the assistant's; images and videos are S3 locations in the dataset's bucket; the terms
``User:``, ``Bot:``, ``Assistant:``, ``System:``, ``<image>``, ``<video>`` and ``[EOS]`` are
reserved and fail the job anywhere in a prompt. DPO records replace the last assistant turn by
two ``candidates`` labelled ``preferred`` and ``non-preferred`` (Nova's SageMaker guide).
Tokens are estimated at 6 characters a token, Bedrock's own planning figure; the per-example
token limit of fine-tuning is not published in the pages read: the table holds each model's
context window as its model id states it (``…:128k``, ``…:300k``).
"""

from __future__ import annotations

from transforms.targets.base import Counting, DatasetLimits, HostedModel, Provider, TargetRuleError, reject_tools
from transforms.targets.hosted import HostedTarget

DATA = "https://docs.aws.amazon.com/nova/latest/userguide/fine-tune-prepare-data-understanding.html"
MODELS_PAGE = "https://docs.aws.amazon.com/nova/latest/userguide/customization.html"
DPO = "https://docs.aws.amazon.com/sagemaker/latest/dg/nova-fine-tuning-training-job.html"
# Its training-recipe table: DPO (parameter-efficient and full rank) is "No" for Amazon Bedrock,
# "Yes" for SageMaker AI training jobs and HyperPod.
RECIPES = "https://docs.aws.amazon.com/nova/latest/userguide/customization.html"
ESTIMATE = "https://docs.aws.amazon.com/bedrock/latest/userguide/preparing-text-data.html"
JOBS = "https://docs.aws.amazon.com/bedrock/latest/APIReference/API_CreateModelCustomizationJob.html"
HYPERPARAMETERS = "https://docs.aws.amazon.com/bedrock/latest/userguide/cm-hp-nova-mm.html"
MODELS = {
    "amazon.nova-micro-v1:0:128k": HostedModel("amazon.nova-micro-v1:0:128k", 128_000, MODELS_PAGE),
    "amazon.nova-lite-v1:0:300k": HostedModel("amazon.nova-lite-v1:0:300k", 300_000, MODELS_PAGE),
    "amazon.nova-pro-v1:0:300k": HostedModel("amazon.nova-pro-v1:0:300k", 300_000, MODELS_PAGE),
}
SCHEMA_VERSION = "bedrock-conversation-2024"
RESERVED = ("User:", "Bot:", "Assistant:", "System:", "<image>", "<video>", "[EOS]")
IMAGE_FORMATS = {"png": "png", "jpg": "jpeg", "jpeg": "jpeg", "gif": "gif", "webp": "webp"}


def _content(content, where: str, prompt: bool) -> list[dict]:
    parts = [{"type": "text", "text": content or ""}] if content is None or isinstance(content, str) else content
    blocks = []
    for index, part in enumerate(parts):
        if part.get("type") == "text":
            text = part.get("text", "")
            found = next((word for word in RESERVED if word in text), None) if prompt else None
            if found:
                raise TargetRuleError("bedrock_nova_reserved_keyword",
                                      f"{where}: {found!r} is a reserved keyword in Nova's training prompts")
            blocks.append({"text": text})
            continue
        url = (part.get("image_url") or {}).get("url", "")
        extension = url.rsplit(".", 1)[-1].lower()
        if not url.startswith("s3://") or extension not in IMAGE_FORMATS:
            raise TargetRuleError("bedrock_nova_image_uri",
                                  f"{where}.content[{index}]: Nova takes images as S3 URIs of png, jpeg, gif or webp files")
        blocks.append({"image": {"format": IMAGE_FORMATS[extension], "source": {"s3Location": {"uri": url}}}})
    return blocks


def _turns(messages: list[dict]) -> tuple[list[dict], list[dict]]:
    system, turns = [], []
    for index, message in enumerate(messages):
        role, where = message.get("role"), f"messages[{index}]"
        if message.get("weight", 1) == 0:
            raise TargetRuleError("bedrock_nova_weight", f"{where}: Nova's format has no per-message weight (weight 0)")
        if role == "system":
            system.extend(_content(message.get("content"), where, prompt=True))
        elif role in ("user", "assistant"):
            turns.append({"role": role, "content": _content(message.get("content"), where, prompt=role == "user")})
        else:
            raise TargetRuleError("bedrock_nova_role", f"{where}.role is {role!r}; Nova takes user and assistant")
    if not turns or turns[0]["role"] != "user":
        raise TargetRuleError("bedrock_nova_first_turn", "the first message must be the user's")
    return system, turns


def to_row(example: dict, fmt: str) -> dict:
    if fmt == "completion":
        example = {"messages": [{"role": "user", "content": example["prompt"]},
                                {"role": "assistant", "content": example["completion"]}]}
    holder = example["input"] if fmt == "preference" else example
    reject_tools(holder, "bedrock_nova_tools", "Amazon Nova (as ftprep converts it)")
    system, turns = _turns(holder["messages"])
    if fmt == "preference":
        if turns[-1]["role"] != "user":
            raise TargetRuleError("bedrock_nova_last_turn", "a preference pair's input must end with the user's turn")
        turns.append({"role": "assistant", "candidates": [
            {"content": _content(example[key][0].get("content"), key, prompt=False), "preferenceLabel": label}
            for key, label in (("preferred_output", "preferred"), ("non_preferred_output", "non-preferred"))]})
    elif turns[-1]["role"] != "assistant":
        raise TargetRuleError("bedrock_nova_last_turn", "the last message must be the assistant's")
    row = {"schemaVersion": SCHEMA_VERSION}
    if system:
        row["system"] = system
    row["messages"] = turns
    return row


def job_request(*, model: str, train_files, validation_files, n_epochs: int | None, suffix: str | None,
                example_format: str) -> dict:
    """The body of ``CreateModelCustomizationJob`` (S3 URIs, the role and the names as placeholders).
    Preference pairs: Bedrock has no DPO for Nova (the training-recipe table of "Customizing Amazon
    Nova models": DPO on SageMaker AI training jobs and HyperPod only), so the request is a
    SageMaker AI training job's, run with a Nova DPO recipe."""
    if example_format == "preference":
        return _sagemaker_dpo_job(model=model, train_files=train_files, validation_files=validation_files,
                                  n_epochs=n_epochs, suffix=suffix)
    body = {
        "jobName": "<job name>", "customModelName": suffix or "<custom model name>", "roleArn": "<service role ARN>",
        "baseModelIdentifier": model, "customizationType": "FINE_TUNING",
        "trainingDataConfig": {"s3Uri": f"s3://<bucket>/{' + '.join(train_files)}"},
        "outputDataConfig": {"s3Uri": "s3://<bucket>/<output prefix>/"},
    }
    if validation_files:
        body["validationDataConfig"] = {"validators": [{"s3Uri": f"s3://<bucket>/{' + '.join(validation_files)}"}]}
    if n_epochs is not None:
        body["hyperParameters"] = {"epochCount": str(n_epochs)}  # Bedrock takes hyperparameters as strings
    return body


def _sagemaker_dpo_job(*, model: str, train_files, validation_files, n_epochs: int | None, suffix: str | None) -> dict:
    """What a SageMaker AI training job with a Nova DPO recipe needs from this dataset (the
    recipe, role and bucket as placeholders); not a Bedrock request."""
    body = {
        "service": "SageMaker AI training job with an Amazon Nova DPO recipe (Amazon Bedrock has no DPO for Nova)",
        "source": RECIPES, "recipe": f"<a Nova DPO recipe (LoRA or full rank) for {model}>", "baseModel": model,
        "roleArn": "<SageMaker execution role ARN>", "jobName": suffix or "<job name>",
        "trainingData": f"s3://<bucket>/{' + '.join(train_files)}",
        "outputPath": "s3://<bucket>/<output prefix>/",
    }
    if validation_files:
        body["validationData"] = f"s3://<bucket>/{' + '.join(validation_files)}"
    if n_epochs is not None:
        body["maxEpochs"] = n_epochs
    return body


PROVIDER = Provider(
    title="Amazon Bedrock (Nova)",
    sources={"format and rules": DATA, "models": MODELS_PAGE, "DPO records": DPO, "token estimate": ESTIMATE,
             "job request": JOBS, "epochs (1-5)": HYPERPARAMETERS, "DPO runs on SageMaker AI, not Bedrock": RECIPES},
    formats=("chat", "completion", "preference"), models=MODELS,
    limits=DatasetLimits(source=DATA),
    counting=Counting("estimate", chars_per_token=6.0, source=ESTIMATE),
    schema_file="bedrock_nova.schema.json",
    unpublished=("the per-example token limit of fine-tuning (the table holds the models' context windows)",
                 "minimum and maximum records per file (100 per task is recommended)"),
)


class BedrockNova(HostedTarget):
    kind = "bedrock-nova"
    provider = PROVIDER
    convert = staticmethod(to_row)
    job_body = staticmethod(job_request)
