# The README's two commands: `make evidence` (main job) and `make test`.
# Both set up everything they need into .venv from this repository's own files.

VENV ?= .venv
PY := $(VENV)/bin/python
MODEL ?= kakeya/tiny-qwen3
DEVICE ?= auto
OUTPUT ?= evidence
PYTEST_ARGS ?=

.PHONY: setup evidence test lint proto

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/bootstrap.sh
	bash scripts/bootstrap.sh $(VENV)
	touch $@

# The benchmark writes $(OUTPUT)/bench.json first; `run` folds it into the report.
evidence: setup
	$(VENV)/bin/kakeya-runtime prewarm --model $(MODEL)
	HF_HUB_OFFLINE=1 $(VENV)/bin/kakeya-evidence bench --model $(MODEL) --device $(DEVICE) --output $(OUTPUT) --repeats 2 --quiet
	HF_HUB_OFFLINE=1 $(VENV)/bin/kakeya-evidence run --model $(MODEL) --device $(DEVICE) --output $(OUTPUT)

test: setup
	$(VENV)/bin/kakeya-runtime prewarm --model kakeya/tiny-qwen3
	$(VENV)/bin/kakeya-runtime prewarm --model kakeya/qwen3-0.6b-shaped  # invariance on the real shape
	HF_HUB_OFFLINE=1 $(PY) -m pytest $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy --strict kakeya/
	$(VENV)/bin/mypy inference_engine kakeya kakeya_evidence
