"""Stable-baselines3 agents: training, policies and export."""
