#!/usr/bin/env bash
# The CUDA evidence for docs/performance.md, as one script: build the 0.6B-shaped preset,
# run the decode-step and batching tests on the GPU (batch invariance alone, amid others,
# joining late), then the side-by-side benchmark in bf16 with the concurrency sweep.
# Usage: scripts/gpu_bench.sh OUTPUT_DIR [extra bench flags]
set -euo pipefail
out="${1:?output directory}"
shift
mkdir -p "$out"
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__, torch.cuda.get_device_name(0))"
python3 -m inference_engine.cli prewarm --model kakeya/qwen3-0.6b-shaped
python3 -m pytest -q -p no:cacheprovider -o filterwarnings= -o addopts= \
  tests/inference_engine/session/test_decode_step.py tests/inference_engine/test_kv_cache.py \
  tests/inference_engine/test_device.py 2>&1 | tee "$out/cuda_tests.log"
KAKEYA_DEVICE=cuda python3 -m pytest -q -p no:cacheprovider -o filterwarnings= -o addopts= \
  tests/integration/test_batching.py 2>&1 | tee -a "$out/cuda_tests.log"
python3 -m kakeya_evidence.cli bench --model kakeya/qwen3-0.6b-shaped --device cuda \
  --dtype bfloat16 --concurrency 1,2,4,8,16,32 --output "$out" "$@" 2>&1 | tee "$out/bench.log"
