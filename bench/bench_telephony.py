"""Benchmark of the AudioSocket edge: N simultaneous calls through the real server.

    .venv/bin/python bench/bench_telephony.py                  # 8 and 32 calls, 8 kHz
    .venv/bin/python bench/bench_telephony.py --calls 64 --seconds 10 --rate 16000

Each call is a real TCP client playing Asterisk: it sends a 20 ms frame every 20 ms
(paced like a phone line), the server's handler echoes the audio through
``CallSession.send_audio`` (paced output with backpressure). Prints, over all calls:
echo round trip (frame sent -> same payload back; includes the session's pacing
queue), gaps between frames received from the server (Asterisk hangs up after 2 s
without frames), and CPU time per call-second. Client and server share one process
and event loop, so the numbers are pessimistic for the server.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import struct
import time
import uuid

from telephony.audiosocket import Frame, audio_kind_for, encode, frame_bytes, read_frame
from telephony.server import AudioSocketServer
from telephony.session import AudioIn, CallSession, Hangup


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


async def echo(session: CallSession) -> None:
    async for ev in session.events():
        if isinstance(ev, AudioIn):
            await session.send_audio(ev.pcm)
        elif isinstance(ev, Hangup):
            break


async def one_call(port: int, seconds: float, rate: int, rtts: list[float],
                   gaps: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(encode(Frame.for_uuid(uuid.uuid4())))
    n = frame_bytes(rate)
    kind = audio_kind_for(rate)
    sent: dict[int, float] = {}
    loop = asyncio.get_running_loop()
    done = asyncio.Event()

    async def receive() -> None:
        last = None
        while not done.is_set():
            f = await read_frame(reader)
            if f is None:
                return
            now = loop.time()
            if last is not None:
                gaps.append(now - last)
            last = now
            seq = struct.unpack_from("<I", f.payload)[0] if f.payload[4:8] == b"SEQ!" else None
            if seq is not None and seq in sent:
                rtts.append(now - sent.pop(seq))

    rx = asyncio.create_task(receive())
    t = loop.time()
    for seq in range(int(seconds / 0.02)):
        payload = struct.pack("<I", seq) + b"SEQ!" + b"\x01\x02" * ((n - 8) // 2)
        sent[seq] = loop.time()
        writer.write(encode(Frame(kind, payload)))
        await writer.drain()
        t += 0.02
        await asyncio.sleep(max(0.0, t - loop.time()))
    writer.write(encode(Frame.hangup()))
    await writer.drain()
    await asyncio.sleep(0.3)
    done.set()
    rx.cancel()
    writer.close()


async def run(calls: int, seconds: float, rate: int) -> None:
    server = AudioSocketServer(host="127.0.0.1", port=0, handler=echo, max_calls=calls + 1)
    await server.start()
    rtts: list[float] = []
    gaps: list[float] = []
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.monotonic()
    await asyncio.gather(*(one_call(server.port, seconds, rate, rtts, gaps) for _ in range(calls)))
    wall = time.monotonic() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    await server.stop()
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    print(f"{calls:3d} calls x {seconds:.0f} s @ {rate} Hz: "
          f"echo RTT p50 {pct(rtts, .5) * 1000:6.1f} ms p95 {pct(rtts, .95) * 1000:6.1f} ms | "
          f"frame gap p50 {pct(gaps, .5) * 1000:5.1f} ms p95 {pct(gaps, .95) * 1000:5.1f} ms "
          f"max {max(gaps) * 1000:6.1f} ms | echoed {len(rtts)}/{calls * int(seconds / 0.02)} | "
          f"CPU {cpu / (calls * wall) * 100:.2f} % of a core per call "
          f"(mean gap {statistics.fmean(gaps) * 1000:.1f} ms)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, nargs="*", default=[8, 32])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rate", type=int, default=8000, choices=[8000, 16000])
    args = ap.parse_args()
    for n in args.calls:
        asyncio.run(run(n, args.seconds, args.rate))


if __name__ == "__main__":
    main()
