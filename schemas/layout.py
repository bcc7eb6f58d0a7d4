"""The output directory's layout: the names ftprep gives what it writes.

``train/``, ``validation/``, ``rejected/`` and ``dropped/<reason>/`` hold the shards (their
names are the outcomes', ``schemas/records.py``); the files below sit at the top.
"""

STATS_FILE = "stats.json"
REPORT_FILE = "report.html"
JOB_FILE = "finetune_job.json"
# For the open-weights targets: the dataset card that makes the folder a Hugging Face dataset.
CARD_FILE = "README.md"
# Written last: schedulers key on it.
SUCCESS_FILE = "_SUCCESS"
# Written before any worker starts: marks the directory as an ftprep output (see beam_pipeline/outputs/location.py).
MANIFEST_FILE = "_FTPREP"
# With output.provenance: the source file and row of every kept example, per split.
PROVENANCE_DIR = "provenance"
# The same in a Hugging Face dataset folder (the open-weights targets): datasets infers splits
# from any directory named train or validation, and skips those whose names start with "__".
DATASET_PROVENANCE_DIR = "__provenance__"
# Pass 1's files (one per read unit), removed before _SUCCESS is written. Beside each unit's
# file, once it is complete, its result (what pass 1 says of it): what --resume reuses.
TEMP_DIR = "_temporary"
UNITS_DIR = "units"
UNIT_DONE_SUFFIX = ".done"
# With packed rows: each split's packing plan, made once from every example's length and read by
# the shards that write the packed rows (transforms/shards.py).
PACK_DIR = "pack"
# Dedup's decisions (numpy blocks, transforms/dedup.py): written by the steps that decide, read
# by those that write the shards; only their paths cross the pipeline.
DEDUP_DIR = "dedup"
# The run's dedup index (transforms/dedup_index.py): the kept examples' digests and signatures,
# what a later run's dedup.against reads instead of this run's data.
DEDUP_INDEX_DIR = "dedup_index"
# Decontamination's index of the evaluation sets (transforms/decontaminate.py): written by the
# launcher, loaded by every worker.
EVALS_DIR = "evals"
EVAL_INDEX_FILE = "index.npz"
# What the run was started with (recipe, inputs by size and time): --resume continues only the same run.
RUN_FILE = "run.json"
# Held while a run launches and writes: a second writer to the same output is refused.
LOCK_FILE = "_LOCK"
# A file is written under its name plus this and a random tag, and renamed when complete.
PARTIAL_INFIX = ".partial-"
