"""`kakeya-evidence bench --peer llama.cpp`: flags, the converter's pre-tokenizer mapping, the
absent extra (rows say "not installed", the bench still runs) and the present one (slow:
real conversion of the tiny model, real llama.cpp workers)."""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import subprocess
import sys
import venv
from hashlib import sha256
from pathlib import Path

import pytest

from kakeya_evidence.bench import run as bench
from kakeya_evidence.bench.peers import gguf_convert
from kakeya_evidence.bench.peers.llamacpp import (
    LlamaCppConfig,
    LlamaCppPeer,
    LlamaWorker,
    PeerStatus,
    compare_logits,
    probe_llama_cpp,
    variant_name,
)
from kakeya_evidence.errors import ParameterError

TINY = "kakeya/tiny-qwen3"
# a small real run: 4 greedy tokens after an 8-token prompt, repeats rotated twice
TINY_ARGS = ["--model", TINY, "--device", "cpu", "--turns", "2", "--append", "8"]
TINY_ARGS += ["--max-tokens", "4", "--prompt-tokens", "8", "--repeats", "2", "--warmup", "0"]
TINY_ARGS += ["--sink", "4", "--window", "16", "--concurrency", "1,3", "--quiet"]
HAS_LLAMA_CPP = importlib.util.find_spec("llama_cpp") is not None


@pytest.fixture(scope="session")
def python_without_llama_cpp(tmp_path_factory: pytest.TempPathFactory) -> str:
    """This interpreter when llama_cpp is not installed here, else a bare venv's."""
    if not HAS_LLAMA_CPP:
        return sys.executable
    folder = tmp_path_factory.mktemp("bare-venv")
    venv.create(folder, with_pip=False, system_site_packages=False)
    return str(folder / "bin" / "python")


@pytest.fixture(scope="session")
def peer_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One converter and GGUF cache for every test of the session (conversion runs once)."""
    return tmp_path_factory.mktemp("peer-cache")


@pytest.fixture(scope="session")
def sdist() -> Path:
    """The llama-cpp-python sdist ($KAKEYA_LLAMA_SDIST or the default peer cache), or skip."""
    try:
        return gguf_convert.find_sdist("", gguf_convert.default_cache_dir())
    except gguf_convert.ConverterUnavailable as error:
        pytest.skip(str(error))


@pytest.fixture(scope="session")
def converter(sdist: Path, peer_cache: Path) -> Path:
    return gguf_convert.extract_converter(sdist, peer_cache)


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="kakeya-evidence")
    bench.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["bench", *argv])


def _revision(model: str) -> str:
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(model, local_files_only=True)).name


# -- flags and validation ------------------------------------------------------------------


def test_peer_flags_reach_the_config():
    flags = ["--peer", "llama.cpp", "--peer-types", "BF16,Q8_0", "--peer-threads", "3"]
    flags += ["--peer-python", "/opt/py", "--peer-sdist", "s.tar.gz", "--peer-cache", "c"]
    config = bench.config_from_args(_parse(flags))
    assert config.peer == ("llama.cpp",)
    assert config.peer_types == ("BF16", "Q8_0")
    assert (config.peer_threads, config.peer_python) == (3, "/opt/py")
    assert (config.peer_sdist, config.peer_cache) == ("s.tar.gz", "c")


def test_the_sweep_can_generate_fewer_tokens_than_the_single_stream():
    config = bench.config_from_args(_parse(["--max-tokens", "128", "--sweep-max-tokens", "32"]))
    assert (config.max_tokens, config.sweep_max_tokens) == (128, 32)
    assert bench.config_from_args(_parse([])).sweep_max_tokens == 0  # 0: the same G
    with pytest.raises(ParameterError, match="sweep_max_tokens"):
        bench.validate_config(bench.BenchConfig(sweep_max_tokens=2))


def test_without_the_flag_no_peer_runs():
    config = bench.config_from_args(_parse([]))
    assert config.peer == ()
    assert config.peer_threads == 2  # issue 24 measures every engine on 2 threads


@pytest.mark.parametrize(
    "field, value",
    [("peer", ("vllm",)), ("peer_types", ("Q4_K",)), ("peer_types", ()), ("peer_threads", 0)],
)
def test_validate_config_names_the_peer_field(field, value):
    with pytest.raises(ParameterError, match=field):
        bench.validate_config(bench.BenchConfig(**{"peer": ("llama.cpp",), field: value}))


# -- finding and extracting the converter --------------------------------------------------


def test_a_missing_sdist_names_the_flag_and_the_download(tmp_path: Path, monkeypatch):
    monkeypatch.delenv(gguf_convert.SDIST_ENV, raising=False)
    with pytest.raises(gguf_convert.ConverterUnavailable, match="--peer-sdist") as caught:
        gguf_convert.find_sdist("", tmp_path, "0.3.36")
    assert "llama-cpp-python==0.3.36" in str(caught.value)
    with pytest.raises(gguf_convert.ConverterUnavailable, match="does not exist"):
        gguf_convert.find_sdist(str(tmp_path / "nope.tar.gz"), tmp_path)


def test_the_sdist_of_the_installed_version_is_found_in_the_cache(tmp_path: Path, monkeypatch):
    monkeypatch.delenv(gguf_convert.SDIST_ENV, raising=False)
    for version in ("0.3.35", "0.3.36"):
        (tmp_path / f"llama_cpp_python-{version}.tar.gz").write_bytes(b"")
    found = gguf_convert.find_sdist("", tmp_path, "0.3.35")
    assert found.name == "llama_cpp_python-0.3.35.tar.gz"
    assert gguf_convert.sdist_version(found) == "0.3.35"


def test_an_sdist_without_the_converter_is_refused(tmp_path: Path):
    import tarfile

    fake = tmp_path / "llama_cpp_python-9.9.9.tar.gz"
    readme = tmp_path / "README.md"
    readme.write_text("no converter here", encoding="utf-8")
    with tarfile.open(fake, "w:gz") as archive:
        archive.add(readme, arcname="llama_cpp_python-9.9.9/README.md")
    with pytest.raises(gguf_convert.ConverterUnavailable, match=r"convert_hf_to_gguf\.py"):
        gguf_convert.extract_converter(fake, tmp_path / "cache")


# -- the pre-tokenizer mapping ---------------------------------------------------------------


class _Tokenizer:
    def __init__(self, ids: list[int]) -> None:
        self.ids = ids

    def encode(self, text: str) -> list[int]:
        assert text.startswith("\n \n\n \n\n\n \t")  # the converter's check text
        return self.ids


class _TextModel:
    """The converter's method as it is shaped: the check text is one of its constants."""

    def get_vocab_base_pre(self, tokenizer):
        chktxt = "\n \n\n \n\n\n \t and so on"
        tokenizer.encode(chktxt)
        raise NotImplementedError("BPE pre-tokenizer was not recognized")


