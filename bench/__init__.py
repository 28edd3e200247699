"""Benchmarks: the gateway against its peers, measured in one run (``make bench``)."""
