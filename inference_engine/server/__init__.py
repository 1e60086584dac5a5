"""Serving surfaces, adapters only: gRPC RuntimeService, `serve`, auth, the error map, config.

The deprecated HTTP+SSE shim lives in `http_shim/`; removing it at its sunset is deleting
that folder and the lines in `serve.py` that start it.
"""
