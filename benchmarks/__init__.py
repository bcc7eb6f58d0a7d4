"""Throughput benchmark: ftprep against the scripts users would write. Run: python -m benchmarks.run"""
