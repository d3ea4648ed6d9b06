"""Generated gRPC stubs of schemas/ulasan.proto (``ulasan gateway protos``); do not edit."""
