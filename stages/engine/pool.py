"""The worker processes that train a stage's shards on this machine, kept between stages.

One TensorFlow process keeps about 1.3 of this machine's 2 cores busy (its compiled epochs are many
tiny ops; see the README's "Budget"), so two worker processes train a family faster than the stage's
own process does. Their cost is TensorFlow's import: ~8 s of CPU in each. A ``dvc repro`` runs many
train stages one after the other, so the workers outlive a stage: a *pool server* (this module run as
a program) owns them, and each stage sends it shards over a Unix socket and gets the results back.

- **Which server.** A stage uses the server whose key matches it: this project's directory, the hash of
  its code (``stages/**/*.py``), the Python, the numerics TensorFlow fixes when it loads (oneDNN, op
  determinism, threads), the worker count and the environment variables TensorFlow reads. Anything else
  starts a new server, so a kept worker never trains with other code or other numerics. Keras models
  are rebuilt per shard from the trial's seed, so a shard gives the same bits in a kept worker as in a
  fresh one (``tests/test_pipeline.py``).
- **How long.** ``TRAINLAB_KEEP_WORKERS`` seconds after its last shard (default 60: the gap between two
  stages of one ``dvc repro`` is a few seconds). ``0`` ties the server to the stage that started it: it
  stops when that stage exits or dies, as a plain process pool would.
- **A stage that dies mid-shard** (Ctrl-C, SIGKILL) closes its connection: the server then kills its
  workers and itself, so nothing trains on for nobody. The next stage starts a fresh server.
- Where the server writes: ``$TMPDIR/trainlab-<uid>/`` (mode 700): its socket, its key file and its log.

This module loads no TensorFlow, so a stage starts (or finds) the server before its own imports.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import io
import json
import multiprocessing
import os
import pickle
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from multiprocessing.connection import Client, Connection, Listener, wait
from pathlib import Path

from stages import runtime as rt
from stages.engine.trial import Shard, TrialResult, train_shard
from stages.warm import code_hash, exit_with_parent, server_folder

KEEP_VARIABLE = "TRAINLAB_KEEP_WORKERS"
DEFAULT_KEEP = 60.0
_ENVIRONMENT_PREFIXES = ("TF_", "KERAS_", "OMP_", "MKL_", "PYTHONHASHSEED", "CUDA_")


def keep_seconds(environ: Mapping[str, str] | None = None) -> float:
    """How long a pool server waits for another shard: ``TRAINLAB_KEEP_WORKERS`` (seconds, ≥ 0)."""
    raw = (os.environ if environ is None else environ).get(KEEP_VARIABLE, "").strip()
    if not raw:
        return DEFAULT_KEEP
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise rt.PlacementError(f"{KEEP_VARIABLE}: expected seconds ≥ 0 (0: workers stop with their stage), "
                                f"got {raw!r}")
    return value


@dataclass(frozen=True)
class Server:
    """Where a pool server listens (its socket) and the secret a client proves it may use it with."""

    key: str
    folder: Path

    @property
    def socket(self) -> str:
        return str(self.folder / f"{self.key}.sock")

    @property
    def authkey_file(self) -> Path:
        return self.folder / f"{self.key}.key"

    @property
    def log(self) -> Path:
        return self.folder / f"{self.key}.log"

    @property
    def pid_file(self) -> Path:
        return self.folder / f"{self.key}.pid"

    def connect(self) -> Connection:
        return Client(self.socket, family="AF_UNIX", authkey=self.authkey_file.read_bytes())

    def pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text())
        except (OSError, ValueError):
            return None


def server_for(runtime: Mapping, placement: rt.Placement, keep: float) -> Server:
    """The server this stage may use: same project, code, Python, numerics, workers and environment."""
    from stages.params import project_root

    root = project_root()
    rt.set_environment(runtime)  # before reading the environment: the workers inherit these variables
    fixed = {"root": str(root), "code": code_hash(root), "python": sys.executable,
             "onednn": bool(runtime["onednn"]), "deterministic_ops": bool(runtime["deterministic_ops"]),
             "workers": placement.worker_count(), "threads": placement.worker_threads(), "path": sys.path,
             "bound_to": os.getpid() if keep == 0 else None,
             "environment": sorted((k, v) for k, v in os.environ.items() if k.startswith(_ENVIRONMENT_PREFIXES))}
    key = hashlib.sha256(json.dumps(fixed, sort_keys=True).encode()).hexdigest()[:20]
    return Server(key, server_folder())


def _request(function: Callable | None, args: tuple = ()) -> bytes:
    """A request as the server reads it: the stage's main module (as ``python -m`` named it: builders defined
    there pickle as ``__main__.<name>``, which the server imports under that name) and the pickled call."""
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    return pickle.dumps((spec.name if spec else None, pickle.dumps((function, args))))


class _StageUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, main: str | None) -> None:
        super().__init__(io.BytesIO(data))
        self.main = main

    def find_class(self, module: str, name: str):
        return super().find_class(self.main if module == "__main__" and self.main else module, name)


def _answers(server: Server) -> bool:
    try:
        with server.connect() as conn:
            conn.send_bytes(_request(None))  # a ping
            return conn.recv() == "pong"
    except (OSError, EOFError, ValueError):  # no socket, nobody listening, or a key file being rewritten
        return False


def ensure_server(runtime: Mapping, placement: rt.Placement, keep: float | None = None) -> Server:
    """Find this stage's pool server, or start it (detached; its workers start importing TensorFlow now)."""
    keep = keep_seconds() if keep is None else keep
    server = server_for(runtime, placement, keep)
    with open(server.folder / f"{server.key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two stages starting at once start one server
        if _answers(server):
            return server
        with contextlib.suppress(FileNotFoundError):
            os.unlink(server.socket)
        server.authkey_file.touch(mode=0o600)
        server.authkey_file.write_bytes(secrets.token_bytes(32))
        spec = {"socket": server.socket, "authkey_file": str(server.authkey_file), "pid_file": str(server.pid_file),
                "runtime": dict(runtime), "workers": placement.worker_count(), "threads": placement.worker_threads(),
                "keep": keep, "parent": os.getpid() if keep == 0 else None, "path": sys.path}
        with open(server.log, "ab") as log:
            process = subprocess.Popen([sys.executable, "-m", "stages.engine.pool", json.dumps(spec)],
                                       stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                                       cwd=os.getcwd(), env=os.environ.copy())
        deadline = time.monotonic() + 120
        while not _answers(server):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the worker pool server did not start (exit {process.poll()}); "
                                   f"its log: {server.log}")
            time.sleep(0.05)
        if keep == 0:
            atexit.register(stop_server, server)
        return server


