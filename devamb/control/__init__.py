"""The engine's control surface: the EngineControl protocol, events, bus, API server and client."""
