"""The benchmark: `python -m bench` (serving throughput) and `python -m bench.drain`."""