def stop_server(server: Server) -> None:
    """Stop a pool server and its workers (by the process id it wrote)."""
    pid = server.pid()
    if pid is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)  # its session: the server and its workers


def train_shards(shards: Sequence[Shard], placement: rt.Placement) -> Iterator[tuple[Shard, list[TrialResult]]]:
    """Send every shard to this stage's pool server, in the order given; yield each with its results as
    they come back."""
    if not shards:
        return
    server = ensure_server(shards[0].runtime, placement)
    open_shards: dict[Connection, Shard] = {}
    try:
        for shard in shards:
            conn = server.connect()
            conn.send_bytes(_request(train_shard, (shard,)))
            open_shards[conn] = shard
        while open_shards:
            for conn in wait(list(open_shards)):
                shard = open_shards.pop(conn)
                try:
                    status, value = conn.recv()
                except EOFError:
                    raise RuntimeError(f"the pool server stopped while training; its log: {server.log}") from None
                finally:
                    conn.close()
                if status == "error":
                    raise value
                yield shard, value
    finally:
        for conn in open_shards:
            conn.close()


def start_workers(settings: Mapping, cfg: Mapping) -> None:
    """Where training runs in a process pool, find or start its server now (call this first in a stage):
    its workers' TensorFlow imports then overlap the stage's own work."""
    where = rt.placement()
    if where.trains_in_pool:
        ensure_server(rt.flags(settings, cfg), where)


