"""A warm Python for the pipeline's stages: what every stage imports, imported once per ``dvc repro``.

A stage process spends ~9 s of CPU on this box importing pandas, SciPy, MLflow's SQL store, matplotlib
and this package before it does anything, and a ``dvc repro`` starts 19 of them. So the first stage
starts a *stage server* (this module run as a program: detached, its log and socket next to the worker
pool's in ``$TMPDIR/trainlab-<uid>/``) that imports all that once (never TensorFlow: it forks). A later
stage command, ``python -m stages.<stage> ...``, then hands itself over before its own imports:

- it sends the server its arguments, working directory, environment and its stdin/stdout/stderr;
- the server forks a child that *becomes* that stage: same arguments, directory, environment and
  output streams, the module run as ``__main__``; the child's exit code is the command's exit code;
- Ctrl-C and SIGTERM sent to the command are passed to the child; if the command dies, the child sees
  its connection close and exits (its worker pool then stops, as for any stage that dies).

Which server: the project directory, the hash of its code, the Python and ``sys.path``, and the environment
variables the server's imports may read (``_READ_AT_IMPORT``: threads, locale, MLflow, TensorFlow,
``TRAINLAB_*``), so a stage never runs on imports made under other code or settings; the child itself gets
the command's whole environment. Without a warm server
the command simply runs in its own process (and starts one for the next stage). ``TRAINLAB_KEEP_WORKERS``
(seconds; default 60) is how long the server waits for another stage; ``0`` turns the stage server off.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import hashlib
import json
import os
import pickle
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

# what the preloaded libraries may read when they load (threads, locale, config folders, MLflow and TensorFlow
# settings); the rest of a command's environment (DVC's, pytest's, the shell's) is only the child's own
_READ_AT_IMPORT = ("PYTHON", "MPL", "MLFLOW_", "OMP_", "MKL_", "OPENBLAS_", "NUMEXPR_", "ARROW_", "PANDAS_",
                   "SQLALCHEMY_", "TF_", "KERAS_", "TRAINLAB_", "LANG", "LC_", "HOME", "TMPDIR", "TZ", "XDG_")
_PRELOAD = ("pandas", "pyarrow.parquet", "scipy.stats", "scipy.optimize", "sklearn.preprocessing",
            "matplotlib.pyplot", "mlflow", "mlflow.tracking", "mlflow.store.tracking.sqlalchemy_store",
            "stages.check", "stages.data_stage", "stages.train", "stages.source", "stages.evaluate", "stages.report",
            "stages.tracking", "stages.families")
_IN_CHILD = "TRAINLAB_STAGE_SERVER_CHILD"


def _keep() -> float:
    raw = os.environ.get("TRAINLAB_KEEP_WORKERS", "").strip()
    try:
        return float(raw) if raw else 60.0
    except ValueError:
        return 0.0  # the stage reports the bad value (stages.engine.pool.keep_seconds)


def code_hash(root: Path) -> str:
    """The hash of a project's code (``stages/**/*.py``): a warm process serves only the code it loaded."""
    sha = hashlib.sha256()
    for path in sorted((root / "stages").rglob("*.py")):
        sha.update(str(path.relative_to(root)).encode())
        sha.update(path.read_bytes())
    return sha.hexdigest()


def server_folder() -> Path:
    """Where the warm processes (worker pools and stage servers) keep their sockets, keys and logs."""
    folder = Path(tempfile.gettempdir()) / f"trainlab-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder


def _folder_and_key() -> tuple[Path, str]:
    root = Path(__file__).resolve().parents[1]
    environment = sorted((k, v) for k, v in os.environ.items() if k.startswith(_READ_AT_IMPORT) and k != _IN_CHILD)
    fixed = {"root": str(root), "code": code_hash(root), "python": sys.executable, "path": sys.path,
             "environment": environment}
    key = "stages-" + hashlib.sha256(json.dumps(fixed, sort_keys=True).encode()).hexdigest()[:20]
    return server_folder(), key


