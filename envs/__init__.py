"""Gymnasium portfolio environments (batched core and shells)."""
