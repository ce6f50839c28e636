"""Byte plumbing: the HTTP front end, requests and responses, upstream connections, forwarding,
headers, WebSocket relay, and how a connection is cut. It knows no target, fault, policy,
service or engine."""
