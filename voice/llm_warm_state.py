"""The embedded LLM's warm prompt state, kept on disk across restarts.

``python -m voice.llama_server --state_dir DIR …`` (started by
:class:`voice.embedded_llm.EmbeddedLLMServer`) installs this: the first prompt the server
evaluates (the assistant's warm-up: the fixed system prompt and tools) is saved in ``DIR``
once, and on the next start that saved state is loaded instead of evaluating the prompt
again. On 2 cores that evaluation is the bulk of the
start-up time (tens of seconds; minutes on a busy machine); loading the state takes about a
second. Later prompts are not saved: within a running server llama.cpp already reuses the
evaluated prefix from one turn (and one call) to the next.

The state belongs to one model file, context size and llama.cpp build: the file name
carries a key of those (``state_key``), so a new model or build never loads a stale state. A
state that is unreadable or does not match the prompt is ignored (the prompt is evaluated as
usual) and replaced.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import pickle
import tempfile
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["WarmStateCache", "install", "pop_state_dir", "state_key"]

logger = logging.getLogger(__name__)

MIN_PREFIX = 32  # a saved state is used only if the prompt shares at least this many tokens


def state_key(model_path: Path, n_ctx: int, version: str) -> str:
    st = model_path.stat()
    raw = f"{model_path.resolve()}|{st.st_size}|{int(st.st_mtime)}|{n_ctx}|{version}"
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def _make_cache_class() -> Any:
    import llama_cpp
    from llama_cpp.llama_cache import BaseLlamaCache

    class _WarmStateCache(BaseLlamaCache):  # type: ignore[misc]
        """A one-entry, write-once llama-cpp-python cache backed by a file.

        ``Llama`` consults its cache only while the cache is truthy: once the warm state was
        used or written, the cache turns falsy, so later turns pay no save or lookup.
        """

        def __init__(self, *, path: Path) -> None:
            super().__init__(capacity_bytes=0)
            self.path = path
            self._state: Any = None
            self._done = False
            try:
                with path.open("rb") as fh:
                    self._state = pickle.load(fh)  # our own file, written below
                logger.info("warm LLM state: %d tokens from %s", self._state.n_tokens, path)
            except FileNotFoundError:
                pass
            except Exception as exc:  # corrupt or from another build: evaluate as usual
                logger.warning("warm LLM state %s unreadable (%s); it will be replaced", path, exc)

        def __bool__(self) -> bool:
            return not self._done

        @property
        def cache_size(self) -> int:
            return 0

        def _find_longest_prefix_key(self, key: Any) -> Any:
            return None

        def _matches(self, key: Sequence[int]) -> bool:
            if self._state is None:
                return False
            ids = self._state.input_ids.tolist()
            return bool(llama_cpp.Llama.longest_token_prefix(ids, list(key)) >= MIN_PREFIX)

        def __contains__(self, key: Sequence[int]) -> bool:
            return self._matches(key)

        def __getitem__(self, key: Sequence[int]) -> Any:
            if not self._matches(key):
                raise KeyError("no warm state for this prompt")
            self._done = True  # loaded once; from now on llama.cpp's own prefix reuse
            return self._state

        def __setitem__(self, key: Sequence[int], value: Any) -> None:
            self._done = True
            if self._state is not None and self._matches(key):
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".warm-")
            try:
                with os.fdopen(fd, "wb") as fh:
                    pickle.dump(value, fh, protocol=pickle.HIGHEST_PROTOCOL)
                os.replace(tmp, self.path)
                logger.info("warm LLM state saved: %d tokens to %s", value.n_tokens, self.path)
            except OSError as exc:
                logger.warning("could not save the warm LLM state to %s: %s", self.path, exc)
                Path(tmp).unlink(missing_ok=True)

    return _WarmStateCache


def _save_prompt_state(llama: Any) -> Any:
    import llama_cpp
    import numpy as np

    ctx = llama._ctx.ctx
    size = int(llama_cpp.llama_state_seq_get_size(ctx, 0))
    buf = (ctypes.c_uint8 * size)()
    n = int(llama_cpp.llama_state_seq_get_data(ctx, buf, size, 0))
    return llama_cpp.llama.LlamaState(
        input_ids=llama.input_ids[:llama.n_tokens].copy(),
        scores=np.zeros((1, 1), dtype=np.single),  # unused: a prefix hit re-decodes its last token
        n_tokens=llama.n_tokens, llama_state=bytes(buf)[:n], llama_state_size=n, seed=llama._seed)


def _load_prompt_state(llama: Any, state: Any) -> None:
    import llama_cpp

    ctx = llama._ctx.ctx
    llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(ctx), True)
    buf = (ctypes.c_uint8 * state.llama_state_size).from_buffer_copy(state.llama_state)
    if int(llama_cpp.llama_state_seq_set_data(ctx, buf, state.llama_state_size, 0)) == 0:
        llama.reset()
        raise RuntimeError("llama.cpp refused the saved prompt state")
    llama.input_ids[:state.n_tokens] = state.input_ids[:state.n_tokens]
    llama.n_tokens = state.n_tokens
    llama._requires_eval = True


def WarmStateCache(*, path: Path) -> Any:
    """A :class:`_WarmStateCache` (the class is made on first use: it needs llama_cpp)."""
    return _make_cache_class()(path=path)


def install(state_dir: Path) -> None:
    """Give every model the server loads a warm-state cache in ``state_dir`` (call before
    llama-cpp-python's server starts; the model is loaded when the app is created)."""
    import llama_cpp
    from llama_cpp.server.model import LlamaProxy

    load = LlamaProxy.load_llama_from_model_settings

    def load_with_state(settings: Any) -> Any:
        llama = load(settings)
        # the cache saves and loads through these: only the KV cells of the prompt (a few
        # tens of MB), not llama.cpp's whole context with its logits buffers (~0.7 GB)
        llama.save_state = types.MethodType(_save_prompt_state, llama)  # type: ignore[method-assign]
        llama.load_state = types.MethodType(_load_prompt_state, llama)  # type: ignore[method-assign]
        key = state_key(Path(settings.model), int(settings.n_ctx), llama_cpp.__version__)
        llama.set_cache(WarmStateCache(path=state_dir / f"warm-{key}.pkl"))
        return llama

    LlamaProxy.load_llama_from_model_settings = staticmethod(load_with_state)  # type: ignore[method-assign]


def pop_state_dir(argv: list[str]) -> Path | None:
    """Take ``--state_dir DIR`` out of ``argv`` (the rest goes to llama-cpp-python's parser)."""
    if "--state_dir" not in argv:
        return None
    i = argv.index("--state_dir")
    if i + 1 >= len(argv):
        raise SystemExit("--state_dir needs a folder")
    value = argv[i + 1]
    del argv[i:i + 2]
    return Path(value)
