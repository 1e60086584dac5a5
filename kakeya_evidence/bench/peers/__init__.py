"""Peer engines measured beside the runtime (``kakeya-evidence bench --peer llama.cpp``).

`llamacpp` is the bench's side of llama.cpp (through llama-cpp-python, the ``peer-llama``
extra): it converts the model to GGUF (`gguf_convert`), runs one long-lived worker process
per GGUF type (`llama_worker`) and turns their samples into bench.json's ``peers`` section.
"""

from __future__ import annotations

__all__ = ["LLAMA_CPP", "PEER_NAMES"]

LLAMA_CPP = "llama.cpp"
PEER_NAMES = (LLAMA_CPP,)
