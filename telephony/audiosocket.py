"""Asterisk AudioSocket wire codec (``res_audiosocket`` / ``app_audiosocket``).

Every message is ``kind (1 byte) | payload length (2 bytes, big-endian) | payload``.
This module only encodes and decodes; the only I/O is :func:`read_frame`, which
reads one message from an ``asyncio.StreamReader``.

Kinds (Asterisk 18+, ``include/asterisk/res_audiosocket.h``):

* ``0x00`` hangup, empty payload
* ``0x01`` the call UUID, 16 raw bytes (sent first by Asterisk)
* ``0x03`` one DTMF digit, one ASCII byte
* ``0x10`` signed linear 16-bit little-endian mono audio at 8 kHz (320 bytes = 20 ms)
* ``0x11``-``0x18`` the same at 12, 16, 24, 32, 44.1, 48, 96 and 192 kHz
* ``0xff`` error, payload: one error-code byte (may be empty on old versions)
"""

from __future__ import annotations

import asyncio
import struct
import uuid as _uuid
from dataclasses import dataclass
from enum import IntEnum

__all__ = [
    "AUDIO_KINDS",
    "DTMF_DIGITS",
    "HEADER_SIZE",
    "MAX_PAYLOAD",
    "Decoder",
    "ErrorCode",
    "Frame",
    "Kind",
    "ProtocolError",
    "audio_frame",
    "audio_kind_for",
    "decode_all",
    "encode",
    "frame_bytes",
    "read_frame",
    "sample_rate_for",
]

HEADER_SIZE = 3
MAX_PAYLOAD = 0xFFFF
DTMF_DIGITS = frozenset("0123456789*#ABCD")


class Kind(IntEnum):
    """The message kind (first byte)."""

    HANGUP = 0x00
    UUID = 0x01
    DTMF = 0x03
    AUDIO = 0x10  # slin, 8 kHz
    AUDIO_12K = 0x11
    AUDIO_16K = 0x12
    AUDIO_24K = 0x13
    AUDIO_32K = 0x14
    AUDIO_44K = 0x15
    AUDIO_48K = 0x16
    AUDIO_96K = 0x17
    AUDIO_192K = 0x18
    ERROR = 0xFF


class ErrorCode(IntEnum):
    """Payload byte of an ``ERROR`` frame (``enum ast_audiosocket_error``)."""

    NONE = 0x00
    HANGUP = 0x01  # the call hung up
    FRAME_FORWARDING = 0x02  # Asterisk could not forward the frame
    MEMORY = 0x04  # memory allocation error


_RATES: dict[Kind, int] = {
    Kind.AUDIO: 8000,
    Kind.AUDIO_12K: 12000,
    Kind.AUDIO_16K: 16000,
    Kind.AUDIO_24K: 24000,
    Kind.AUDIO_32K: 32000,
    Kind.AUDIO_44K: 44100,
    Kind.AUDIO_48K: 48000,
    Kind.AUDIO_96K: 96000,
    Kind.AUDIO_192K: 192000,
}
AUDIO_KINDS = frozenset(_RATES)
_KIND_FOR_RATE = {rate: kind for kind, rate in _RATES.items()}


class ProtocolError(ValueError):
    """The peer sent bytes that are not valid AudioSocket."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One AudioSocket message."""

    kind: Kind
    payload: bytes = b""

    @property
    def is_audio(self) -> bool:
        return self.kind in AUDIO_KINDS

    @property
    def uuid(self) -> _uuid.UUID:
        if self.kind is not Kind.UUID:
            raise ValueError(f"not a UUID frame: {self.kind.name}")
        return _uuid.UUID(bytes=self.payload)

    @property
    def digit(self) -> str:
        if self.kind is not Kind.DTMF:
            raise ValueError(f"not a DTMF frame: {self.kind.name}")
        return self.payload.decode("ascii")

    @property
    def error_code(self) -> int | None:
        if self.kind is not Kind.ERROR:
            raise ValueError(f"not an error frame: {self.kind.name}")
        return self.payload[0] if self.payload else None

    @staticmethod
    def hangup() -> Frame:
        return Frame(Kind.HANGUP)

    @staticmethod
    def for_uuid(value: _uuid.UUID | str) -> Frame:
        u = value if isinstance(value, _uuid.UUID) else _uuid.UUID(str(value))
        return Frame(Kind.UUID, u.bytes)

    @staticmethod
    def dtmf(digit: str) -> Frame:
        return Frame(Kind.DTMF, digit.encode("ascii"))

    @staticmethod
    def error(code: int = ErrorCode.NONE) -> Frame:
        return Frame(Kind.ERROR, bytes([int(code)]))


def sample_rate_for(kind: Kind | int) -> int:
    """Sample rate in Hz of an audio kind; ``ValueError`` for non-audio kinds."""
    try:
        return _RATES[Kind(kind)]
    except (ValueError, KeyError):
        raise ValueError(f"kind 0x{int(kind):02x} does not carry audio") from None


