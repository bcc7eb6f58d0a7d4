"""Stages exchange batches (lists of records); tests feed and read them record by record."""

import apache_beam as beam


def batched(p, records, label="Records"):
    """One PCollection holding ``records`` as a single batch."""
    return p | label >> beam.Create([list(records)], reshuffle=False)


def each(batches, label):
    """The records of a PCollection of batches."""
    return batches | label >> beam.FlatMap(lambda batch: batch)
