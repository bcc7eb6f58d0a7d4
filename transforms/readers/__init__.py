"""Reading Parquet, CSV and JSONL shards through fsspec, one module per format.

A reader (``base.Reader``) tells a file's columns, plans the file into read units and reads one
unit's rows, each with its provenance (the file's URL and the row's 0-based index). ``paths``
expands the recipe's inputs; ``probes`` holds the launcher's cheap looks at a file before the
run; ``planning`` is the step that spreads read units over the workers; ``registry`` picks a
format's reader and reads a unit, turning a file that breaks off into a failed file.
"""
