"""gRPC understood: status codes, message framing, call paths, schema-less and schema'd
decoding of protobuf messages. No I/O here beyond what `reflection` asks an upstream."""
