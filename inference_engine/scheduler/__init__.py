"""Admission control for generations across sessions."""
