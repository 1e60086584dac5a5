"""A model from the HF cache as GGUF files, made by the converter the llama-cpp-python sdist ships.

The installed llama-cpp-python wheel carries no converter; its sdist does
(``vendor/llama.cpp/convert_hf_to_gguf.py`` with its ``conversion`` package and ``gguf-py``).
`ensure_gguf` extracts those once per sdist into the peer cache, runs them in a child process
(this interpreter: it has torch and transformers) on the model's snapshot directory, and keeps
the result keyed by model, revision, converter version and type::

    CACHE/converter/llama_cpp_python-0.3.36/{convert_hf_to_gguf.py, conversion/, gguf-py/}
    CACHE/gguf/kakeya--qwen3-0.6b-shaped/<revision>/0.3.36/BF16.gguf (+ .json facts, .log)

The converter refuses a BPE tokenizer whose pre-tokenizer it does not know: it hashes the
token ids of a fixed text (``chkhsh``) and looks the hash up in a generated list. The embedded
presets' tokenizer is the project's own, so it is not in that list. Its pre-tokenizer is a
Split on exactly Qwen2's regex followed by byte-level BPE, so `KNOWN_PRE_TOKENIZERS` maps its
hash to llama.cpp's ``qwen2``. The child (`main`) applies the mapping by wrapping the
converter's ``TextModel.get_vocab_base_pre`` in its own process before running the script;
nothing on disk is edited, and any other hash still goes to the converter's own list.

`main` imports neither torch nor the converter until it runs in the child.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import re
import runpy
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path
from typing import Any

__all__ = [
    "CONVERT_TIMEOUT_S",
    "GGUF_TYPES",
    "KNOWN_PRE_TOKENIZERS",
    "SDIST_ENV",
    "ConverterUnavailable",
    "GgufFile",
    "default_cache_dir",
    "ensure_gguf",
    "extract_converter",
    "find_sdist",
    "main",
    "patch_pre_tokenizer",
    "sdist_version",
]

# The GGUF types measured, and the converter's --outtype for each.
GGUF_TYPES = {"BF16": "bf16", "F16": "f16", "Q8_0": "q8_0"}
CONVERT_TIMEOUT_S = 1800.0
SDIST_ENV = "KAKEYA_LLAMA_SDIST"  # where the sdist lies, when --peer-sdist is not given
SCRIPT = "convert_hf_to_gguf.py"
# What the converter needs from the sdist (below `<top>/vendor/llama.cpp/`).
_MEMBERS = (SCRIPT, "conversion/", "gguf-py/", "LICENSE")
_VENDOR = "vendor/llama.cpp/"
_SDIST_NAME = re.compile(r"llama_cpp_python-(\d[\w.+-]*)\.tar\.gz$")
# The converter's check text starts so (its `chktxt`, a constant of get_vocab_base_pre).
_CHKTXT_PREFIX = "\n \n\n \n\n\n \t"
_LOG_TAIL_CHARS = 2000

# chkhsh -> llama.cpp pre-tokenizer. The embedded presets' tokenizer (both presets share
# it): Split on Qwen2's regex, then byte-level BPE, so qwen2.
# A change to the project's tokenizer changes its hash: tests/.../test_gguf_convert.py
# hashes the cached tokenizer and fails until the new hash is listed here.
KNOWN_PRE_TOKENIZERS = {
    "abc2e1a94dc259736f8a62af146e381aeaa59c1a0f6679c3b7c73037017bf917": "qwen2",
}


class ConverterUnavailable(RuntimeError):
    """No sdist to take the converter from, or the conversion failed (the message says which)."""


@dataclass(frozen=True)
class GgufFile:
    """One converted model file and how it came to be.

    Attributes:
        gguf_type: BF16, F16 or Q8_0.
        path: The .gguf file.
        size_bytes: Its size.
        convert_s: Seconds the conversion took (when it ran: see `cached`).
        cached: True when an earlier run's file was reused.
        facts: What the child recorded: the tokenizer's chkhsh, the pre-tokenizer it got and
            whether the mapping above supplied it.
    """

    gguf_type: str
    path: Path
    size_bytes: int
    convert_s: float
    cached: bool
    facts: dict[str, Any]


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/kakeya/peers`` (``~/.cache/kakeya/peers`` without it)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kakeya" / "peers"


def sdist_version(sdist: Path) -> str:
    """``0.3.36`` from ``llama_cpp_python-0.3.36.tar.gz``.

    Raises:
        ConverterUnavailable: the name is not a llama-cpp-python sdist's.
    """
    match = _SDIST_NAME.search(sdist.name)
    if match is None:
        raise ConverterUnavailable(f"{sdist} is not named like llama_cpp_python-VERSION.tar.gz")
    return match.group(1)


def find_sdist(explicit: str, cache_dir: Path, version: str | None = None) -> Path:
    """The llama-cpp-python sdist: `explicit`, else ``$KAKEYA_LLAMA_SDIST``, else one in
    `cache_dir` (the version installed, when given, else the newest name).

    Raises:
        ConverterUnavailable: none is found (the message says how to get one).
    """
    for given in (explicit, os.environ.get(SDIST_ENV, "")):
        if given:
            path = Path(given).expanduser()
            if not path.is_file():
                raise ConverterUnavailable(f"llama-cpp-python sdist {path} does not exist")
            return path
    wanted = f"llama_cpp_python-{version}.tar.gz" if version else "llama_cpp_python-*.tar.gz"
    found = sorted(cache_dir.glob(wanted)) if cache_dir.is_dir() else []
    if found:
        return found[-1]
    pin = f"=={version}" if version else ""
    raise ConverterUnavailable(
        "no llama-cpp-python sdist for the GGUF converter: pass --peer-sdist PATH, set "
        f"{SDIST_ENV}, or put it into {cache_dir} "
        f"(pip download --no-deps --no-binary :all: llama-cpp-python{pin} -d {cache_dir})"
    )


def extract_converter(sdist: Path, cache_dir: Path) -> Path:
    """The converter's directory under `cache_dir`, extracted from `sdist` on first use.

    Raises:
        ConverterUnavailable: the sdist is unreadable or lacks the converter.
    """
    target = cache_dir / "converter" / sdist.name.removesuffix(".tar.gz")
    if (target / SCRIPT).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=target.parent))
    try:
        _extract_members(sdist, staging)
        if not (staging / SCRIPT).is_file():
            raise ConverterUnavailable(f"{sdist} holds no {_VENDOR}{SCRIPT}")
        with contextlib.suppress(OSError):  # another run got there first: keep its copy
            staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _extract_members(sdist: Path, into: Path) -> None:
    try:
        with tarfile.open(sdist, "r:gz") as archive:
            for member in archive.getmembers():
                _, _, inner = member.name.partition("/")  # drop `llama_cpp_python-X/`
                if not inner.startswith(_VENDOR):
                    continue
                relative = inner.removeprefix(_VENDOR)
                if relative.startswith(_MEMBERS) and (member.isfile() or member.isdir()):
                    member.name = relative
                    archive.extract(member, into, filter="data")
    except (OSError, tarfile.TarError) as error:
        raise ConverterUnavailable(f"cannot read {sdist}: {error}") from error


def snapshot_dir(model: str, revision: str) -> Path:
    """The model's snapshot directory in the HF cache (offline: never downloads)."""
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(model, revision=revision or None, local_files_only=True))


