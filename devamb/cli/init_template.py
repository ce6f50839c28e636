"""The commented profile `devamb init` writes."""

TEMPLATE = """\
# devamb profile: one service per dependency of your app. Reference: docs/profile.md.
version: 1
name: {name}
services:
  api:                             # your app talks to http://127.0.0.1:9001 instead of the API
    listen: 9001                   # a port, or HOST:PORT (the host defaults to 127.0.0.1)
    target: local                  # the active target at start; switch live with `devamb switch`
    targets:
      local: http://127.0.0.1:8001 # a bare string is a URL target
      debug: echo                  # built-in: answers with what it received
      # staging:
      #   url: https://api.staging.example.com
      #   headers: {{Authorization: "Bearer ${{API_TOKEN}}"}}  # ${{VAR}}: environment or .env
    timeout: 30s                   # connect + wait for response headers; then 504
  # cache:
  #   listen: 6380
  #   protocol: tcp
  #   target: local
  #   targets:
  #     local: tcp://127.0.0.1:6379
"""
