"""Per-request policy: retries, timeouts, the circuit breaker."""
