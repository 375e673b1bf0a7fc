"""``twin export``: the adapter for llama.cpp and Ollama, written with the ``gguf`` package.

- :func:`export_lora_gguf`: a peft LoRA adapter (Qwen2) -> a GGUF LoRA adapter that
  llama.cpp applies on the base GGUF (``Llama(model_path=base, lora_path=adapter)``,
  ``llama-server --lora``, Ollama's ``ADAPTER``). Tensor names follow llama.cpp's Qwen2
  naming (``blk.N.attn_q.weight.lora_a``); scale = ``adapter.lora.alpha`` / rank, as peft.
- :func:`write_qwen2_gguf`: a Qwen2 state dict (a merged model, or the tiny test model) ->
  a full GGUF, with the tokenizer and chat template copied from the base GGUF.
- :func:`ollama_modelfile`: the Modelfile. Ollama path chosen: **the quantised base GGUF +
  the GGUF LoRA** (``FROM`` + ``ADAPTER``), not a merged model: it is exactly the pair the
  evaluation ran with llama.cpp (no re-quantisation of a merged model changing the
  figures), the adapter is a few MB to ship and deploy, and rolling back is dropping it.
  ``TEMPLATE {{ .Prompt }}`` with ``raw`` prompts rendered by
  ``knowledge.twin_format.render_prompt``: a Go chat template cannot reproduce the Python
  JSON spacing of the tools block, so the prompt the twin sees live is rendered by the same
  function that rendered its training data. A merged GGUF is also written on request
  (``--merged``) for servers without adapter support.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "LORA_TENSOR_RE",
    "export_lora_gguf",
    "export_run",
    "merged_state_dict",
    "ollama_modelfile",
    "write_qwen2_gguf",
]

logger = logging.getLogger(__name__)

_MODULES = {
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
LORA_TENSOR_RE = re.compile(
    r"^(?:base_model\.model\.)?model\.layers\.(\d+)\.(self_attn\.[qkvo]_proj|mlp\.(?:gate|up|down)"
    r"_proj)\.lora_([AB])(?:\.default)?\.weight$")


def _gguf() -> Any:
    try:
        import gguf
    except ModuleNotFoundError as exc:  # pragma: no cover - in the training extra
        raise RuntimeError("exporting needs the 'gguf' package: pip install -e '.[training]'"
                           ) from exc
    return gguf


def export_lora_gguf(adapter_dir: str | Path, out_path: str | Path, *,
                     dtype: str = "float32") -> Path:
    """Write the peft adapter in ``adapter_dir`` as a llama.cpp GGUF LoRA."""
    import numpy as np
    from safetensors.numpy import load_file

    gguf = _gguf()
    adapter_dir = Path(adapter_dir)
    cfg = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    weights = load_file(str(adapter_dir / "adapter_model.safetensors"))
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(out), arch="qwen2")
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", float(cfg["lora_alpha"]))
    writer.add_string("general.name", adapter_dir.parent.name or "twin-adapter")
    np_dtype = np.float16 if dtype == "float16" else np.float32
    count = 0
    for name in sorted(weights):
        m = LORA_TENSOR_RE.match(name)
        if m is None:
            raise ValueError(f"unexpected tensor in the adapter: {name}")
        layer, module, ab = m.groups()
        target = f"blk.{layer}.{_MODULES[module]}.weight.lora_{ab.lower()}"
        writer.add_tensor(target, np.ascontiguousarray(weights[name].astype(np_dtype)))
        count += 1
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    logger.info("wrote %s (%d tensors, alpha %s)", out, count, cfg["lora_alpha"])
    return out


_COPY_PREFIXES = ("tokenizer.",)


def write_qwen2_gguf(state_dict: Mapping[str, Any], config: Any, tokenizer_gguf: str | Path,
                     out_path: str | Path, *, name: str = "twin",
                     dtype: str = "float16") -> Path:
    """A full Qwen2 GGUF from a transformers state dict (weights as given, 2-D tensors in
    ``dtype``, norms and biases in float32); tokenizer and chat template from
    ``tokenizer_gguf``."""
    import numpy as np

    gguf = _gguf()
    reader = gguf.GGUFReader(str(tokenizer_gguf))
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(out), arch="qwen2")
    writer.add_name(name)
    writer.add_context_length(int(config.max_position_embeddings))
    writer.add_embedding_length(int(config.hidden_size))
    writer.add_block_count(int(config.num_hidden_layers))
    writer.add_feed_forward_length(int(config.intermediate_size))
    writer.add_head_count(int(config.num_attention_heads))
    writer.add_head_count_kv(int(config.num_key_value_heads))
    rope_theta = getattr(config, "rope_theta", None)
    if rope_theta is None:
        rope_theta = (getattr(config, "rope_parameters", None) or {}).get("rope_theta", 1e6)
    writer.add_rope_freq_base(float(rope_theta))
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_file_type(1 if dtype == "float16" else 0)
    for key, field in reader.fields.items():
        if not key.startswith(_COPY_PREFIXES):
            continue
        vtype = field.types[0]
        if vtype == gguf.GGUFValueType.ARRAY:
            sub = field.types[-1]
            if sub == gguf.GGUFValueType.STRING:
                values: Any = [bytes(field.parts[i]) for i in field.data]
            else:
                values = [field.parts[i].tolist()[0] for i in field.data]
            writer.add_array(key, values)
        elif vtype == gguf.GGUFValueType.STRING:
            writer.add_string(key, bytes(field.parts[field.data[0]]).decode("utf-8"))
        else:
            writer.add_key_value(key, field.parts[field.data[0]].tolist()[0], vtype)
    np_dtype = np.float16 if dtype == "float16" else np.float32
    tied = "lm_head.weight" not in state_dict or bool(getattr(config, "tie_word_embeddings",
                                                               False))
    for key, tensor in state_dict.items():
        target = _hf_to_gguf_name(key)
        if target is None or (tied and key == "lm_head.weight"):
            continue
        array = tensor.detach().cpu().float().numpy() if hasattr(tensor, "detach") else tensor
        array = array.astype(np_dtype if array.ndim == 2 else np.float32)
        writer.add_tensor(target, np.ascontiguousarray(array))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


def _hf_to_gguf_name(key: str) -> str | None:
    if key == "model.embed_tokens.weight":
        return "token_embd.weight"
    if key == "model.norm.weight":
        return "output_norm.weight"
    if key == "lm_head.weight":
        return "output.weight"
    m = re.match(r"^model\.layers\.(\d+)\.(.+)\.(weight|bias)$", key)
    if m is None:
        return None
    layer, module, kind = m.groups()
    names = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm", **_MODULES}
    if module not in names:
        return None
    return f"blk.{layer}.{names[module]}.{kind}"


def merged_state_dict(model: Any, adapter_dir: str | Path) -> dict[str, Any]:
    """The base ``model`` with the adapter merged into its weights."""
    from peft import PeftModel

    merged = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    return dict(merged.state_dict())


def ollama_modelfile(*, base_gguf: str, adapter_gguf: str | None, num_ctx: int = 4096) -> str:
    """The Modelfile: base + adapter, identity template (raw prompts from render_prompt)."""
    lines = [f"FROM {base_gguf}"]
    if adapter_gguf:
        lines.append(f"ADAPTER {adapter_gguf}")
    lines += [
        'TEMPLATE """{{ .Prompt }}"""',
        'PARAMETER stop "<|im_end|>"',
        'PARAMETER stop "<|im_start|>"',
        "PARAMETER temperature 0",
        f"PARAMETER num_ctx {num_ctx}",
    ]
    return "\n".join(lines) + "\n"


def _tiny_base_cache(tokenizer_gguf: Path, seed: int) -> Path:
    import hashlib

    from twin.models import data_dir

    stat = tokenizer_gguf.stat()
    key = hashlib.sha256(f"tiny-v1:{tokenizer_gguf}:{stat.st_size}:{stat.st_mtime_ns}:{seed}"
                         .encode()).hexdigest()[:16]
    folder = data_dir() / "cache" / "tiny-base"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{key}.gguf"


def export_run(run_dir: str | Path, *, out_dir: str | Path | None = None,
               merged: bool = False, base_gguf: str | Path | None = None) -> dict[str, Any]:
    """Export a training run: ``adapter.gguf``, ``Modelfile``, optionally ``merged.gguf``;
    returns a manifest (also written as ``export.json``)."""
    run = Path(run_dir)
    out = Path(out_dir) if out_dir else run / "export"
    out.mkdir(parents=True, exist_ok=True)
    info = json.loads((run / "run.json").read_text(encoding="utf-8"))
    config = info["config"]
    from twin_training.base import resolve_base

    spec = resolve_base(config["model"]["base"])
    base_path = Path(base_gguf) if base_gguf else spec.gguf
    adapter = export_lora_gguf(run / "adapter", out / "adapter.gguf")
    manifest: dict[str, Any] = {"adapter_gguf": str(adapter), "run": str(run),
                                "base_name": spec.name,
                                "base_gguf": str(base_path) if base_path else None}
    if config["model"].get("tiny_random") or merged:
        # The tiny test model has no GGUF of its own: write its base (and merged) weights.
        from twin_training.base import load_base_model, load_tokenizer, tiny_random_model

        if spec.gguf is None:
            raise ValueError("writing a GGUF needs a GGUF base for the tokenizer metadata")
        if config["model"].get("tiny_random"):
            tok = load_tokenizer(spec)
            seed = int(config["train"]["seed"])
            model = tiny_random_model(vocab_size=len(tok), seed=seed)
            base_path = _tiny_base_cache(spec.gguf, seed)
            if not base_path.is_file():  # the same weights for a seed: written once
                tmp = write_qwen2_gguf(model.state_dict(), model.config, spec.gguf,
                                       base_path.with_suffix(".tmp"), name="tiny-random",
                                       dtype="float32")
                tmp.replace(base_path)
            manifest["base_gguf"] = str(base_path)
        else:
            model = load_base_model(spec)
        if merged:
            state = merged_state_dict(model, run / "adapter")
            manifest["merged_gguf"] = str(write_qwen2_gguf(
                state, model.config, spec.gguf, out / "merged.gguf", name=run.name,
                dtype="float32" if config["model"].get("tiny_random") else "float16"))
    modelfile = ollama_modelfile(base_gguf=str(manifest["base_gguf"]),
                                 adapter_gguf=str(adapter))
    (out / "Modelfile").write_text(modelfile, encoding="utf-8")
    manifest["modelfile"] = str(out / "Modelfile")
    for extra in ("ledger.json", "run.json"):
        if (run / "adapter" / extra).is_file():
            (out / extra).write_text((run / "adapter" / extra).read_text(encoding="utf-8"),
                                     encoding="utf-8")
    (out / "export.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return manifest
