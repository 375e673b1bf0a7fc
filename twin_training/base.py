"""The base model and its tokenizer, without a model hub.

A base is an installed model name (``twin models list``: the embedded Qwen2.5 GGUF files),
a GGUF file, or a Hugging Face model folder. transformers reads a GGUF's tokenizer and
dequantises its weights (needs the ``gguf`` package); the tokenizer converted from a GGUF
is cached under the data folder (the conversion takes ~20 s). For tests,
:func:`tiny_random_model` builds a 2-layer Qwen2 with random weights around the real
tokenizer.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["BaseSpec", "load_base_model", "load_tokenizer", "resolve_base", "tiny_random_model"]

logger = logging.getLogger(__name__)

_HINT = "pip install -e '.[training]'"


def _require(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError(f"twin training needs '{module}': {_HINT}") from exc


@dataclass(frozen=True)
class BaseSpec:
    """Where a base model lives: a GGUF file, or a Hugging Face folder."""

    name: str
    gguf: Path | None = None
    hf_dir: Path | None = None

    @property
    def folder(self) -> Path:
        if self.gguf is not None:
            return self.gguf.parent
        assert self.hf_dir is not None
        return self.hf_dir


def resolve_base(base: str) -> BaseSpec:
    """An installed model name, a ``.gguf`` file or a Hugging Face folder."""
    path = Path(base).expanduser()
    if path.suffix == ".gguf" and path.is_file():
        return BaseSpec(name=path.stem, gguf=path.resolve())
    if path.is_dir() and (path / "config.json").is_file():
        return BaseSpec(name=path.name, hf_dir=path.resolve())
    from twin import models

    folder = models.models_dir() / base
    gguf = folder / "model.gguf"
    if gguf.is_file():
        return BaseSpec(name=base, gguf=gguf)
    raise FileNotFoundError(
        f"base model {base!r}: not an installed model, a .gguf file or a Hugging Face folder "
        f"(install the embedded ones with: twin models install --all)")


def _cache_dir() -> Path:
    from twin.models import data_dir

    return data_dir() / "cache" / "tokenizers"


def load_tokenizer(spec: BaseSpec) -> Any:
    """The base's tokenizer (from the GGUF, cached as a Hugging Face tokenizer folder)."""
    transformers = _require("transformers")
    if spec.gguf is None:
        return transformers.AutoTokenizer.from_pretrained(str(spec.hf_dir))
    stat = spec.gguf.stat()
    key = hashlib.sha256(f"{spec.gguf}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()
    cached = _cache_dir() / key[:16]
    if (cached / "tokenizer_config.json").is_file():
        return transformers.AutoTokenizer.from_pretrained(str(cached))
    _require("gguf")
    logger.info("converting the tokenizer of %s (once)", spec.gguf.name)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(spec.gguf.parent),
                                                           gguf_file=spec.gguf.name)
    import shutil
    import tempfile

    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=cached.parent, prefix=cached.name + "."))
    tokenizer.save_pretrained(str(tmp))
    try:
        tmp.rename(cached)
    except OSError:  # another process cached it first
        shutil.rmtree(tmp, ignore_errors=True)
    return tokenizer


def load_base_model(spec: BaseSpec, *, dtype: str = "float32") -> Any:
    """The base model for training (a GGUF is dequantised to ``dtype``)."""
    transformers = _require("transformers")
    torch = _require("torch")
    torch_dtype = getattr(torch, dtype)
    if spec.gguf is None:
        return transformers.AutoModelForCausalLM.from_pretrained(str(spec.hf_dir),
                                                                 dtype=torch_dtype)
    _require("gguf")
    return transformers.AutoModelForCausalLM.from_pretrained(
        str(spec.gguf.parent), gguf_file=spec.gguf.name, dtype=torch_dtype)


def tiny_random_model(*, vocab_size: int, seed: int = 0, hidden_size: int = 64,
                      layers: int = 2) -> Any:
    """A Qwen2 with random weights: 2 layers, hidden 64, 4 heads (2 for keys/values)."""
    transformers = _require("transformers")
    torch = _require("torch")
    config = transformers.Qwen2Config(
        vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=hidden_size * 2,
        num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=8192, rope_theta=1000000.0, rms_norm_eps=1e-6,
        tie_word_embeddings=True, use_sliding_window=False)
    torch.manual_seed(seed)
    model = transformers.Qwen2ForCausalLM(config)
    model.eval()
    return model