def hand_over(module: str) -> None:
    """Called first thing by a stage module run as a program: run it in the warm stage server and exit with
    its exit code, or return (no server yet, or turned off) to run here, starting a server for the next."""
    if os.environ.get(_IN_CHILD) or _keep() <= 0 or sys.platform != "linux":
        return
    folder, key = _folder_and_key()
    sock = _connect(folder, key)
    if sock is None:
        if not _starting(folder, key):
            _start_server(folder, key)
            return
        # a server is importing already: it is ready sooner than this process would be with its own imports
        deadline = time.monotonic() + 20
        while sock is None and time.monotonic() < deadline and _starting(folder, key):
            time.sleep(0.1)
            sock = _connect(folder, key)
        if sock is None:
            return
    request = json.dumps({"module": module, "argv": sys.argv[1:], "cwd": os.getcwd(),
                          "environ": dict(os.environ)}).encode()
    try:
        socket.send_fds(sock, [struct.pack("!Q", len(request))], [0, 1, 2])
        sock.sendall(request)
    except OSError:  # e.g. a closed stdin: run here
        sock.close()
        return
    sys.exit(_wait_for_child(sock))


def _wait_for_child(sock: socket.socket) -> int:
    reply = b""
    child = None

    def forward(signum, _frame):
        if child:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signum)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, forward)
    while True:
        try:
            chunk = sock.recv(4096)
        except InterruptedError:
            continue
        if not chunk:
            break
        reply += chunk
        lines = reply.decode().splitlines()
        if lines and lines[0].startswith("pid ") and child is None:
            child = int(lines[0].split()[1])
    for line in reply.decode().splitlines():
        if line.startswith("exit "):
            return int(line.split()[1])
    print("error: the stage process died before it finished (see the messages above)", file=sys.stderr)
    return 1


def _connect(folder: Path, key: str) -> socket.socket | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(folder / f"{key}.sock"))
        return sock
    except OSError:
        sock.close()
        return None


def _starting(folder: Path, key: str) -> bool:
    """A server for this key is alive (still importing: it binds its socket when its imports are done)."""
    try:
        return process_alive(int((folder / f"{key}.pid").read_text()))
    except (OSError, ValueError):
        return False


def _start_server(folder: Path, key: str) -> None:
    pid_file = folder / f"{key}.pid"
    with open(folder / f"{key}.log", "ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "stages.warm", str(folder), key, str(_keep())],
                                   stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                                   cwd=os.getcwd(), env=os.environ.copy())  # the same sys.path as this command
    pid_file.write_text(str(process.pid))


# -- the server ---------------------------------------------------------------------------------


def _recv_exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise EOFError("the stage command closed its connection")
        data += chunk
    return data


def _become_stage(conn: socket.socket, fds: list[int], request: dict) -> None:
    """In the forked child: take over the command's streams, directory, environment and arguments, run the
    stage module as ``__main__``, report the exit code; never returns."""
    import atexit
    import runpy
    import threading

    code = 1
    try:
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["environ"])
        os.environ[_IN_CHILD] = "1"
        sys.argv = [request["module"], *request["argv"]]
        conn.sendall(f"pid {os.getpid()}\n".encode())

        def exit_when_the_command_dies() -> None:
            with contextlib.suppress(OSError):
                conn.recv(1)  # the command sends nothing more: this returns when it closes or dies
            os._exit(1)

        threading.Thread(target=exit_when_the_command_dies, daemon=True).start()
        sys.modules.pop(request["module"], None)  # run fresh as __main__, as `python -m` runs it
        try:
            runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
            if not isinstance(done.code, (int, type(None))):
                print(done.code, file=sys.stderr)
        except BaseException:
            import traceback

            traceback.print_exc()
            code = 1
        atexit._run_exitfuncs()  # what a normal exit runs (e.g. stopping a worker pool tied to this stage)
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        with contextlib.suppress(OSError):
            conn.sendall(f"exit {code}\n".encode())
        os._exit(code)