# -- the server ---------------------------------------------------------------------------------


def _worker_init(runtime: Mapping, threads: int, parent: int) -> None:
    exit_with_parent(parent)
    rt.apply_once(runtime, threads)


class _Serving:
    """The server's state: its workers, and when it last had work (for the idle timeout)."""

    def __init__(self, spec: Mapping) -> None:
        self.spec = spec
        self.lock = threading.Lock()
        self.active = 0
        self.last = time.monotonic()
        self.pool = ProcessPoolExecutor(max_workers=spec["workers"], mp_context=multiprocessing.get_context("spawn"),
                                        initializer=_worker_init,
                                        initargs=(spec["runtime"], spec["threads"], os.getpid()))
        for _ in range(spec["workers"]):  # spawn every worker now: TensorFlow loads while the stage gets ready
            self.pool.submit(os.getpid)

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.spec["socket"])
        os.killpg(os.getpgid(0), signal.SIGKILL)  # this server and its workers

    def watch_idle(self) -> None:
        while True:
            time.sleep(0.5)
            with self.lock:
                idle = self.active == 0 and time.monotonic() - self.last > self.spec["keep"]
            if idle and self.spec["parent"] is None:
                self.stop()

    def handle(self, conn: Connection) -> None:
        with self.lock:
            self.active += 1
        try:
            try:
                main, call = pickle.loads(conn.recv_bytes())
                function, args = _StageUnpickler(call, main).load()
            except (EOFError, OSError):
                return
            except Exception as err:  # e.g. a module the stage can import and this server cannot
                conn.send(("error", RuntimeError(f"the worker pool server cannot read the shard: {err!r}")))
                return
            if function is None:
                conn.send("pong")
                return
            future = self.pool.submit(function, *args)
            while True:
                try:
                    result = ("ok", future.result(timeout=0.5))
                    break
                except FutureTimeout:
                    if conn.poll(0):  # the stage closed its end mid-shard (it died): stop rather than train for nobody
                        self.stop()
                except Exception as err:  # the shard's own error goes back to the stage
                    result = ("error", err)
                    break
            try:
                conn.send(result)
            except (EOFError, OSError):
                raise
            except Exception as err:  # a result or error that does not pickle
                conn.send(("error", RuntimeError(f"the shard's {result[0]} cannot be sent back: {err!r}")))
        except (EOFError, OSError):
            pass
        finally:
            conn.close()
            with self.lock:
                self.active -= 1
                self.last = time.monotonic()
            if getattr(self.pool, "_broken", False):  # a worker died: the next stage gets a fresh server
                self.stop()


def serve(spec: Mapping) -> None:
    """Run a pool server (``ensure_server`` starts it): accept shards until idle for ``keep`` seconds."""
    if spec["parent"] is not None:
        exit_with_parent(spec["parent"])
    sys.path[:] = spec["path"]  # the stage's: where its trials' builders are imported from (its workers inherit it)
    listener = Listener(spec["socket"], family="AF_UNIX", authkey=Path(spec["authkey_file"]).read_bytes())
    Path(spec["pid_file"]).write_text(str(os.getpid()))
    state = _Serving(spec)
    threading.Thread(target=state.watch_idle, daemon=True).start()
    while True:
        try:
            conn = listener.accept()
        except (OSError, EOFError, multiprocessing.AuthenticationError):
            continue
        threading.Thread(target=state.handle, args=(conn,), daemon=True).start()


def run_shards(shards: Sequence[Shard], placement: rt.Placement,
               done: Callable[[Shard], None]) -> list[TrialResult]:
    """Every shard's results (in the order they finish), calling ``done`` as each comes back."""
    results: list[TrialResult] = []
    for shard, value in train_shards(shards, placement):
        results += value
        done(shard)
    return results


if __name__ == "__main__":
    serve(json.loads(sys.argv[1]))
