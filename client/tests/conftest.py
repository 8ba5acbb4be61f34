"""Fixtures of the client's tests: the live platform of mc_live.py."""

from mc_live import live_platform, platform_processes  # noqa: F401
