"""Byte-exact AudioSocket codec tests against hand-built wire bytes."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from telephony.audiosocket import (
    Decoder,
    Frame,
    Kind,
    ProtocolError,
    audio_kind_for,
    decode_all,
    encode,
    frame_bytes,
    read_frame,
    sample_rate_for,
)

CALL = uuid.UUID("0b3e6a4c-2f1d-4c59-9a7e-1d2c3b4a5f60")


def test_encode_hangup_uuid_dtmf_error_are_byte_exact() -> None:
    assert encode(Frame.hangup()) == b"\x00\x00\x00"
    assert encode(Frame.for_uuid(CALL)) == (
        b"\x01\x00\x10" + bytes.fromhex("0b3e6a4c2f1d4c599a7e1d2c3b4a5f60"))
    assert encode(Frame.dtmf("5")) == b"\x03\x00\x015"
    assert encode(Frame.dtmf("#")) == b"\x03\x00\x01#"
    assert encode(Frame.error(1)) == b"\xff\x00\x01\x01"


def test_encode_audio_8k_and_16k_headers() -> None:
    pcm8 = bytes(range(256)) + bytes(64)  # 320 bytes = 20 ms at 8 kHz
    assert encode(Frame(Kind.AUDIO, pcm8)) == b"\x10\x01\x40" + pcm8
    pcm16 = b"\x01\x02" * 320  # 640 bytes = 20 ms at 16 kHz
    assert encode(Frame(Kind.AUDIO_16K, pcm16)) == b"\x12\x02\x80" + pcm16
    assert frame_bytes(8000) == 320 and frame_bytes(16000) == 640


def test_sample_rates_of_every_audio_kind() -> None:
    expected = {0x10: 8000, 0x11: 12000, 0x12: 16000, 0x13: 24000, 0x14: 32000,
                0x15: 44100, 0x16: 48000, 0x17: 96000, 0x18: 192000}
    for kind, rate in expected.items():
        assert sample_rate_for(kind) == rate
        assert audio_kind_for(rate) == kind
    with pytest.raises(ValueError, match="does not carry audio"):
        sample_rate_for(Kind.DTMF)
    with pytest.raises(ValueError, match="no audio kind for 11025"):
        audio_kind_for(11025)


def test_decoder_is_incremental_byte_by_byte() -> None:
    wire = (b"\x01\x00\x10" + CALL.bytes + b"\x10\x00\x04\x01\x00\xff\x7f"
            + b"\x03\x00\x010" + b"\x00\x00\x00")
    dec = Decoder()
    frames: list[Frame] = []
    for i in range(len(wire)):
        frames += dec.feed(wire[i : i + 1])
    dec.close()
    assert frames == [Frame(Kind.UUID, CALL.bytes), Frame(Kind.AUDIO, b"\x01\x00\xff\x7f"),
                      Frame(Kind.DTMF, b"0"), Frame(Kind.HANGUP)]
    assert frames[0].uuid == CALL and frames[2].digit == "0"
    assert decode_all(b"".join(encode(f) for f in frames)) == frames


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        (b"\x07\x00\x00", "unknown AudioSocket kind 0x07"),
        (b"\x02\x00\x01x", "unknown AudioSocket kind 0x02"),
        (b"\x01\x00\x04abcd", "UUID frame must carry 16 bytes, got 4"),
        (b"\x03\x00\x0212", "DTMF frame must carry 1 byte, got 2"),
        (b"\x03\x00\x01x", "not a DTMF digit"),
        (b"\x03\x00\x00", "DTMF frame must carry 1 byte, got 0"),
        (b"\x00\x00\x01\x00", "hangup frame must be empty, got 1"),
        (b"\x10\x00\x03abc", "not a whole number of 16-bit samples"),
        (b"\x12\x00\x01a", "payload is 1 bytes"),
        (b"\xff\x00\x02ab", "error frame must carry at most 1 code byte"),
    ],
)
def test_bad_frames_give_clear_errors(wire: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        decode_all(wire)


def test_truncated_stream_errors() -> None:
    with pytest.raises(ProtocolError, match=r"length field says 320 bytes .* only 4 arrived"):
        decode_all(b"\x10\x01\x40abcd")
    with pytest.raises(ProtocolError, match="inside a frame header"):
        decode_all(b"\x10\x01")


def test_decoder_refuses_input_after_an_error() -> None:
    dec = Decoder()
    with pytest.raises(ProtocolError):
        dec.feed(b"\x42\x00\x00")
    with pytest.raises(ProtocolError, match="out of sync"):
        dec.feed(b"\x00\x00\x00")


def test_encode_rejects_invalid_frames() -> None:
    with pytest.raises(ProtocolError, match="16 bytes"):
        encode(Frame(Kind.UUID, b"short"))
    with pytest.raises(ProtocolError, match="exceeds"):
        encode(Frame(Kind.AUDIO, b"\x00" * 70000))


def _reader(data: bytes) -> asyncio.StreamReader:
    r = asyncio.StreamReader()
    r.feed_data(data)
    r.feed_eof()
    return r


async def test_read_frame_clean_eof_and_truncation() -> None:
    r = _reader(b"\x03\x00\x01*")
    assert await read_frame(r) == Frame(Kind.DTMF, b"*")
    assert await read_frame(r) is None
    with pytest.raises(ProtocolError, match="length field says 640 bytes for kind 0x12 but only 2"):
        await read_frame(_reader(b"\x12\x02\x80ab"))
    with pytest.raises(ProtocolError, match=r"inside a frame header \(1 of 3"):
        await read_frame(_reader(b"\x10"))
    with pytest.raises(ProtocolError, match="unknown AudioSocket kind 0x20"):
        await read_frame(_reader(b"\x20\x00\x00"))
