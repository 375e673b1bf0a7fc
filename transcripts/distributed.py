"""Transcribing many calls: a local process pool or a Ray cluster, driven from one place.

Both backends hold one loaded Whisper model per worker (a process, or a Ray actor) and
yield :class:`JobResult` s as calls finish, in any order; the driver
(:func:`transcripts.ingest.transcribe_pending`) writes each result to the store as it
arrives, so an interrupted run loses at most the calls in flight.

- :class:`InlineBackend`: one worker in this process (no start-up cost; ``--workers 1``).
- :class:`ProcessPoolBackend`: ``workers`` processes (spawned), each with
  ``cores // workers`` CTranslate2 threads, so workers x threads <= cores.
- :class:`RayBackend`: ``ray.init(address)`` — ``local`` starts a private cluster on this
  machine, ``auto`` joins the cluster this node belongs to, ``ray://host:10001`` a remote
  one. Each actor loads the model once; the driver sends the recording's bytes (so the
  nodes need no shared file system, only the project and the Whisper model installed at
  the same path: ``twin models install whisper-base`` on each node).
"""

from __future__ import annotations

import logging
import multiprocessing
import traceback
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from transcripts.audio import AudioError
from transcripts.transcribe import (
    CallTranscriber,
    CallTranscript,
    TranscribeConfig,
    default_threads,
)

