"""How fast ``twin serve`` hands a call to the secretaries when the assistant cannot take it.

Two cases, over real loopback TCP with the server's own objects
(``telephony.server.AudioSocketServer`` behind ``twin.admission.AdmissionGate``):

* the assistant is still starting (models loading, LLM warm-up);
* the assistant is at capacity (one call held, capacity 1).

Measured: from writing the UUID frame (and one audio frame, as Asterisk does) to
receiving the hangup frame that sends the caller on to the queue.

    .venv/bin/python bench/serve_admission.py --calls 50
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from typing import Any

from telephony.audiosocket import Frame, audio_kind_for, encode, read_frame
from telephony.server import AudioSocketServer
from twin.admission import AdmissionGate


async def _one_call(port: int) -> float:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    t = time.monotonic()
    writer.write(encode(Frame.for_uuid(str(uuid.uuid4())))
                 + encode(Frame(audio_kind_for(8000), bytes(320))))
    await writer.drain()
    while (frame := await read_frame(reader)) is not None and frame.is_audio:
        pass
    took = time.monotonic() - t
    writer.close()
    return took


async def _measure(gate: AdmissionGate, calls: int) -> list[float]:
    server = AudioSocketServer(host="127.0.0.1", port=0, handler=gate, max_calls=calls + 8)
    await server.start()
    try:
        return [await _one_call(server.port) for _ in range(calls)]
    finally:
        await server.stop()


async def main(calls: int) -> None:
    starting = AdmissionGate(max_calls=32)
    times = await _measure(starting, calls)
    _report("assistant starting", times)

    held = asyncio.Event()

    async def hold(session: Any) -> None:  # the one call the assistant can take
        held.set()
        async for _ev in session.events():
            pass

    busy = AdmissionGate(max_calls=32)
    busy.set_handler(hold, capacity=lambda: 1)
    server = AudioSocketServer(host="127.0.0.1", port=0, handler=busy, max_calls=calls + 8)
    await server.start()
    try:
        _r, w = await asyncio.open_connection("127.0.0.1", server.port)
        w.write(encode(Frame.for_uuid(str(uuid.uuid4())))
                + encode(Frame(audio_kind_for(8000), bytes(320))))
        await w.drain()
        await asyncio.wait_for(held.wait(), 10)
        times = [await _one_call(server.port) for _ in range(calls)]
        w.close()
    finally:
        await server.stop()
    _report("over capacity", times)


def _report(what: str, times: list[float]) -> None:
    times = sorted(times)
    p95 = times[max(0, round(0.95 * len(times)) - 1)]
    print(f"{what}: handed off in p50 {statistics.median(times) * 1000:.1f} ms, "
          f"p95 {p95 * 1000:.0f} ms, max {times[-1] * 1000:.0f} ms (n={len(times)})")


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.ERROR)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=50)
    asyncio.run(main(ap.parse_args().calls))
