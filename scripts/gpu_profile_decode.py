"""Where a decode step spends its time on CUDA: GPU kernel time against wall time.

Runs N greedy decode steps of the runtime on CUDA under torch.profiler and prints, per
step, the wall time, the summed CUDA kernel time, the kernel count and the top kernels.
Usage: python3 scripts/gpu_profile_decode.py [MODEL_ID] [STEPS]
"""

from __future__ import annotations

import json
import sys
import time

from inference_engine.config import ModelConfig, RuntimeConfig
from inference_engine.engine import Engine
from inference_engine.models.presets import SHAPED_MODEL_ID
from inference_engine.session.events import GenerationParams


def main() -> int:
    import torch  # after inference_engine, which sets the OpenMP spin before torch loads
    from torch.profiler import ProfilerActivity, profile

    model_id = sys.argv[1] if len(sys.argv) > 1 else SHAPED_MODEL_ID
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 64
    engine = Engine.start(RuntimeConfig(model=ModelConfig(model_id, "cuda", "bfloat16")))
    sid = engine.create_session().session_id
    engine.append(sid, list(range(10, 138)))
    list(engine.generate(sid, GenerationParams(max_tokens=8)))  # warm-up
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        started = time.perf_counter()
        list(engine.generate(sid, GenerationParams(max_tokens=steps + 1)))
        torch.cuda.synchronize()
        wall_s = time.perf_counter() - started
    kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    gpu_us = sum(e.device_time for e in kernels)
    summary = {
        "steps": steps,
        "wall_ms_per_step": 1e3 * wall_s / steps,
        "gpu_kernel_ms_per_step": gpu_us / 1e3 / steps,
        "kernels_per_step": len(kernels) / steps,
    }
    print(json.dumps(summary, indent=1))
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=12))
    engine.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