def serve(folder: Path, key: str, keep: float) -> None:
    """Import what stages import, then fork one child per stage command until idle for ``keep`` seconds."""
    import importlib

    families = sorted(f"stages.families.{p.stem}" for p in (Path(__file__).parent / "families").glob("[a-z]*.py"))
    for name in [*_PRELOAD, *families]:  # imported, not run: their hand_over is under `if __name__ == "__main__"`
        importlib.import_module(name)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel; they report their exit
    path = folder / f"{key}.sock"
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(8)
    listener.settimeout(1.0)
    last, children = time.monotonic(), set()
    try:
        while True:
            children = {pid for pid in children if process_alive(pid)}
            if children:
                last = time.monotonic()
            elif time.monotonic() - last > keep:
                break
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(30)
            fds: list[int] = []
            try:
                header, fds, _flags, _addr = socket.recv_fds(conn, 8, 3)
                header += _recv_exactly(conn, 8 - len(header))
                request = json.loads(_recv_exactly(conn, struct.unpack("!Q", header)[0]))
            except (OSError, EOFError, ValueError, struct.error):
                for fd in fds:
                    os.close(fd)
                conn.close()
                continue
            conn.settimeout(None)
            sys.stdout.flush()
            sys.stderr.flush()
            child = os.fork()
            if child == 0:
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the stage waits for its own subprocesses
                listener.close()
                _become_stage(conn, fds, request)
            children.add(child)
            print(f"{time.strftime('%H:%M:%S')} pid {child}: {request['module']} {' '.join(request['argv'])} "
                  f"in {request['cwd']}", flush=True)
            for fd in fds:
                os.close(fd)
            conn.close()
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        with contextlib.suppress(FileNotFoundError):
            (folder / f"{key}.pid").unlink()


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists (one of another user's counts too); also read by
    ``stages.tracking`` to tell an orphaned MLflow run from one still being logged."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def exit_with_parent(parent: int) -> None:
    """A process whose parent died (SIGKILL runs no cleanup) would be adopted by init and run on.

    On Linux the kernel kills it when its parent dies (PR_SET_PDEATHSIG: works while it holds the GIL,
    e.g. inside TensorFlow's import); elsewhere a thread watches the parent.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        armed = libc.prctl(1, signal.SIGKILL, 0, 0, 0) == 0  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        armed = False
    if os.getppid() != parent:  # it died before the signal was armed
        os._exit(1)
    if not armed:
        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(0.5)
            os._exit(1)
        threading.Thread(target=watch, daemon=True).start()


def in_forked_child(work: Callable[[], T]) -> Callable[[], T]:
    """Start ``work`` in a forked copy of this process, on the other core; return a call that waits for it
    and gives its result (or raises its exception). Threads would not do: drawing figures and building
    MLflow's rows are both Python, and one GIL runs them one after the other.

    Where TensorFlow is loaded (training ran in this process) its threads make fork unsafe, so ``work``
    runs here, before this returns.
    """
    if "tensorflow" in sys.modules or not hasattr(os, "fork"):
        outcome = _attempt(work)
        return lambda: _unwrap(outcome)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()  # or the child writes the parent's buffered lines a second time
    read, write = os.pipe()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # the child: do the work, send the outcome, exit without the parent's atexit handlers
        code = 1
        try:
            os.close(read)
            exit_with_parent(parent)
            outcome = _attempt(work)
            try:
                payload = pickle.dumps(outcome)
            except Exception as err:  # an unpicklable exception: its type and text
                payload = pickle.dumps((False, RuntimeError(f"{type(outcome[1]).__name__}: {outcome[1]} ({err})")))
            with os.fdopen(write, "wb") as pipe:
                pipe.write(payload)
            code = 0
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os._exit(code)
    os.close(write)

    def wait() -> T:
        with os.fdopen(read, "rb") as pipe:
            payload = pipe.read()
        _, status = os.waitpid(pid, 0)
        if not payload:
            raise RuntimeError(f"the forked process {pid} died ({status=:#x}) before it finished")
        return _unwrap(pickle.loads(payload))

    return wait


def _attempt(work: Callable[[], T]) -> tuple[bool, object]:
    try:
        return True, work()
    except Exception as err:
        return False, err


def _unwrap(outcome: tuple[bool, object]):
    ok, value = outcome
    if not ok:
        raise value
    return value


if __name__ == "__main__":
    serve(Path(sys.argv[1]), sys.argv[2], float(sys.argv[3]))
