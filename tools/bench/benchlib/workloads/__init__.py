"""Workload families; each module registers its cases with `benchlib.registry`."""
