"""Trusted helpers for the property tests: strategies, checks and the pytest plugin."""
