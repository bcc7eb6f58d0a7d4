"""Generate the small sample data in examples/data/ (deterministic; rerun to refresh).

    python examples/make_data.py

Each file has a few rows that ftprep must reject or drop, so the rejected and dropped
outputs and the stats show something: empty answers, a ragged CSV row, an over-long
example, duplicates, personal data and a leaked key.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

DATA = Path(__file__).resolve().parent / "data"
TOKENIZERS = Path(__file__).resolve().parent / "tokenizers"
# A ChatML-style chat template (written for these examples) that marks the assistant's turns
# for the loss with {% generation %}, as transformers' assistant-token masks read them.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message.role not in ['system', 'user', 'assistant'] %}"
    "{{ raise_exception('this template has no role ' + message.role) }}{% endif %}"
    "<|im_start|>{{ message.role }}\n"
    "{% if message.role == 'assistant' %}{% generation %}{{ message.content }}<|im_end|>{% endgeneration %}\n"
    "{% else %}{{ message.content }}<|im_end|>\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

PRODUCTS = ["Acme Cloud Storage", "Acme Billing", "Acme Mobile"]
QUESTIONS = [
    ("How do I reset my password?", "", "Open Settings → Security, choose \"Reset password\" and follow the e-mail link."),
    ("Summarise the following ticket.", "Customer cannot upload files larger than 2 GB.  Browser:  Firefox.",
     "The customer hits the 2 GB upload limit in Firefox; suggest the desktop client, which supports files up to 50 GB."),
    ("Translate to French.", "Your invoice is ready.", "Votre facture est prête."),
    ("What does error E1042 mean?", "", "E1042 means the sync token expired. Sign out and back in to refresh it."),
    ("Write a haiku about backups.", "", "Quiet night, disks spin\nyesterday's files kept safe\nmorning finds them whole"),
    ("Extract the order number.", "Hi, my order #A-99812 never arrived.", "A-99812"),
    ("Is two-factor authentication supported?", "", "Yes. Enable it under Settings → Security → Two-factor authentication."),
    ("Explain the difference between plans.", "Basic vs Pro",
     "Basic includes 100 GB and e-mail support; Pro includes 2 TB, version history and phone support."),
    ("Réponds en une phrase : quelle est la limite de stockage ?", "", "Le forfait Basic offre 100 Go, le forfait Pro 2 To."),
    ("Format this as JSON.", "name: Ada, plan: Pro", "{\"name\": \"Ada\", \"plan\": \"Pro\"}"),
]
TICKETS = [
    ("Can't log in", "I changed my phone and now the 2FA code is refused.\nWhat can I do?",
     "Use one of your recovery codes, then re-enrol the new phone under Settings → Security."),
    ("Refund", "I was charged twice this month.", "Sorry about that! The duplicate charge is refunded; expect it in 3–5 days."),
    ("Sync stuck", "Sync has shown \"preparing\" for two days.", "Restart the client; if it persists, clear the cache folder."),
    ("Dark mode", "Is there a dark mode on Android?", "Yes: Settings → Appearance → Theme → Dark."),
    ("Export data", "How do I export all my files?", "Use Account → Export; you get a ZIP link by e-mail within an hour."),
]

# Asked once each: with them the ticket examples keep more than OpenAI's minimum of 10 training
# examples after dedup drops the repeated TICKETS and the split takes its share.
MORE_TICKETS = [
    ("Shared link", "A shared link says \"expired\" after one day.", "Links last 24 hours by default; set a longer expiry when you share."),
    ("Storage full", "My storage shows full but I deleted files.", "Empty the trash under Files → Trash; deleted files count until then."),
    ("Invoice address", "How do I change the address on my invoices?", "Edit it under Billing → Details; the next invoice uses it."),
    ("Offline files", "Can I open files without internet?", "Mark them \"Available offline\" in the mobile app first."),
    ("Team seats", "How do I add two more people to my team?", "Go to Team → Seats → Add; each seat is billed from today."),
    ("Version history", "I overwrote a document by mistake.", "Right-click it, choose Version history and restore yesterday's version."),
    ("Close account", "Please close my account.", "Go to Account → Close account; your files are kept for 30 days first."),
]


def _qa_rows(rng: random.Random, count: int) -> list[dict]:
    rows = []
    for i in range(count):
        instruction, input_, output = QUESTIONS[i % len(QUESTIONS)]
        rows.append(
            {
                "id": i,
                "product": PRODUCTS[rng.randrange(len(PRODUCTS))],
                "instruction": instruction if i < len(QUESTIONS) else f"{instruction} (variant {i})",
                "input": input_ or None,
                "output": output,
            }
        )
    # Rows that must be rejected: an empty answer (cleaning leaves nothing), a zero-width-only answer.
    rows[7]["output"] = "   "
    rows[23]["output"] = "\u200b\u200b"
    # Control characters and runs of spaces that cleaning removes.
    rows[11]["output"] = "Press\u0007  Ctrl+S   to save."
    return rows


def write_parquet(rng: random.Random) -> None:
    rows = _qa_rows(rng, 60)
    table = pa.Table.from_pylist(rows)
    # Small row groups so the example exercises the parallel row-group split.
    pq.write_table(table.slice(0, 30), DATA / "qa-00000.parquet", row_group_size=10)
    pq.write_table(table.slice(30), DATA / "qa-00001.parquet", row_group_size=10)


def write_conversations() -> None:
    message = pa.struct([("role", pa.string()), ("content", pa.string()), ("name", pa.string())])
    conversations = []
    for i, (subject, body, reply) in enumerate(TICKETS * 3):
        turns = [
            {"role": "user", "content": f"{subject}: {body}", "name": None},
            {"role": "assistant", "content": reply, "name": None},
            {"role": "user", "content": "Thanks! Anything else I should know?", "name": None},
            {"role": "assistant", "content": "No, that's all. Have a good day!", "name": None},
        ]
        conversations.append({"conversation_id": f"c{i:03d}", "messages": turns})
    # Must be rejected: a conversation with no assistant turn, and one with an unknown role.
    conversations[4]["messages"] = conversations[4]["messages"][:1]
    conversations[9]["messages"][1]["role"] = "agent"
    table = pa.Table.from_pylist(
        conversations, schema=pa.schema([("conversation_id", pa.string()), ("messages", pa.list_(message))])
    )
    pq.write_table(table, DATA / "conversations.parquet")


def write_tickets_csv() -> None:
    path = DATA / "tickets.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["ticket_id", "subject", "body", "reply"])
        for i, (subject, body, reply) in enumerate(TICKETS * 4 + MORE_TICKETS):
            writer.writerow([f"T{i:04d}", subject, body, reply])
        writer.writerow(["T9001", "Empty reply", "Nobody answered this one.", ""])
        writer.writerow(["T9002", "Ragged", "This row has one field too many", "reply", "extra"])
        writer.writerow(["T9003", "Template", "Subject line {{ not a template }}", "Literal braces stay literal."])
        # Personal data to redact, HTML to strip, a secret that rejects the row, an echoed answer.
        writer.writerow(["T9004", "Callback", "Please call me at (415) 555-2671 or mail jane.doe@example.com",
                         "We will call you back within the hour."])
        writer.writerow(["T9005", "HTML export", "<p>My invoice shows &quot;0.00&quot;<br>Why?</p>",
                         "Invoices are regenerated every night; check again tomorrow."])
        writer.writerow(["T9006", "Key", "Is this key still valid? sk-proj-abcDEF1234567890ghijklmnopQR",
                         "Please revoke it right away."])
        writer.writerow(["T9007", "Please repeat", "Say hello", "Please repeat Say hello"])


def write_completion_csv() -> None:
    path = DATA / "completions.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter=";")
        writer.writerow(["question", "answer"])
        for subject, body, reply in TICKETS * 3 + MORE_TICKETS:
            writer.writerow([f"{subject}. {body}", reply])
        # Over babbage-002's 16,384-token limit per example.
        writer.writerow(["Repeat the word backup.", " backup" * 17_000])
        writer.writerow(["A question with no answer", ""])


PREFERENCES = [
    ("How do I cancel my plan?", "Go to Account → Plan → Cancel. You keep access until the period ends.",
     "You can't cancel online, call us."),
    ("Is my data encrypted?", "Yes: in transit with TLS 1.3 and at rest with AES-256.", "Probably, I think so."),
    ("Can I share a folder?", "Yes. Right-click the folder, choose Share, and enter the people's e-mail addresses.",
     "Sharing is not a thing we do."),
]


def write_preferences_csv() -> None:
    path = DATA / "preferences.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["question", "good", "bad"])
        for question, good, bad in PREFERENCES * 4:
            writer.writerow([question, good, bad])
        # Must be rejected: both answers the same, and a missing non-preferred answer.
        writer.writerow(["Where is my invoice?", "Account → Billing.", "Account → Billing."])
        writer.writerow(["Do you have an API?", "Yes, see the developer docs.", ""])


def write_chat_jsonl() -> None:
    """Ready-made chat examples (with tool calls) to check with `ftprep validate`."""
    system = {"role": "system", "content": "You are Acme's support assistant."}
    tools = [{"type": "function", "function": {
        "name": "order_status", "description": "Look up an order.",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string", "description": "The order id."}},
                       "required": ["order_id"]}}}]
    lines = []
    for i, (subject, body, reply) in enumerate(TICKETS * 2):
        lines.append({"messages": [system, {"role": "user", "content": f"{subject}: {body}"},
                                   {"role": "assistant", "content": reply}]})
    call = {"id": "call_1", "type": "function", "function": {"name": "order_status", "arguments": '{"order_id": "A-99812"}'}}
    lines.append({"messages": [system, {"role": "user", "content": "Where is order A-99812?"},
                               {"role": "assistant", "content": None, "tool_calls": [call]},
                               {"role": "tool", "tool_call_id": "call_1", "content": '{"status": "in transit"}'},
                               {"role": "assistant", "content": "It is in transit and should arrive tomorrow."}],
                  "tools": tools})
    lines.append({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!", "weight": 2}]})
    bad_call = {**call, "function": {"name": "order_status", "arguments": "order A-99812"}}
    lines.append({"messages": [system, {"role": "user", "content": "Order?"},
                               {"role": "assistant", "content": None, "tool_calls": [bad_call]}]})
    with open(DATA / "chat_examples.jsonl", "w", encoding="utf-8") as f:
        for line in lines:
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
        f.write('{"messages": [{"role": "user", "content": "cut off mid-upl\n')


def write_tokenizer() -> None:
    """A small byte-level BPE tokenizer trained on the example rows, with the ChatML template:
    an open-weights model's files as the hub ships them, for the ``hf`` target's example."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    corpus = [text for question in QUESTIONS for text in question] + [text for ticket in TICKETS for text in ticket]
    corpus += [f"You answer questions about {product}." for product in PRODUCTS] + ["system user assistant"]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(corpus * 4, trainer)
    folder = TOKENIZERS / "chatml-tiny"
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(folder / "tokenizer.json"))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
              "model_max_length": 4096, "chat_template": CHATML_TEMPLATE}
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def main() -> None:
    DATA.mkdir(parents=True, exist_ok=True)
    rng = random.Random(20261126)
    write_parquet(rng)
    write_conversations()
    write_tickets_csv()
    write_completion_csv()
    write_preferences_csv()
    write_chat_jsonl()
    write_tokenizer()
    print(json.dumps(sorted(p.name for p in DATA.iterdir())))


if __name__ == "__main__":
    main()
