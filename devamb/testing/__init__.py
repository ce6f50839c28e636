"""devamb in a test suite: an engine process a suite starts and stops (engine.py, usable
without pytest), and the pytest plugin built on it (pytest_plugin.py)."""
