"""Sessions: the store, the per-session coordinator and the token generator."""
