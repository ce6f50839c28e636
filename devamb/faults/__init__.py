"""Fault injection: one module per kind, a shared wrapper for probability, match and schedule."""