def ensure_gguf(
    model: str, revision: str, gguf_type: str, converter: Path, cache_dir: Path
) -> GgufFile:
    """The model as a `gguf_type` GGUF file, converted now or reused from an earlier run.

    Raises:
        ConverterUnavailable: the conversion failed (the message ends with the log's tail).
    """
    folder = cache_dir / "gguf" / model.replace("/", "--") / (revision or "main")
    path = folder / converter.name.removeprefix("llama_cpp_python-") / f"{gguf_type}.gguf"
    facts_path = path.with_suffix(".json")
    if path.is_file() and facts_path.is_file():
        facts = json.loads(facts_path.read_text(encoding="utf-8"))
        return GgufFile(gguf_type, path, path.stat().st_size, facts["convert_s"], True, facts)
    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    partial = path.with_suffix(".gguf.partial")
    snapshot = snapshot_dir(model, revision)
    _run_converter(converter, snapshot, gguf_type, partial, facts_path, path.with_suffix(".log"))
    partial.replace(path)
    facts = json.loads(facts_path.read_text(encoding="utf-8"))
    facts["convert_s"] = time.perf_counter() - started
    facts_path.write_text(json.dumps(facts, indent=2) + "\n", encoding="utf-8")
    return GgufFile(gguf_type, path, path.stat().st_size, facts["convert_s"], False, facts)