__all__ = [
    "InlineBackend",
    "JobResult",
    "ProcessPoolBackend",
    "RayBackend",
    "TranscribeJob",
    "TranscriptionBackend",
    "make_backend",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TranscribeJob:
    call_id: int
    audio_path: str
    channel_roles: tuple[str, ...] = ()
    duration_s: float = 0.0


@dataclass
class JobResult:
    job: TranscribeJob
    transcript: CallTranscript | None = None
    error: str | None = None
    worker: str = field(default="")


class TranscriptionBackend(Protocol):
    """Where calls are transcribed. ``start()`` loads the models; ``run()`` yields results
    as calls finish; ``close()`` releases the workers (also after an interruption)."""

    workers: int

    def start(self) -> None: ...

    def run(self, jobs: Iterable[TranscribeJob]) -> Iterator[JobResult]: ...

    def close(self) -> None: ...


def _run_job(transcriber: CallTranscriber, job: TranscribeJob, source: str | bytes,
             worker: str) -> JobResult:
    try:
        transcript = transcriber.transcribe_file(source, channel_roles=job.channel_roles or None)
        return JobResult(job=job, transcript=transcript, worker=worker)
    except AudioError as exc:
        return JobResult(job=job, error=f"audio: {exc}", worker=worker)
    except FileNotFoundError as exc:
        return JobResult(job=job, error=f"recording not found: {exc.filename}", worker=worker)
    except Exception as exc:  # one bad call must not stop the batch
        logger.debug("transcription failed: %s", traceback.format_exc())
        return JobResult(job=job, error=f"{type(exc).__name__}: {exc}", worker=worker)


class InlineBackend:
    """One transcriber in this process."""

    def __init__(self, *, model_dir: Path, config: TranscribeConfig, cpu_threads: int = 0) -> None:
        self.workers = 1
        self._transcriber = CallTranscriber(model_dir=model_dir, config=config,
                                            cpu_threads=cpu_threads or default_threads(1))

    def start(self) -> None:
        self._transcriber.load()

    def run(self, jobs: Iterable[TranscribeJob]) -> Iterator[JobResult]:
        for job in jobs:
            yield _run_job(self._transcriber, job, job.audio_path, "inline")

    def close(self) -> None:
        return None


# --- process pool -----------------------------------------------------------------------

_WORKER: CallTranscriber | None = None


def _pool_init(model_dir: str, config: TranscribeConfig, threads: int) -> None:
    global _WORKER
    _WORKER = CallTranscriber(model_dir=Path(model_dir), config=config, cpu_threads=threads)
    _WORKER.load()


def _pool_run(job: TranscribeJob) -> JobResult:
    if _WORKER is None:  # pragma: no cover - the initializer always runs first
        raise RuntimeError("worker not initialised")
    return _run_job(_WORKER, job, job.audio_path, f"pid-{multiprocessing.current_process().pid}")


class ProcessPoolBackend:
    """``workers`` spawned processes, each loading the model once."""

    def __init__(self, *, model_dir: Path, config: TranscribeConfig, workers: int,
                 cpu_threads: int = 0) -> None:
        self.workers = max(1, workers)
        self._model_dir = model_dir
        self._config = config
        self._threads = cpu_threads or default_threads(self.workers)
        self._pool: ProcessPoolExecutor | None = None

    def start(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._pool = ProcessPoolExecutor(
            max_workers=self.workers, mp_context=ctx, initializer=_pool_init,
            initargs=(str(self._model_dir), self._config, self._threads))

    def run(self, jobs: Iterable[TranscribeJob]) -> Iterator[JobResult]:
        if self._pool is None:
            raise RuntimeError("ProcessPoolBackend.start() was not called")
        pending = iter(jobs)
        running: dict[Future[JobResult], TranscribeJob] = {}

        def fill() -> None:
            assert self._pool is not None
            while len(running) < self.workers * 2:
                job = next(pending, None)
                if job is None:
                    return
                running[self._pool.submit(_pool_run, job)] = job

        fill()
        while running:
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for fut in done:
                job = running.pop(fut)
                try:
                    yield fut.result()
                except Exception as exc:  # a worker died (e.g. killed for memory)
                    yield JobResult(job=job, error=f"worker failed: {type(exc).__name__}: {exc}")
            fill()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


# --- Ray --------------------------------------------------------------------------------


def _ray() -> Any:
    try:
        import ray
    except ModuleNotFoundError as exc:  # pragma: no cover - install hint
        raise ImportError("--ray-address needs Ray: pip install -e '.[transcripts]'") from exc
    return ray


class _RayWorker:
    """The body of a Ray actor (wrapped with ``ray.remote`` at start-up)."""

    def __init__(self, model_dir: str, config: TranscribeConfig, threads: int) -> None:
        self._transcriber = CallTranscriber(model_dir=Path(model_dir), config=config,
                                            cpu_threads=threads)

    def load(self) -> str:
        import socket

        self._transcriber.load()
        return socket.gethostname()

    def transcribe(self, job: TranscribeJob, data: bytes) -> JobResult:
        import os
        import socket

        return _run_job(self._transcriber, job, data, f"{socket.gethostname()}-{os.getpid()}")


class RayBackend:
    """Ray actors, each holding a loaded model; results come back to the driver."""

    def __init__(self, *, address: str, model_dir: Path, config: TranscribeConfig,
                 workers: int = 0, cpu_threads: int = 0, num_cpus: int | None = None) -> None:
        self.address = address
        self.workers = workers
        self._model_dir = model_dir
        self._config = config
        self._threads = cpu_threads
        self._num_cpus = num_cpus
        self._actors: list[Any] = []
        self._started_ray = False

    def start(self) -> None:
        ray = _ray()
        if not ray.is_initialized():
            if self.address == "local":
                ray.init(num_cpus=self._num_cpus, include_dashboard=False,
                         log_to_driver=False, configure_logging=False)
            else:
                ray.init(address=self.address, log_to_driver=False, configure_logging=False)
            self._started_ray = True
        cpus = int(ray.cluster_resources().get("CPU", 1))
        threads = self._threads or (max(1, cpus // self.workers) if self.workers else 1)
        count = self.workers or max(1, cpus // threads)
        self.workers = count
        actor_cls = ray.remote(num_cpus=threads)(_RayWorker)
        self._actors = [actor_cls.remote(str(self._model_dir), self._config, threads)
                        for _ in range(count)]
        hosts = ray.get([a.load.remote() for a in self._actors])
        logger.info("Ray: %d actors x %d threads on %s", count, threads, ", ".join(sorted(set(hosts))))

    def run(self, jobs: Iterable[TranscribeJob]) -> Iterator[JobResult]:
        ray = _ray()
        if not self._actors:
            raise RuntimeError("RayBackend.start() was not called")
        pending = iter(jobs)
        idle = list(self._actors)
        running: dict[Any, tuple[Any, TranscribeJob]] = {}

        def fill() -> Iterator[JobResult]:
            while idle:
                job = next(pending, None)
                if job is None:
                    return
                try:
                    data = Path(job.audio_path).read_bytes()
                except OSError as exc:
                    yield JobResult(job=job, error=f"recording not readable: {exc}")
                    continue
                actor = idle.pop()
                running[actor.transcribe.remote(job, data)] = (actor, job)

        yield from fill()
        while running:
            done, _ = ray.wait(list(running), num_returns=1)
            for ref in done:
                actor, job = running.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as exc:  # an actor or node died: the actor is not reused
                    result = JobResult(job=job, error=f"Ray task failed: {type(exc).__name__}: {exc}")
                else:
                    idle.append(actor)
                yield result
            yield from fill()

    def close(self) -> None:
        ray = _ray()
        for actor in self._actors:
            try:
                ray.kill(actor)
            except Exception:  # pragma: no cover - already gone
                pass
        self._actors = []
        if self._started_ray and ray.is_initialized():
            ray.shutdown()
            self._started_ray = False


def make_backend(*, model_dir: Path, config: TranscribeConfig, workers: int = 1,
                 ray_address: str | None = None, cpu_threads: int = 0) -> TranscriptionBackend:
    """The backend for ``--workers`` / ``--ray-address``."""
    if ray_address:
        return RayBackend(address=ray_address, model_dir=model_dir, config=config,
                          workers=workers if workers > 1 else 0, cpu_threads=cpu_threads)
    if workers <= 1:
        return InlineBackend(model_dir=model_dir, config=config, cpu_threads=cpu_threads)
    return ProcessPoolBackend(model_dir=model_dir, config=config, workers=workers,
                              cpu_threads=cpu_threads)
