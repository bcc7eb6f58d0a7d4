"""JSON Schemas of the rows each hosted provider takes, written from its pages (the targets
themselves are ``transforms/targets/``)."""
