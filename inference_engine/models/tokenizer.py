"""The project's own tokenizer: a byte-level BPE trained on the shipped corpus.

Training is deterministic (the `tokenizers` BPE trainer breaks ties by pair id and
the corpus is read in sorted file order), so the same corpus and library versions
give the same `tokenizer.json` bytes. Byte-level means every UTF-8 string
round-trips; no normalizer runs, so the text is never rewritten. The
pre-tokenizer splits like Qwen's (letters, single digits, punctuation runs,
newlines) before the byte mapping.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from inference_engine.models.presets import TOKENIZER_VOCAB_SIZE

ENDOFTEXT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
THINK_START = "<think>"
THINK_END = "</think>"
# Appended after the learned vocabulary, as Qwen does, so they hold the top ids.
SPECIAL_TOKENS = (ENDOFTEXT, IM_START, IM_END, THINK_START, THINK_END)
MODEL_MAX_LENGTH = 32768

_PACKAGE_DIR = Path(__file__).resolve().parent
CORPUS_DIR = _PACKAGE_DIR / "corpus"
CHAT_TEMPLATE_PATH = _PACKAGE_DIR / "chat_template.jinja"
_SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def corpus_files(corpus_dir: Path = CORPUS_DIR) -> list[Path]:
    """The corpus files in the fixed (sorted) order training reads them.

    Raises:
        FileNotFoundError: the corpus directory holds no `*.txt` file.
    """
    files = sorted(corpus_dir.glob("*.txt"))
    if not files:
        raise FileNotFoundError(f"no tokenizer corpus (*.txt) under {corpus_dir}")
    return files


def corpus_digest(corpus_dir: Path = CORPUS_DIR) -> str:
    """sha256 over the corpus files' names and bytes, and the chat template's bytes."""
    digest = hashlib.sha256()
    for path in [*corpus_files(corpus_dir), CHAT_TEMPLATE_PATH]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def train_bpe(corpus_dir: Path = CORPUS_DIR, vocab_size: int = TOKENIZER_VOCAB_SIZE) -> Tokenizer:
    """Train the byte-level BPE on the corpus; `vocab_size` counts the special tokens.

    Raises:
        FileNotFoundError: the corpus is missing.
        ValueError: the corpus is too small to learn `vocab_size` ids.
    """
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_SPLIT_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(SPECIAL_TOKENS),
        min_frequency=2,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    texts = [path.read_text(encoding="utf-8") for path in corpus_files(corpus_dir)]
    tokenizer.train_from_iterator(texts, trainer=trainer)
    tokenizer.add_special_tokens(list(SPECIAL_TOKENS))
    if tokenizer.get_vocab_size() != vocab_size:
        raise ValueError(
            f"corpus under {corpus_dir} learned {tokenizer.get_vocab_size()} ids, "
            f"expected {vocab_size}; add text to the corpus"
        )
    return tokenizer


def build_tokenizer(corpus_dir: Path = CORPUS_DIR) -> PreTrainedTokenizerFast:
    """The transformers tokenizer: trained BPE, special tokens and the chat template.

    Raises:
        FileNotFoundError: the corpus is missing.
        ValueError: the corpus is too small.
    """
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=train_bpe(corpus_dir),
        eos_token=IM_END,
        pad_token=ENDOFTEXT,
        extra_special_tokens=[IM_START, THINK_START, THINK_END],
        clean_up_tokenization_spaces=False,
        model_max_length=MODEL_MAX_LENGTH,
    )
    tokenizer.chat_template = CHAT_TEMPLATE_PATH.read_text(encoding="utf-8")
    return tokenizer


def special_token_ids(tokenizer: PreTrainedTokenizerFast) -> dict[str, int]:
    """The id of each special token, by its text."""
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS}
    return {token: int(value) for token, value in ids.items() if isinstance(value, int)}
