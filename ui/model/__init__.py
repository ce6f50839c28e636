"""What the TUI remembers of the engine's stream: plain Python, no Textual."""
