"""devamb: a local ambassador for developers."""

__version__ = "0.1.0"
