"""A Toxiproxy-compatible HTTP API over the engine (`devamb up --toxiproxy-api`)."""
