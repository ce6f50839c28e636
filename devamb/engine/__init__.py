"""The engine: lifecycle and reload, runtime state, the runner, metrics, and profile assembly
(the one place that knows every target and fault kind)."""
