"""Load benchmark of the study server: N simulated participants against a real server.

Each participant runs trials one after another: the image starts, gaze arrives at 60 Hz and goes
up in one batch per second (60 samples, numbered), the answer comes after ``--trial-s`` seconds.
Batches are retried on failure with the same number, as the browser does.  At the end every
acknowledged batch is looked up in the server's sample export, so lost and duplicated samples are
counted, not assumed.

    .venv/bin/python bench/server_load.py --participants 200 --seconds 30

Prints one table: requests, throughput, p50/p99/max latency per kind of request, samples sent,
stored, lost and duplicated.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import os
import random
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import httpx
import numpy as np

from gazetune.study.runner import StudyServer

RECT = [100.0, 100.0, 384.0, 384.0]


class Conn:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams.

    httpx costs the client more CPU per request than the server spends answering it (and 40 ms
    per client just to build an SSL context); on 2 shared cores that made the benchmark measure
    its own client.  This one does only what the benchmark needs: JSON bodies, Content-Length
    responses, reconnect on a dropped connection.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.headers: dict[str, str] = {}
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        data = json.dumps(body).encode() if body is not None else b""
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Length: {len(data)}\r\n"
        if body is not None:
            head += "Content-Type: application/json\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in self.headers.items()) + "\r\n"
        try:
            self.writer.write(head.encode() + data)
            status_line = await self.reader.readline()  # type: ignore[union-attr]
            if not status_line:
                raise ConnectionError("connection closed")
            length, close = 0, False
            while True:
                line = await self.reader.readline()  # type: ignore[union-attr]
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.decode("latin-1").partition(":")
                if name.lower() == "content-length":
                    length = int(value)
                elif name.lower() == "connection" and "close" in value.lower():
                    close = True
            payload = await self.reader.readexactly(length)  # type: ignore[union-attr]
        except (OSError, asyncio.IncompleteReadError, ConnectionError):
            self.close()
            raise
        if close:
            self.close()
        return int(status_line.split()[1]), payload

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def participant(k: int, url: str, until: float, trial_s: float, lat: dict, acked: dict) -> None:
    host, port = url.split("//")[1].split(":")
    c = Conn(host, int(port))

    async def call(kind: str, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        for attempt in range(6):
            t0 = time.perf_counter()
            try:
                status, payload = await c.request(method, path, body)
            except (OSError, asyncio.IncompleteReadError, ConnectionError):
                await asyncio.sleep(0.2 * 2 ** attempt)
                continue
            lat[kind].append(time.perf_counter() - t0)
            if status < 500:
                return status, json.loads(payload)
        raise RuntimeError(f"participant {k}: {kind} failed 6 times")

    await asyncio.sleep(random.random())  # participants arrive spread over the first second
    _, r = await call("participant", "POST", "/api/participants", {"consent": True, "external_id": f"bench-{k}"})
    c.headers["X-Participant-Token"] = r["token"]
    t_ms = 0.0
    while time.monotonic() < until:
        _, nxt = await call("next", "GET", "/api/me/next")
        if nxt["done"]:
            break
        tid = nxt["trial_id"]
        await call("start", "POST", f"/api/trials/{tid}/start", {"image_rect": RECT, "client_onset_ms": t_ms})
        t_trial = time.monotonic()
        seq = 0
        while time.monotonic() - t_trial < trial_s and time.monotonic() < until:
            await asyncio.sleep(1.0)
            t = t_ms + np.arange(60) * (1000 / 60)
            t_ms = float(t[-1]) + 1000 / 60
            body = {"seq": seq, "source": "mouse", "t_ms": t.tolist(),
                    "x": (260 + 50 * np.sin(t / 300)).tolist(), "y": (260 + 50 * np.cos(t / 300)).tolist()}
            status, _ = await call("gaze", "POST", f"/api/trials/{tid}/gaze", body)
            if status == 200:
                acked[(tid, seq)] = 60
            seq += 1
        await call("answer", "POST", f"/api/trials/{tid}/answer", {"answer": random.randint(0, 1), "rt_ms": 1000.0 * trial_s})
    c.close()


def cpu_seconds(pgid: int) -> float:
    """User + system CPU time of the processes in group ``pgid`` (the server and its workers;
    Linux /proc), seconds."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def pct(v: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(v) * 1000, q)) if v else float("nan")


async def run(url: str, n: int, seconds: float, trial_s: float) -> tuple[dict, dict, float]:
    lat: dict[str, list[float]] = defaultdict(list)
    acked: dict[tuple[int, int], int] = {}
    t0 = time.monotonic()
    until = t0 + seconds
    await asyncio.gather(*(participant(k, url, until, trial_s, lat, acked) for k in range(n)))
    return lat, acked, time.monotonic() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--participants", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--trial-s", type=float, default=5.0, help="seconds per trial (gaze batches per trial)")
    ap.add_argument("--workers", type=int, default=1, help="server processes (uvicorn workers)")
    ap.add_argument("--database", default=None, help="database URL (default: SQLite in a temporary folder)")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="gazetune_bench_"))
    extra = {"database": args.database} if args.database else {}
    load_before = os.getloadavg()
    with StudyServer(work, trials_per_participant=50, real_fraction=0.5, synthetic_pool=20, workers=args.workers,
                     **extra) as srv:
        cpu0 = cpu_seconds(srv.proc.pid)
        lat, acked, wall = asyncio.run(run(srv.url, args.participants, args.seconds, args.trial_s))
        server_cpu = cpu_seconds(srv.proc.pid) - cpu0
        text = httpx.get(srv.url + "/api/admin/export/samples.csv", headers=srv.admin_headers(), timeout=300).text
    stored: dict[tuple[int, int], int] = defaultdict(int)
    for row in csv.DictReader(io.StringIO(text)):
        stored[(int(row["trial_id"]), int(row["seq"]))] += 1
    sent = sum(acked.values())
    lost = sum(max(0, v - stored.get(k, 0)) for k, v in acked.items())
    dup = sum(max(0, stored.get(k, 0) - v) for k, v in acked.items())
    n_req = sum(len(v) for v in lat.values())
    db = args.database.split(":")[0] if args.database else "sqlite"
    print(f"\nstudy server load: {args.participants} participants, 60 Hz gaze, 1 batch/s, "
          f"{args.seconds:.0f} s, {db}, {wall:.1f} s wall")
    print(f"{'request':<12}{'count':>8}{'per s':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for kind in ("participant", "next", "start", "gaze", "answer"):
        v = lat.get(kind, [])
        print(f"{kind:<12}{len(v):>8}{len(v) / wall:>9.1f}{pct(v, 50):>9.1f}{pct(v, 99):>9.1f}"
              f"{(max(v) * 1000 if v else float('nan')):>9.1f}")
    allv = [x for v in lat.values() for x in v]
    print(f"{'all':<12}{n_req:>8}{n_req / wall:>9.1f}{pct(allv, 50):>9.1f}{pct(allv, 99):>9.1f}{max(allv) * 1000:>9.1f}")
    print(f"gaze samples acknowledged {sent}, stored {sum(stored.values())}, lost {lost}, duplicated {dup}")
    print(f"({len(lat['gaze']) / wall:.0f} gaze batches/s = {sent / wall:.0f} samples/s)")
    print(f"server CPU {server_cpu:.1f} s in {wall:.1f} s wall = {1000 * server_cpu / max(n_req, 1):.2f} ms per request")
    print("machine load average (1, 5, 15 min): before %.2f %.2f %.2f, after %.2f %.2f %.2f on %d cores"
          % (*load_before, *os.getloadavg(), os.cpu_count() or 0))
    return 0 if lost == 0 and dup == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
