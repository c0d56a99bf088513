"""Run a study server as a child process on loopback (tests, benchmarks, the demo).

>>> with StudyServer(workdir, trials_per_participant=4) as srv:   # doctest: +SKIP
...     httpx.get(srv.url + "/api/study").json()
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from gazetune.config import save_config
from gazetune.study.config import StudyConfig


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class StudyServer:
    """``gazetune study serve`` in a child process on ``127.0.0.1:<free port>``.

    Parameters
    ----------
    workdir : path
        Holds ``study.toml``, the server's log and (by default) the SQLite database.
    env : dict, optional
        Extra environment variables for the child.
    workers : int
        Server processes (``--workers``).
    **overrides
        :class:`StudyConfig` fields; ``database`` defaults to ``sqlite:///<workdir>/study.db``
        and ``admin_token`` to a random one (``.admin_token``).
    """

    def __init__(self, workdir: str | Path, env: dict[str, str] | None = None, workers: int = 1,
                 **overrides: Any) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        overrides.setdefault("database", f"sqlite:///{self.workdir / 'study.db'}")
        overrides.setdefault("data_dir", str(self.workdir / "data"))
        overrides.setdefault("admin_token", secrets.token_hex(8))
        self.config = StudyConfig(**overrides)
        self.admin_token: str = self.config.admin_token  # type: ignore[assignment]
        self.config_path = self.workdir / "study.toml"
        save_config(self.config, self.config_path)
        self.env = env or {}
        self.workers = workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.log_path = self.workdir / "server.log"

    def start(self, timeout_s: float = 120.0) -> "StudyServer":
        """Start the child and wait until it answers: ``/api/health``, then its admin token.  The
        port was only free when it was picked; if another process took it since (several test
        processes at once), the child cannot bind it, or a server that is not ours answers, and
        the child starts again on a new port (up to three tries)."""
        deadline = time.monotonic() + timeout_s
        for _ in range(3):
            if self._launch(deadline, timeout_s):
                return self
            self.port = free_port()
            self.url = f"http://127.0.0.1:{self.port}"
        raise RuntimeError(f"study server found no free port in 3 tries; log:\n{self.log()}")

    def _launch(self, deadline: float, timeout_s: float) -> bool:
        """One child on ``self.port``; False when the port turned out to be taken."""
        start_at = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gazetune.study", "serve", "--config", str(self.config_path),
             "--host", "127.0.0.1", "--port", str(self.port)] + (["--workers", str(self.workers)] if self.workers > 1 else []),
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **self.env}, start_new_session=True)
        log.close()
        foreign = False
        with httpx.Client(timeout=1.0) as http:  # one client: httpx reads the CA bundle per client
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    with open(self.log_path, "rb") as fh:
                        fh.seek(start_at)
                        if foreign or b"address already in use" in fh.read().lower():
                            return False
                    raise RuntimeError(f"study server exited with {self.proc.returncode}; log:\n{self.log()}")
                try:
                    if http.get(self.url + "/api/health").status_code == 200:
                        if http.get(self.url + "/api/trainer/generators", headers=self.admin_headers()).status_code == 200:
                            return True
                        foreign = True  # another server on this port: ours will fail to bind it
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"study server did not answer within {timeout_s} s; log:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL to the server and its worker processes, no clean-up (crash test)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)  # its own session: the group is the server's
            self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM (uvicorn shuts down gracefully), SIGKILL after 10 s."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}

    def __enter__(self) -> "StudyServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
