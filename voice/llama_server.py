"""``python -m voice.llama_server``: llama-cpp-python's OpenAI-compatible server, with the
CPU's extra weight buffer types (AMX / repacked weights) off where they crash.

On CPUs that report AMX (``amx_tile`` in ``/proc/cpuinfo``), llama.cpp repacks the weights
for AMX tiles; inside a virtual machine that does not grant the tile state this ends in a
general protection fault on the first token (seen on Firecracker guests with Sapphire
Rapids hosts). There the extra buffer types are turned off (``use_extra_bufts = False``):
the model runs on the plain CPU kernels. ``TWIN_LLAMA_EXTRA_BUFTS=1`` forces them on,
``=0`` off. Same arguments as ``python -m llama_cpp.server``, plus ``--state_dir DIR``: the
warm prompt state kept across restarts (``voice.llm_warm_state``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

__all__ = ["extra_buffer_types_safe", "main"]

logger = logging.getLogger(__name__)


def extra_buffer_types_safe(cpuinfo: str | None = None) -> bool:
    """Whether llama.cpp's extra buffer types may be used on this machine."""
    forced = os.environ.get("TWIN_LLAMA_EXTRA_BUFTS", "").strip()
    if forced in {"0", "1"}:
        return forced == "1"
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return True
    return "amx_tile" not in cpuinfo


def main() -> None:
    import sys

    import llama_cpp
    import llama_cpp.llama
    from llama_cpp.server.__main__ import main as server_main

    from voice.llm_warm_state import install, pop_state_dir

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    state_dir = pop_state_dir(sys.argv)
    if state_dir is not None:
        install(state_dir)
    if not extra_buffer_types_safe():
        default_params = llama_cpp.llama_model_default_params

        def params() -> object:
            p = default_params()
            p.use_extra_bufts = False
            return p

        llama_cpp.llama_model_default_params = params
        llama_cpp.llama.llama_cpp.llama_model_default_params = params
        logger.info("llama.cpp extra buffer types off (AMX CPU)")
    server_main()


if __name__ == "__main__":
    main()
