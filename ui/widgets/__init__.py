"""Widgets of the devamb TUI: each gets data set on it and posts messages up."""
