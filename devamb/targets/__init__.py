"""Target kinds: one module each, listed in `registry`."""
