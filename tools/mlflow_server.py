"""A team-style MLflow tracking server on this machine: `mlflow server` on 127.0.0.1 with a PostgreSQL
backend (a throw-away cluster made by Debian's `postgresql` initdb/pg_ctl in a temporary directory) and
an artifact destination beside it.

    python -m tools.mlflow_server start     # prints MLFLOW_TRACKING_URI=http://127.0.0.1:PORT
    python -m tools.mlflow_server stop      # stops mlflow and PostgreSQL by their pids, removes the directory

(`make mlflow-server` / `make mlflow-server-stop`). The state (pids, directory, URI) is kept in
``.mlflow-server.json`` (or ``--state FILE``), so stop finds exactly what start began. A team's own server
is the same command on a shared host: `mlflow server --backend-store-uri postgresql://... --artifacts-destination
s3://... --host 0.0.0.0`, and every user sets MLFLOW_TRACKING_URI to it (docs/team-server.md).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

STATE = Path(".mlflow-server.json")


def postgres_bin() -> Path:
    """Debian's PostgreSQL programs (newest installed version), or initdb on PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise SystemExit("error: PostgreSQL is not installed: `apt-get install postgresql` (Debian) first")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def as_owner(argv: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run it as Debian's `postgres` user."""
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def wait_healthy(uri: str, process: subprocess.Popen, log: Path, timeout: float = 400) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text().strip().splitlines()[-3:]
            raise SystemExit(f"error: mlflow server exited ({process.returncode}): " + " | ".join(tail))
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    tail = log.read_text().strip().splitlines()[-3:]
    raise SystemExit(f"error: mlflow server did not answer at {uri} within {timeout:.0f}s: " + " | ".join(tail))


def start_postgres(home: Path, info: dict) -> int:
    """A throw-away PostgreSQL cluster in ``home/pgdata``, on 127.0.0.1 only, with a database ``mlflow`` of the
    user ``mlflow`` (trust); returns its port. ``info`` gets what ``stop`` needs (bindir, pgdata, the pid)."""
    bindir = postgres_bin()
    pgdata, sockets = home / "pgdata", home / "sockets"
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(home, "postgres")
        shutil.chown(sockets, "postgres")
    info |= {"bindir": str(bindir), "pgdata": str(pgdata)}
    subprocess.run(as_owner([str(bindir / "initdb"), "-D", str(pgdata), "-U", "mlflow", "--auth=trust",
                             "-E", "UTF8", "--no-sync"]), check=True, capture_output=True, text=True)
    pg_port = free_port()
    options = f"-c listen_addresses=127.0.0.1 -p {pg_port} -k {sockets} -c fsync=off"
    subprocess.run(as_owner([str(bindir / "pg_ctl"), "-D", str(pgdata), "-l", str(sockets / "postgres.log"),
                             "-w", "-o", options, "start"]), check=True, capture_output=True, text=True)
    info["postgres_pid"] = int((pgdata / "postmaster.pid").read_text().split()[0])
    subprocess.run([str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(pg_port), "-U", "mlflow", "mlflow"],
                   check=True, capture_output=True, text=True)
    return pg_port


def start(state: Path, port: int | None = None, workers: int = 1) -> dict:
    if state.exists():
        raise SystemExit(f"error: {state} exists: a server is running "
                         "(stop it: python -m tools.mlflow_server stop)")
    home = Path(tempfile.mkdtemp(prefix="trainlab-mlflow-"))
    artifacts = home / "artifacts"
    artifacts.mkdir()
    info = {"dir": str(home)}
    try:
        pg_port = start_postgres(home, info)
        port = port or free_port()
        uri = f"http://127.0.0.1:{port}"
        log = home / "mlflow.log"
        with open(log, "w") as out:
            server = subprocess.Popen(
                [str(Path(sys.executable).parent / "mlflow"), "server",
                 "--backend-store-uri", f"postgresql+psycopg2://mlflow@127.0.0.1:{pg_port}/mlflow",
                 "--artifacts-destination", str(artifacts), "--host", "127.0.0.1", "--port", str(port),
                 "--workers", str(workers)],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        info |= {"mlflow_pid": server.pid, "uri": uri, "postgres_port": pg_port, "artifacts": str(artifacts)}
        state.write_text(json.dumps(info, indent=2) + "\n")
        wait_healthy(uri, server, log)
    except BaseException as err:
        detail = getattr(err, "stderr", "") or ""
        state.write_text(json.dumps(info, indent=2) + "\n")
        stop(state)
        if isinstance(err, subprocess.CalledProcessError):
            raise SystemExit(f"error: {' '.join(err.cmd[-6:])} failed: {detail.strip()[:500]}") from None
        raise
    return info


def stop(state: Path) -> None:
    """Stop what ``start`` began, by the pids it recorded, and remove its directory."""
    if not state.exists():
        print(f"{state}: no server recorded", file=sys.stderr)
        return
    info = json.loads(state.read_text())
    pid = info.get("mlflow_pid")
    if pid:
        try:
            os.killpg(pid, signal.SIGTERM)  # its own session: the server and its uvicorn workers
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                os.killpg(pid, 0)
                time.sleep(0.2)
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
    if info.get("postgres_pid") and Path(info["pgdata"], "postmaster.pid").exists():
        subprocess.run(as_owner([str(Path(info["bindir"]) / "pg_ctl"), "-D", info["pgdata"], "-m", "fast", "-w",
                                 "stop"]), capture_output=True, text=True)
    shutil.rmtree(info["dir"], ignore_errors=True)
    state.unlink()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("start", "stop"))
    parser.add_argument("--state", type=Path, default=STATE, help="where the pids are kept (default: %(default)s)")
    parser.add_argument("--port", type=int, default=None, help="the server's port (default: a free one)")
    args = parser.parse_args(argv)
    if args.action == "stop":
        stop(args.state)
        return 0
    info = start(args.state, args.port)
    print(f"MLFLOW_TRACKING_URI={info['uri']}")
    print(f"# PostgreSQL on 127.0.0.1:{info['postgres_port']}, artifacts in {info['artifacts']}; "
          f"stop with: python -m tools.mlflow_server stop", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
