"""The one loading path for every model the runtime serves.

The model and tokenizer come from the Hugging Face cache through transformers'
own `from_pretrained`, never from the network: the embedded presets and
Qwen/Qwen3-0.6B take exactly the same route.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from inference_engine.config import ModelConfig
from inference_engine.device import resolve_device, resolve_dtype
from inference_engine.errors import ModelNotCached
from inference_engine.models import hf_cache
from inference_engine.models.build import quiet_progress_bars
from inference_engine.models.prewarm import CachedModel, check_model

ATTN_IMPLEMENTATION = "sdpa"


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to serve: in eval mode, on `device`, in `dtype`, with its tokenizer."""

    model: torch.nn.Module
    tokenizer: PreTrainedTokenizerBase
    model_id: str
    revision: str
    device: torch.device
    dtype: torch.dtype
    vocab_size: int
    load_s: float


def load_model(config: ModelConfig, cache_dir: Path | None = None) -> LoadedModel:
    """Load `config.model_id` from the HF cache onto the resolved device and dtype.

    Args:
        config: model id, device (`auto`, `cpu`, `cuda[:N]`, `mps`) and dtype (`auto`, ...).
        cache_dir: the hub cache folder; None means `huggingface_hub.constants.HF_HUB_CACHE`.

    Raises:
        InvalidArgument: the device or dtype is unknown or unavailable, or the id is invalid.
        ModelNotCached: the model is not in the cache (the message names the prewarm command).
    """
    device = resolve_device(config.device)
    dtype = resolve_dtype(config.dtype, device)
    started = time.perf_counter()
    cached = check_model(config.model_id, cache_dir)
    model = read_model(cached, dtype, hf_cache.resolve_cache_dir(cache_dir)).to(device).eval()
    tokenizer = read_tokenizer(cached, hf_cache.resolve_cache_dir(cache_dir))
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        model_id=config.model_id,
        revision=cached.revision,
        device=device,
        dtype=dtype,
        vocab_size=_vocab_size(model),
        load_s=time.perf_counter() - started,
    )


def read_model(cached: CachedModel, dtype: torch.dtype, cache: Path) -> torch.nn.Module:
    """`AutoModelForCausalLM.from_pretrained` on the cached revision, local files only.

    Raises:
        ModelNotCached: transformers could not read the cached files.
    """
    try:
        with quiet_progress_bars():  # servers and suites log one line, not a progress bar
            return AutoModelForCausalLM.from_pretrained(
                cached.model_id,
                revision=cached.revision,
                cache_dir=cache,
                local_files_only=True,
                dtype=dtype,
                attn_implementation=ATTN_IMPLEMENTATION,
            )
    except (OSError, ValueError) as exc:
        raise ModelNotCached(cached.model_id, f"cannot load weights: {exc}") from exc


def read_tokenizer(cached: CachedModel, cache: Path) -> PreTrainedTokenizerBase:
    """`AutoTokenizer.from_pretrained` on the cached revision, local files only.

    Raises:
        ModelNotCached: transformers could not read the cached tokenizer.
    """
    try:
        return AutoTokenizer.from_pretrained(
            cached.model_id, revision=cached.revision, cache_dir=cache, local_files_only=True
        )
    except (OSError, ValueError) as exc:
        raise ModelNotCached(cached.model_id, f"cannot load tokenizer: {exc}") from exc


def _vocab_size(model: torch.nn.Module) -> int:
    config: Any = model.config
    return int(config.get_text_config().vocab_size)
