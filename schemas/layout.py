"""The output directory's layout: the names ftprep gives what it writes.

``train/``, ``validation/``, ``rejected/`` and ``dropped/<reason>/`` hold the shards (their
names are the outcomes', ``schemas/records.py``); the files below sit at the top.
"""

STATS_FILE = "stats.json"
REPORT_FILE = "report.html"
JOB_FILE = "finetune_job.json"
# Written last: schedulers key on it.
SUCCESS_FILE = "_SUCCESS"
# Written before any worker starts: marks the directory as an ftprep output (see beam_pipeline/outputs/location.py).
MANIFEST_FILE = "_FTPREP"
# With output.provenance: the source file and row of every kept example, per split.
PROVENANCE_DIR = "provenance"
# Pass 1's files (one per read unit), removed before _SUCCESS is written.
TEMP_DIR = "_temporary"
UNITS_DIR = "units"
