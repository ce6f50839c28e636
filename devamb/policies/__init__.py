"""What the ambassador does for the app: balancing, health, retries, timeouts, breaking."""
