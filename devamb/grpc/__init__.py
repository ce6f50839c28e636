"""gRPC understood: status codes, message framing, call paths, schema-less and schema'd
decoding of protobuf messages. No I/O here beyond what `reflection` asks an upstream."""

SCHEMA_KEYS = ("proto", "descriptor_set")  # a service's schema keys (read by grpc/profile.py)
