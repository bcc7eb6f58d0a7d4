"""Pipeline stages: plain functions plus the Beam transforms that wrap them.

Nothing here knows about argv, recipes on disk or runners.
"""
