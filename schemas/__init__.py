"""Typed contracts shared by the pipeline: the recipe, the records, the model table, stats."""
