"""Model presets, the project tokenizer, HF-cache install (prewarm) and the one loading path."""