def test_a_known_hash_gets_its_pre_tokenizer_and_others_the_converters_answer():
    known_ids, other_ids = [1, 2, 3], [4, 5]
    chkhsh = sha256(str(known_ids).encode()).hexdigest()
    seen = gguf_convert.patch_pre_tokenizer(_TextModel, {chkhsh: "qwen2"})
    assert _TextModel().get_vocab_base_pre(_Tokenizer(known_ids)) == "qwen2"
    assert seen == {"chkhsh": chkhsh, "pre_tokenizer": "qwen2", "mapped": True}
    with pytest.raises(NotImplementedError):  # an unknown tokenizer is still refused
        _TextModel().get_vocab_base_pre(_Tokenizer(other_ids))


@pytest.mark.slow
def test_the_embedded_tokenizers_hash_is_mapped_to_qwen2(converter: Path):
    """Fails when the project's tokenizer changes: list its new hash in gguf_convert."""
    from transformers import AutoTokenizer

    code = (
        "import sys, json; sys.path[0:0] = [sys.argv[1] + '/gguf-py', sys.argv[1]]\n"
        "import conversion.base as b\n"
        "from kakeya_evidence.bench.peers.gguf_convert import _check_text\n"
        "print(json.dumps(_check_text(b.TextModel.get_vocab_base_pre)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(converter)], capture_output=True, text=True, check=True
    )
    chktxt = json.loads(out.stdout)
    for model in (TINY, "kakeya/qwen3-0.6b-shaped"):
        try:
            tokenizer = AutoTokenizer.from_pretrained(model)
        except OSError:
            continue  # the 0.6B preset is not built on every machine
        chkhsh = sha256(str(tokenizer.encode(chktxt)).encode()).hexdigest()
        assert gguf_convert.KNOWN_PRE_TOKENIZERS.get(chkhsh) == "qwen2", (model, chkhsh)


# -- the absent extra --------------------------------------------------------------------------


def test_the_probe_says_how_to_install_the_extra(python_without_llama_cpp: str):
    version, reason = probe_llama_cpp(python_without_llama_cpp)
    assert version is None
    assert "kakeya[peer-llama]" in reason


def test_compare_logits_measures_agreement_over_the_vocabulary():
    reference = [float(i % 7) for i in range(50)]
    same = compare_logits(reference, reference)
    assert same["correlation"] == pytest.approx(1.0)
    assert same["top10_overlap"] == 10 and same["top1_equal"] and same["max_abs_diff"] == 0
    flipped = compare_logits([-x for x in reference], reference)
    assert flipped["correlation"] == pytest.approx(-1.0) and not flipped["top1_equal"]


