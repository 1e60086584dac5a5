"""``kakeya-evidence bench``: the runtime measured beside plain transformers (see `run`)."""
