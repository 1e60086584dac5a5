"""Reproduce an evidence run: locked environments and ``kakeya-evidence reproduce``."""
