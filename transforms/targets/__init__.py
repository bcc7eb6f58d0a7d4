"""The targets: one module per kind (``registry.py`` lists them), and what the open-weights ones
render and count with (chat templates, tokenizer files, harmony)."""
