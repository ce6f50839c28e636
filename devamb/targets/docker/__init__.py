"""Docker targets: profile spec, engine link, container resolution, endpoints, launching.

Everything here talks to the Docker engine through the `docker` SDK; its calls block, so callers
on the event loop run them with `asyncio.to_thread`.
"""
