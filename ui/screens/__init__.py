"""Screens and dialogs of the devamb TUI."""