def audio_kind_for(sample_rate: int) -> Kind:
    """The audio kind for a sample rate (8000 -> ``0x10``, 16000 -> ``0x12``...)."""
    try:
        return _KIND_FOR_RATE[int(sample_rate)]
    except KeyError:
        raise ValueError(
            f"AudioSocket has no audio kind for {sample_rate} Hz "
            f"(supported: {sorted(_KIND_FOR_RATE)})"
        ) from None


def frame_bytes(sample_rate: int, ms: int = 20) -> int:
    """Bytes of s16le mono audio for ``ms`` milliseconds (20 ms at 8 kHz = 320)."""
    return sample_rate * ms // 1000 * 2


def audio_frame(pcm: bytes, sample_rate: int = 8000) -> Frame:
    return Frame(audio_kind_for(sample_rate), bytes(pcm))


def _validate(kind: int, payload: bytes) -> Frame:
    try:
        k = Kind(kind)
    except ValueError:
        raise ProtocolError(
            f"unknown AudioSocket kind 0x{kind:02x} (payload {len(payload)} bytes)"
        ) from None
    n = len(payload)
    if k is Kind.HANGUP and n != 0:
        raise ProtocolError(f"hangup frame must be empty, got {n} bytes")
    if k is Kind.UUID and n != 16:
        raise ProtocolError(f"UUID frame must carry 16 bytes, got {n}")
    if k is Kind.DTMF:
        if n != 1:
            raise ProtocolError(f"DTMF frame must carry 1 byte, got {n}")
        if chr(payload[0]) not in DTMF_DIGITS:
            raise ProtocolError(f"DTMF frame carries {payload!r}, not a DTMF digit (0-9 * # A-D)")
    if k in AUDIO_KINDS and n % 2:
        raise ProtocolError(
            f"audio frame 0x{int(k):02x} payload is {n} bytes, not a whole number of "
            "16-bit samples"
        )
    if k is Kind.ERROR and n > 1:
        raise ProtocolError(f"error frame must carry at most 1 code byte, got {n}")
    return Frame(k, bytes(payload))


def encode(frame: Frame) -> bytes:
    """Wire bytes of a frame; ``ProtocolError`` if the frame is not valid."""
    payload = bytes(frame.payload)
    if len(payload) > MAX_PAYLOAD:
        raise ProtocolError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    _validate(int(frame.kind), payload)
    return struct.pack(">BH", int(frame.kind), len(payload)) + payload


class Decoder:
    """Incremental decoder: ``feed(data)`` returns the complete frames so far.

    After a ``ProtocolError`` the stream is out of sync and the decoder refuses
    further input. ``close()`` checks that no partial frame is left over.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._broken = False

    @property
    def pending(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[Frame]:
        if self._broken:
            raise ProtocolError("decoder already failed; the stream is out of sync")
        self._buf += data
        frames: list[Frame] = []
        while len(self._buf) >= HEADER_SIZE:
            kind, length = struct.unpack_from(">BH", self._buf)
            if len(self._buf) < HEADER_SIZE + length:
                break
            payload = bytes(self._buf[HEADER_SIZE : HEADER_SIZE + length])
            try:
                frame = _validate(kind, payload)
            except ProtocolError:
                self._broken = True
                raise
            del self._buf[: HEADER_SIZE + length]
            frames.append(frame)
        return frames

    def close(self) -> None:
        """End of stream: raise if a partial frame is left."""
        if self._buf:
            buf = bytes(self._buf)
            self._buf.clear()
            if len(buf) < HEADER_SIZE:
                raise ProtocolError(f"stream ended inside a frame header ({len(buf)} of 3 bytes)")
            raise ProtocolError(_truncated_message(buf[:HEADER_SIZE], len(buf)))


def _truncated_message(header: bytes, have: int) -> str:
    kind, length = struct.unpack(">BH", header)
    return (
        f"length field says {length} bytes for kind 0x{kind:02x} but only "
        f"{have - HEADER_SIZE} arrived before the stream ended"
    )


def decode_all(data: bytes) -> list[Frame]:
    """Decode a complete byte string (raises on any trailing partial frame)."""
    dec = Decoder()
    frames = dec.feed(data)
    dec.close()
    return frames


async def read_frame(reader: asyncio.StreamReader) -> Frame | None:
    """Read one frame; ``None`` on a clean end of stream (between frames)."""
    try:
        header = await reader.readexactly(HEADER_SIZE)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise ProtocolError(
            f"stream ended inside a frame header ({len(exc.partial)} of 3 bytes)"
        ) from None
    kind, length = struct.unpack(">BH", header)
    try:
        payload = await reader.readexactly(length) if length else b""
    except asyncio.IncompleteReadError as exc:
        raise ProtocolError(_truncated_message(header, HEADER_SIZE + len(exc.partial))) from None
    return _validate(kind, payload)
