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

.PHONY: setup evidence test lint proto lab lock

setup: $(VENV)/.installed

# Installs this platform's lock (locks/*.txt, hash-checked) and registers the kernel "kakeya".
$(VENV)/.installed: pyproject.toml scripts/bootstrap.sh $(wildcard locks/*.txt)
	bash scripts/bootstrap.sh $(VENV)
	touch $@

# JupyterLab on notebooks/ with the project's kernel, offline, on loopback (LAB_ARGS: more flags).
LAB_ARGS ?=
lab: setup
	HF_HUB_OFFLINE=1 $(VENV)/bin/jupyter-lab --notebook-dir=notebooks --ServerApp.ip=127.0.0.1 \
		--MappingKernelManager.default_kernel_name=kakeya \
		$(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

# Recompile locks/linux-cpu.txt and locks/macos-arm64.txt from pyproject.toml (uv, the index).
lock: setup
	$(PY) -m kakeya_evidence.reproduce.locks

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
