"""Serving surfaces: the engine facade, gRPC RuntimeService, the deprecated HTTP shim, `serve`."""
