"""devamb's Textual TUI. It talks to an engine only through `devamb.control.protocol`."""
