"""Listeners and the byte paths: HTTP reverse proxy (with WebSocket) and TCP relay."""
