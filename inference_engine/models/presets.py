"""The embedded model presets the project builds itself.

Both are Qwen3-architecture causal LMs with seeded random weights and the
project's own byte-level BPE tokenizer:

- `kakeya/tiny-qwen3`: a few MB, the default model of the tests and the evidence run.
- `kakeya/qwen3-0.6b-shaped`: exactly Qwen3-0.6B's shape, for realistic performance figures.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

TINY_MODEL_ID = "kakeya/tiny-qwen3"
SHAPED_MODEL_ID = "kakeya/qwen3-0.6b-shaped"
# The tokenizer has exactly this many ids; the tiny model's vocabulary matches it.
TOKENIZER_VOCAB_SIZE = 4096


@dataclass(frozen=True)
class Preset:
    """How to build one embedded model: a Qwen3 shape, a seed, a save dtype and an init recipe.

    The init keeps greedy decoding robust and history-dependent. The embedding is
    small (`embed_std`), so the residual stream is dominated by what the attention
    and MLP blocks add (which depends on the context) rather than by the current
    token; the final norm weight then rescales so that, with tied embeddings, the
    logits spread with a standard deviation of about `logit_std`, putting the typical
    top-1/top-2 gap orders of magnitude above float noise. `qk_norm_weight` sharpens
    attention (scores scale with its square). Matrices get a variance-preserving
    `1 / sqrt(fan_in)` init.
    """

    model_id: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    max_position_embeddings: int
    rope_theta: float
    rms_norm_eps: float
    tie_word_embeddings: bool
    seed: int
    save_dtype: str
    embed_std: float = 0.1
    logit_std: float = 16.0
    qk_norm_weight: float = 2.0

    def config_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `transformers.Qwen3Config` (token ids come from the tokenizer)."""
        fields = asdict(self)
        build_only = ("model_id", "seed", "save_dtype", "embed_std", "logit_std", "qk_norm_weight")
        for key in (*build_only, "rope_theta"):
            fields.pop(key)
        fields["rope_parameters"] = {"rope_type": "default", "rope_theta": self.rope_theta}
        fields["dtype"] = self.save_dtype
        return fields

    def recipe(self) -> dict[str, object]:
        """Everything that decides the built bytes, for the build record."""
        return asdict(self)


PRESETS: dict[str, Preset] = {
    TINY_MODEL_ID: Preset(
        model_id=TINY_MODEL_ID,
        vocab_size=TOKENIZER_VOCAB_SIZE,
        hidden_size=128,
        intermediate_size=384,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=32,
        max_position_embeddings=32768,
        rope_theta=1_000_000.0,
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
        seed=20250617,
        save_dtype="float32",
    ),
    SHAPED_MODEL_ID: Preset(
        model_id=SHAPED_MODEL_ID,
        vocab_size=151936,
        hidden_size=1024,
        intermediate_size=3072,
        num_hidden_layers=28,
        num_attention_heads=16,
        num_key_value_heads=8,
        head_dim=128,
        max_position_embeddings=40960,
        rope_theta=1_000_000.0,
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
        seed=20250618,
        save_dtype="bfloat16",
    ),
}


def find_preset(model_id: str) -> Preset | None:
    """The preset for `model_id`, or None when it is an ordinary Hub model."""
    return PRESETS.get(model_id)