def test_an_absent_peer_marks_every_row_not_installed(python_without_llama_cpp: str):
    config = LlamaCppConfig(python=python_without_llama_cpp, sdist="/nowhere.tar.gz")
    with LlamaCppPeer(config, TINY, "rev", 64) as peer:
        peer.start()  # never looks for the sdist: there is nothing to convert for
        assert peer.status == PeerStatus.NOT_INSTALLED
        assert peer.decode_variants([1, 2, 3], 4) == {}
        section = peer.section({}, [])
    assert section["status"] == "not installed"
    assert set(section["variants"]) == {"BF16", "F16", "Q8_0"}
    assert {v["status"] for v in section["variants"].values()} == {"not installed"}
    assert peer.goals(section, [])["runtime_over_llama_cpp_bf16"]["met"] is None


@pytest.mark.slow
def test_bench_without_the_extra_still_runs_and_says_not_installed(
    tmp_path: Path, python_without_llama_cpp: str
):
    flags = [*TINY_ARGS, "--output", str(tmp_path), "--no-sdk", "--peer", "llama.cpp"]
    args = _parse([*flags, "--peer-python", python_without_llama_cpp])
    assert args.func(args) == 0
    doc = json.loads((tmp_path / "bench.json").read_text(encoding="utf-8"))
    peer = doc["peers"]["llama.cpp"]
    assert peer["status"] == "not installed"
    assert all(v["status"] == "not installed" for v in peer["variants"].values())
    assert not any(name.startswith("llama_cpp") for name in doc["decode_tok_s"])
    assert doc["decode_tok_s"]["runtime"] > 0 and doc["decode_tok_s"]["hf_generate"] > 0
    assert all(row["runtime_tok_s"] > 0 for row in doc["concurrency"])
    assert doc["goals"]["runtime_over_llama_cpp_bf16"]["met"] is None


# -- the present extra (real conversion, real llama.cpp) -------------------------------------

needs_llama_cpp = pytest.mark.skipif(not HAS_LLAMA_CPP, reason="llama_cpp is not installed")


@pytest.mark.slow
@needs_llama_cpp
def test_the_tiny_model_converts_and_its_sequences_decode_as_single_streams(
    converter: Path, peer_cache: Path
):
    gguf = gguf_convert.ensure_gguf(TINY, _revision(TINY), "BF16", converter, peer_cache)
    assert gguf.facts["pre_tokenizer"] == "qwen2" and gguf.facts["mapped"] is True
    again = gguf_convert.ensure_gguf(TINY, _revision(TINY), "BF16", converter, peer_cache)
    assert again.cached and again.path == gguf.path
    rng = random.Random(0)
    prompts = [[rng.randrange(4000) for _ in range(n)] for n in (12, 5, 9)]
    with LlamaWorker(sys.executable, gguf.path, 2, 64) as worker:
        assert worker.hello["n_vocab"] > 4000
        singles = [list(worker.decode(p, 6).token_ids) for p in prompts]
        stamps, together = worker.batch_with_ids(prompts, 6)
    # right positions and sequence ids: each sequence continues its own prompt
    assert together == singles
    assert all(len(s) == 6 and list(s) == sorted(s) for s in stamps.stamps_s)


@pytest.mark.slow
@needs_llama_cpp
def test_bench_with_the_peer_writes_llama_cpp_rows(tmp_path: Path, sdist: Path, peer_cache: Path):
    flags = [*TINY_ARGS, "--output", str(tmp_path / "out"), "--no-sdk", "--peer", "llama.cpp"]
    flags += ["--peer-sdist", str(sdist), "--peer-cache", str(peer_cache)]
    args = _parse([*flags, "--sweep-max-tokens", "5"])
    assert args.func(args) == 0
    doc = json.loads((tmp_path / "out" / "bench.json").read_text(encoding="utf-8"))
    peer = doc["peers"]["llama.cpp"]
    assert peer["status"] == "ok", peer["reason"]
    assert peer["converter"]["pre_tokenizer"] == "qwen2"
    for gguf_type, row in peer["variants"].items():
        name = variant_name(gguf_type)
        assert row["status"] == "ok", row["reason"]
        assert doc["decode_tok_s"][name] > 0
        assert row["runtime_over_peer"] > 0
        assert all(r[f"{name}_tok_s"] > 0 for r in doc["concurrency"])
        assert set(row["batch_tok_s"]) == {"1", "3"}
    assert doc["config"]["sweep_max_tokens"] == 5
    bf16 = peer["variants"]["BF16"]
    # the conversion is right: llama.cpp's greedy tokens start as HF's (bf16 both sides)
    assert bf16["tokens_compared"] == 4
    assert bf16["tokens_matching_hf_generate"] >= 2
    assert bf16["logits_vs_hf"]["correlation"] > 0.99
    assert bf16["logits_vs_hf"]["top10_overlap"] >= 8
    assert doc["goals"]["runtime_over_llama_cpp_bf16"]["value"] > 0
