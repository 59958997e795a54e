"""Baseline allocators run through the same gates and costs as the agents."""
