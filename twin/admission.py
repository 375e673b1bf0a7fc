"""Admission control for ``twin serve``: a call is answered only at a pace we can keep.

The AudioSocket server listens from the first second; :class:`AdmissionGate` is its
call handler and decides per call:

* the assistant is still starting (models loading, LLM warming up): the caller is
  handed to the secretaries at once (``assistant_starting``), never left in silence;
* as many calls are in progress as the assistant can answer at its measured pace:
  the caller is handed to the secretaries at once (``over_capacity``);
* otherwise the call runs the assistant's handler.

The capacity comes from what speech recognition costs on this machine
(:func:`capacity_for`): every call sends the recogniser one utterance every few
seconds, and an utterance that has to queue behind other calls' is a silence the
caller hears. ``/health`` reports ``degraded`` while the gate cannot take one more.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

__all__ = ["SEGMENTS_PER_CALL_S", "TARGET_UTILIZATION", "AdmissionGate", "capacity_for"]

logger = logging.getLogger(__name__)

# A caller speaks one segment every ~5 s of a call (turns of a few seconds, the bot
# answering in between): each costs one decode.
SEGMENTS_PER_CALL_S = 0.2
# Keep the recogniser at most half busy: beyond, utterances queue behind each other
# (waiting time grows as u / (1 - u)) and turns are answered seconds late.
TARGET_UTILIZATION = 0.5


def capacity_for(*, decode_s: float, workers: int = 1,
                 segments_per_call_s: float = SEGMENTS_PER_CALL_S,
                 target_utilization: float = TARGET_UTILIZATION) -> int:
    """Calls the recogniser serves without queueing: ``workers`` decoders, each
    ``decode_s`` per utterance, kept at most ``target_utilization`` busy. At least 1.

    E.g. Whisper base on 2 cores, one decoder at 1.2 s per utterance: 2 calls."""
    if decode_s <= 0:
        raise ValueError("decode_s must be positive")
    load_per_call = decode_s * segments_per_call_s / max(1, workers)
    return max(1, math.floor(target_utilization / load_per_call + 1e-9))


class AdmissionGate:
    """The AudioSocket server's call handler while ``twin serve`` runs.

    ``set_handler(handler, capacity=...)`` once the assistant is ready; ``capacity``
    is re-read for every call (it follows the recogniser's measured pace)."""

    def __init__(self, *, max_calls: int) -> None:
        self.max_calls = max_calls
        self._handler: Any = None
        self._capacity: Callable[[], int] = lambda: max_calls
        self.active = 0
        self.refused_starting = 0
        self.refused_busy = 0

    @property
    def ready(self) -> bool:
        return self._handler is not None

    def set_handler(self, handler: Any, *, capacity: Callable[[], int] | None = None) -> None:
        self._handler = handler
        if capacity is not None:
            self._capacity = capacity

    def capacity(self) -> int:
        try:
            value = int(self._capacity())
        except Exception:  # a broken estimate must not refuse every call
            logger.exception("capacity estimate failed; using max_calls")
            value = self.max_calls
        return max(1, min(value, self.max_calls))

    def problems(self) -> list[str]:
        """Why one more call would not be answered by the assistant right now."""
        if not self.ready:
            return ["assistant starting: calls are handed to the secretaries until it is ready"]
        cap = self.capacity()
        if self.active >= cap:
            return [f"at capacity: {self.active} calls in progress, the assistant answers "
                    f"{cap} at its measured pace; new calls go to the secretaries"]
        return []

    async def __call__(self, session: Any) -> None:
        if self._handler is None:
            self.refused_starting += 1
            logger.warning("call %s: the assistant is still starting; handing the caller to "
                           "a human", session.call_id)
            await session.handoff(reason="assistant_starting",
                                  summary="L'assistant démarre, appel transmis directement")
            return
        cap = self.capacity()
        if self.active >= cap:
            self.refused_busy += 1
            logger.warning("call %s: %d calls in progress (capacity %d); handing the caller "
                           "to a human", session.call_id, self.active, cap)
            await session.handoff(reason="over_capacity",
                                  summary=f"Assistant occupé ({self.active} appels en cours)")
            return
        self.active += 1
        try:
            await self._handler(session)
        finally:
            self.active -= 1