def _run_converter(
    converter: Path, snapshot: Path, gguf_type: str, outfile: Path, facts: Path, log: Path
) -> None:
    command = [
        sys.executable,
        "-m",
        "kakeya_evidence.bench.peers.gguf_convert",
        "--converter",
        str(converter),
        "--facts",
        str(facts),
        "--",
        str(snapshot),
        "--outfile",
        str(outfile),
        "--outtype",
        GGUF_TYPES[gguf_type],
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    with log.open("w", encoding="utf-8") as sink:
        try:
            done = subprocess.run(
                command, stdout=sink, stderr=subprocess.STDOUT, env=env, timeout=CONVERT_TIMEOUT_S
            )
        except subprocess.TimeoutExpired as error:
            message = f"{gguf_type} conversion timed out ({error.timeout}s)"
            raise ConverterUnavailable(message) from error
    if done.returncode != 0 or not outfile.is_file():
        tail = log.read_text(encoding="utf-8", errors="replace")[-_LOG_TAIL_CHARS:]
        raise ConverterUnavailable(
            f"{gguf_type} conversion failed (exit {done.returncode}): {tail.strip()}"
        )


# -- the child: the converter with the pre-tokenizer mapping -----------------------------


def patch_pre_tokenizer(text_model: Any, known: dict[str, str]) -> dict[str, Any]:
    """Wrap `text_model.get_vocab_base_pre` so that a hash in `known` gets its mapped name.

    Returns the dict the wrapper fills when the converter calls it: ``chkhsh``,
    ``pre_tokenizer``, ``mapped`` (True when `known` supplied the name).

    Raises:
        ConverterUnavailable: the converter's method has no check text (its shape changed).
    """
    original: Callable[[Any, Any], str] = text_model.get_vocab_base_pre
    chktxt = _check_text(original)
    seen: dict[str, Any] = {}

    def get_vocab_base_pre(self: Any, tokenizer: Any) -> str:
        chkhsh = sha256(str(tokenizer.encode(chktxt)).encode()).hexdigest()
        mapped = known.get(chkhsh)
        name = mapped if mapped is not None else original(self, tokenizer)
        seen.update(chkhsh=chkhsh, pre_tokenizer=name, mapped=mapped is not None)
        return name

    text_model.get_vocab_base_pre = get_vocab_base_pre
    return seen


def _check_text(method: Callable[..., Any]) -> str:
    constants = getattr(getattr(method, "__code__", None), "co_consts", ())
    for constant in constants:
        if isinstance(constant, str) and constant.startswith(_CHKTXT_PREFIX):
            return constant
    raise ConverterUnavailable("the converter's get_vocab_base_pre has no check text")


def main(argv: list[str] | None = None) -> int:
    """The child: ``--converter DIR --facts FILE -- <convert_hf_to_gguf.py arguments>``."""
    parser = argparse.ArgumentParser(prog="python -m kakeya_evidence.bench.peers.gguf_convert")
    parser.add_argument("--converter", required=True, help="the extracted converter directory")
    parser.add_argument("--facts", required=True, help="JSON file for what the run recorded")
    parser.add_argument("arguments", nargs=argparse.REMAINDER, help="the converter's own")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    root = Path(args.converter)
    rest = args.arguments[1:] if args.arguments[:1] == ["--"] else args.arguments
    sys.path[0:0] = [str(root / "gguf-py"), str(root)]  # the sdist's gguf, not another one
    base = importlib.import_module("conversion.base")  # the converter's package, from `root`
    seen = patch_pre_tokenizer(base.TextModel, KNOWN_PRE_TOKENIZERS)
    script = root / SCRIPT
    sys.argv = [str(script), *rest]
    runpy.run_path(str(script), run_name="__main__")
    facts = {"converter": root.name, "arguments": rest, **seen}
    Path(args.facts).write_text(json.dumps(facts, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
