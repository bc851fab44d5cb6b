"""Helpers for tests and smoke checks (a tiny random model); nothing here is used by evaluations."""
