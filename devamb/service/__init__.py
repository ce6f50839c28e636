"""A service: its listeners (HTTP, TCP), the exchange recorder, its counters."""
