"""Build an embedded preset into a directory: tokenizer, config, seeded weights.

The weights are drawn from a seeded Mersenne-Twister stream of integers and
mapped to a uniform distribution with plain float32 arithmetic (one correctly
rounded multiply and add per element), so the bytes do not depend on the
processor's vector units or math library: same seed and library versions, same
bytes. The model is created on the meta device and materialised directly in the
save dtype, so the 0.6B-shaped preset never holds a float32 copy.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator
from pathlib import Path

import safetensors
import tokenizers
import torch
import transformers
from transformers import GenerationConfig, Qwen3Config, Qwen3ForCausalLM
from transformers.utils import logging as hf_logging

from inference_engine.models.presets import Preset
from inference_engine.models.tokenizer import (
    ENDOFTEXT,
    IM_END,
    build_tokenizer,
    corpus_digest,
    special_token_ids,
)

BUILD_RECORD = "kakeya_build.json"
# Bump when the build procedure changes in a way that changes the bytes.
BUILDER_VERSION = 1
_UNIFORM_BITS = 24
_CHUNK_ELEMENTS = 1 << 24


def build_record(preset: Preset) -> dict[str, object]:
    """Everything that decides the built bytes; stored in the snapshot, compared on prewarm."""
    return {
        "builder_version": BUILDER_VERSION,
        "preset": preset.recipe(),
        "corpus_sha256": corpus_digest(),
        "versions": {
            # Without the local build tag (+cpu, +cu130): the bytes do not depend on it.
            "torch": torch.__version__.split("+")[0],
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
            "safetensors": safetensors.__version__,
        },
    }


def build_preset(preset: Preset, out_dir: Path) -> None:
    """Write the preset's tokenizer, config, generation config and weights into `out_dir`.

    Raises:
        FileNotFoundError: the tokenizer corpus is missing.
        ValueError: the corpus is too small for the tokenizer's vocabulary.
    """
    tokenizer = build_tokenizer()
    ids = special_token_ids(tokenizer)
    config = Qwen3Config(
        **preset.config_kwargs(),
        architectures=["Qwen3ForCausalLM"],
        bos_token_id=ids[ENDOFTEXT],
        eos_token_id=ids[IM_END],
        pad_token_id=ids[ENDOFTEXT],
    )
    model = create_model(config, preset)
    model.generation_config = GenerationConfig(
        bos_token_id=ids[ENDOFTEXT],
        eos_token_id=[ids[IM_END], ids[ENDOFTEXT]],
        pad_token_id=ids[ENDOFTEXT],
    )
    with quiet_progress_bars():
        model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    record = json.dumps(build_record(preset), indent=2, sort_keys=True) + "\n"
    (out_dir / BUILD_RECORD).write_text(record, encoding="utf-8")
    make_readable(out_dir)


@contextlib.contextmanager
def quiet_progress_bars() -> Iterator[None]:
    """Silence transformers' progress bars (the prewarm command prints one line)."""
    was_disabled = hf_logging.is_progress_bar_enabled() is False
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if not was_disabled:
            hf_logging.enable_progress_bar()


def make_readable(out_dir: Path) -> None:
    """Give the build the modes an ordinary download has (temp folders and writers use 0600)."""
    out_dir.chmod(0o755)
    for path in out_dir.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)


def create_model(config: Qwen3Config, preset: Preset) -> Qwen3ForCausalLM:
    """A Qwen3 model in the preset's save dtype with seeded weights."""
    dtype = getattr(torch, preset.save_dtype)
    with torch.device("meta"):
        model = Qwen3ForCausalLM(config)
    # transformers wraps `to` in a decorator whose type hides `self`
    model = model.to(dtype=dtype).to_empty(device="cpu")  # type: ignore[call-arg]
    # to_empty gives every module its own storage; tie lm_head back to the embedding.
    model.tie_weights()
    # Non-persistent buffers (rotary inverse frequencies) were never materialised.
    model.model.rotary_emb = type(model.model.rotary_emb)(config=config)
    init_weights(model, preset)
    return model.eval()


def init_weights(model: torch.nn.Module, preset: Preset) -> None:
    """Fill every parameter, in sorted name order, from one seeded generator (see `Preset`)."""
    generator = torch.Generator(device="cpu").manual_seed(preset.seed)
    final_norm = preset.logit_std / (math.sqrt(preset.hidden_size) * preset.embed_std)
    with torch.no_grad():
        for name, param in sorted(model.named_parameters()):
            if name == "model.norm.weight":
                param.fill_(final_norm)
            elif name.endswith(("q_norm.weight", "k_norm.weight")):
                param.fill_(preset.qk_norm_weight)
            elif name.endswith("norm.weight"):
                param.fill_(1.0)
            elif name.endswith("embed_tokens.weight"):
                fill_uniform(param, preset.embed_std, generator)
            else:
                fill_uniform(param, 1.0 / math.sqrt(param.shape[-1]), generator)


def fill_uniform(tensor: torch.Tensor, std: float, generator: torch.Generator) -> None:
    """Fill `tensor` with zero-mean uniform values of standard deviation `std`, chunk by chunk.

    Integers from the generator become (k + 0.5) / 2**24 * 2a - a, with a = std * sqrt(3),
    computed in float32 and rounded once to the tensor's dtype.
    """
    half_width = std * math.sqrt(3.0)
    scale = 2.0 * half_width / float(1 << _UNIFORM_BITS)
    offset = 0.5 * scale - half_width
    flat = tensor.view(-1)
    for start in range(0, flat.numel(), _CHUNK_ELEMENTS):
        count = min(_CHUNK_ELEMENTS, flat.numel() - start)
        draws = torch.randint(
            0, 1 << _UNIFORM_BITS, (count,), generator=generator, dtype=torch.int32
        )
        values = draws.to(torch.float32).mul_(scale).add_(offset)
        flat[start : start + count].copy_(values)
