"""Frozen-policy production path: torch-free runtime, FrozenAllocator, HTTP service."""
