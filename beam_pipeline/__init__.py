"""ftprep's driver: recipe loading, options, the CLI and the function that wires the graph."""
