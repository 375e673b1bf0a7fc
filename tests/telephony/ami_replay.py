"""A real TCP server that replays recorded AMI transcripts (one script per connection).

A transcript is YAML: ``steps`` of

* ``banner: "Asterisk Call Manager/9.0.0"`` - one line, CRLF;
* ``expect: {Action: Setvar, Variable: X}`` - read one client message (up to the blank
  line) and check those fields (case-insensitive keys); its ``ActionID`` is kept
  for ``{ActionID}`` in later ``send`` steps;
* ``send: |`` - one AMI message written as ``Key: Value`` lines; sent with CRLF line
  ends and the terminating blank line (the wire format), ``{ActionID}`` substituted;
* ``raw: "..."`` - exact bytes (Python escapes), for garbage and partial lines;
* ``sleep: 0.1`` and ``close: true``.

Everything the client sent is kept byte for byte in ``received``.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

FIXTURES = Path(__file__).parent / "fixtures"


def load_script(name: str) -> list[dict[str, Any]]:
    data = yaml.safe_load((FIXTURES / name).read_text(encoding="utf-8"))
    return list(data["steps"])


def wire(block: str) -> bytes:
    lines = [ln for ln in block.strip("\n").split("\n")]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


@dataclass
class AmiReplayServer:
    scripts: list[list[dict[str, Any]]]
    received: list[bytes] = field(default_factory=list)  # per connection
    failures: list[str] = field(default_factory=list)
    connections: int = 0
    _server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = self.connections
        self.connections += 1
        self.received.append(b"")
        script = self.scripts[index] if index < len(self.scripts) else [{"close": True}]
        action_id = ""
        try:
            for step in script:
                if "banner" in step:
                    writer.write(step["banner"].encode() + b"\r\n")
                elif "send" in step:
                    writer.write(wire(step["send"].replace("{ActionID}", action_id)))
                elif "raw" in step:
                    writer.write(step["raw"].encode("latin-1").decode("unicode_escape")
                                 .encode("latin-1"))
                elif "sleep" in step:
                    await writer.drain()
                    await asyncio.sleep(float(step["sleep"]))
                elif "close" in step:
                    await writer.drain()
                    break
                elif "expect" in step:
                    await writer.drain()
                    raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
                    self.received[index] += raw
                    fields = {}
                    for line in raw.decode().split("\r\n"):
                        if ": " in line:
                            k, v = line.split(": ", 1)
                            fields.setdefault(k.lower(), v)
                    for k, v in step["expect"].items():
                        if fields.get(k.lower()) != str(v):
                            self.failures.append(
                                f"conn {index}: expected {k}: {v}, got {fields.get(k.lower())!r}")
                    action_id = fields.get("actionid", "")
            else:
                await writer.drain()
                with contextlib.suppress(Exception, asyncio.CancelledError):  # script done: idle until the client goes
                    while await reader.read(4096):
                        pass
        except asyncio.CancelledError:  # event loop shutting down
            pass
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError) as exc:
            self.failures.append(f"conn {index}: {type(exc).__name__}: {exc}")
        finally:
            with contextlib.suppress(Exception):
                writer.close()
