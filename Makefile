# The README's two commands: `make evidence` (main job) and `make test`.
# Both set up everything they need into .venv from this repository's own files.

VENV ?= .venv
PY := $(VENV)/bin/python
# empty: the CLIs' own defaults (the embedded model, ./evidence), defined once in the code
MODEL ?=
DEVICE ?= auto
OUTPUT ?=
PYTEST_ARGS ?=
MODEL_FLAG = $(if $(MODEL),--model $(MODEL))
OUTPUT_FLAG = $(if $(OUTPUT),--output $(OUTPUT))

.PHONY: setup evidence test lint proto

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/bootstrap.sh
	bash scripts/bootstrap.sh $(VENV)
	touch $@

# The benchmark writes $(OUTPUT)/bench.json first; `run` folds it into the report.
evidence: setup
	$(VENV)/bin/kakeya-runtime prewarm $(MODEL_FLAG)
	HF_HUB_OFFLINE=1 $(VENV)/bin/kakeya-evidence bench $(MODEL_FLAG) --device $(DEVICE) $(OUTPUT_FLAG) --repeats 2 --quiet
	HF_HUB_OFFLINE=1 $(VENV)/bin/kakeya-evidence run $(MODEL_FLAG) --device $(DEVICE) $(OUTPUT_FLAG)

test: setup
	$(VENV)/bin/kakeya-runtime prewarm
	HF_HUB_OFFLINE=1 $(PY) -m pytest $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy --strict kakeya/
	$(VENV)/bin/mypy inference_engine kakeya kakeya_evidence
