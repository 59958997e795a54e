"""The gates, one module per level, and the registry of limits they enforce."""
