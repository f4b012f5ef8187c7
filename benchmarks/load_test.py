"""Load test of ``pauserec serve`` on loopback: p50/p99 latency and requests/s at several concurrency levels,
micro-batched vs one request at a time (``--no-batching``), against the same trained run.

Example (the committed result)::

    python benchmarks/load_test.py --run runs/ttq/packed --beams 10 --concurrency 1 8 32 \\
        --out benchmarks/results/load-test-scientific.json

The script starts one server per mode (``python -m pauserec serve RUN --host 127.0.0.1``), each on a free loopback
port, waits for ``/health`` and warms both up; then every concurrency level runs in ``--rounds`` rounds, each round
on each mode in turn, the order alternating (ABBA), so load from other work on a shared machine hits both modes
alike. In a round, C asyncio clients share one httpx connection pool and post real test-user histories (one distinct
user per request, the same users for both modes) until the round's request budget (``max(--min-requests,
--requests-per-client x C)``: whole waves of C requests, so a round does not end on a partial batch that measures the
tail instead of the load) is spent or its share of ``--seconds`` has passed. Everything is bounded in count and time;
nothing leaves 127.0.0.1. Latency is measured by the client (queueing included).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

HOST = "127.0.0.1"  # loopback only


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def test_histories(run_dir: str, n: int, seed: int) -> list[list[str]]:
    """Item-id histories of ``n`` test users of the run's data (as the evaluation would read them)."""
    from pauserec.artifacts import RunDir
    from pauserec.eval.evaluate import select_users

    run = RunDir(run_dir)
    data = run.data()
    dataset = data.dataset()
    examples = select_users(data.split(run.config()).test, n, seed)
    return [[dataset.item_ids[i] for i in e.history] for e in examples]


class Server:
    """``pauserec serve`` in a child process on a free loopback port (terminated on exit)."""

    def __init__(self, run: str, extra: list[str], log_path: Path, start_timeout_s: float):
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.cmd = [sys.executable, "-m", "pauserec", "serve", run, "--host", HOST, "--port", str(self.port), *extra]
        self.log_path, self.start_timeout_s = log_path, start_timeout_s
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Server:
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(self.cmd, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"the server exited ({self.proc.returncode}); see {self.log_path}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.__exit__()
        raise SystemExit(f"the server did not answer /health within {self.start_timeout_s:.0f} s")

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        self.log.close()

    def decoder_stats(self) -> dict[str, Any]:
        return httpx.get(self.url + "/health", timeout=10).json()["decoder"]


async def run_level(url: str, histories: list[list[str]], clients: int, budget: int, seconds: float, k: int,
                    request_timeout_s: float) -> dict[str, Any]:
    """``clients`` concurrent clients post until ``budget`` requests were started or ``seconds`` passed."""
    latencies: list[float] = []
    failures: list[str] = []
    started = 0
    t0 = time.perf_counter()

    async def client(c: httpx.AsyncClient) -> None:
        nonlocal started
        while started < budget and time.perf_counter() - t0 < seconds:
            history = histories[started % len(histories)]
            started += 1
            t = time.perf_counter()
            try:
                r = await c.post("/recommend", json={"history": history, "k": k})
                if r.status_code != 200 or len(r.json()["items"]) != k:
                    failures.append(f"HTTP {r.status_code}: {r.text[:200]}")
                    continue
            except httpx.HTTPError as e:
                failures.append(f"{type(e).__name__}: {e}")
                continue
            latencies.append(time.perf_counter() - t)

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=request_timeout_s, limits=limits) as c:
        await asyncio.gather(*(client(c) for _ in range(clients)))
    return {"clients": clients, "requests": started, "latencies_s": latencies, "failures": failures,
            "seconds": time.perf_counter() - t0}


def summarize(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One level's rounds merged: requests/s over the rounds' summed wall time, latency percentiles over all."""
    lat = np.array([x for p in parts for x in p["latencies_s"]]) * 1e3
    failures = [f for p in parts for f in p["failures"]]
    wall = sum(p["seconds"] for p in parts)
    return {
        "clients": parts[0]["clients"], "rounds": len(parts), "requests": sum(p["requests"] for p in parts),
        "ok": len(lat), "failed": len(failures), "failures": failures[:5], "seconds": wall,
        "requests_per_s": len(lat) / wall,
        "p50_ms": float(np.percentile(lat, 50)) if len(lat) else None,
        "p99_ms": float(np.percentile(lat, 99)) if len(lat) else None,
        "mean_ms": float(lat.mean()) if len(lat) else None,
    }


def measure(args, server: Server, clients: int, histories: list[list[str]], budget: int) -> dict[str, Any]:
    """One round of a concurrency level against one server, with the server's decoder calls over it."""
    before = server.decoder_stats()
    part = asyncio.run(run_level(server.url, histories, clients, budget, args.seconds / args.rounds, args.k,
                                 args.request_timeout))
    after = server.decoder_stats()
    part.update(calls=after["calls"] - before["calls"], decoded=after["requests"] - before["requests"])
    return part


def run_modes(args, modes: dict[str, list[str]], histories: list[list[str]]) -> list[dict[str, Any]]:
    """Both servers up at once (an idle one costs no CPU); each level runs in ``--rounds`` rounds, each round on
    each mode in turn with the order alternating (ABBA...), so background load on a shared machine that comes and
    goes hits both modes alike."""
    rows = []
    with contextlib.ExitStack() as stack:
        servers = {name: stack.enter_context(Server(args.run, extra, Path(args.log_dir) / f"load-test-{name}.log",
                                                    args.start_timeout))
                   for name, extra in modes.items()}
        for server in servers.values():  # warm-up
            asyncio.run(run_level(server.url, histories[-8:], 1, args.warmup, 120, args.k, args.request_timeout))
        names = list(servers)
        offset = 0
        for clients in args.concurrency:
            budget = max(args.min_requests, args.requests_per_client * clients)  # per round
            parts: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
            for r in range(args.rounds):
                for name in names if r % 2 == 0 else names[::-1]:
                    # every mode gets the same users in the same round
                    parts[name].append(measure(args, servers[name], clients, histories[offset:], budget))
                offset = (offset + budget) % max(len(histories) - budget, 1)
            for name in names:
                row = summarize(parts[name])
                calls = sum(p["calls"] for p in parts[name])
                row.update(mode=name, decoder_calls=calls,
                           mean_batch=sum(p["decoded"] for p in parts[name]) / calls if calls else 0.0)
                rows.append(row)
                print(f"  {name:15s} {clients:3d} clients: {row['ok']:4d} ok, {row['failed']} failed, "
                      f"{row['requests_per_s']:6.2f} req/s, p50 {row['p50_ms']:7.0f} ms, p99 {row['p99_ms']:7.0f} "
                      f"ms, mean batch {row['mean_batch']:.1f}", flush=True)
    return sorted(rows, key=lambda r: (names.index(r["mode"]), r["clients"]))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, help="a trained run directory")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--beams", type=int, default=10)
    ap.add_argument("--k", type=int, default=10, help="items per request")
    ap.add_argument("--max-batch", type=int, default=32)
    ap.add_argument("--max-wait-ms", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=None, help="the server's torch threads")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--requests-per-client", type=int, default=3, help="per client and round")
    ap.add_argument("--min-requests", type=int, default=8, help="per round")
    ap.add_argument("--seconds", type=float, default=90.0,
                    help="per level and mode: no request starts after this (split evenly over the rounds)")
    ap.add_argument("--rounds", type=int, default=2, help="rounds per level, the modes alternating (ABBA)")
    ap.add_argument("--request-timeout", type=float, default=600.0)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--start-timeout", type=float, default=300.0)
    ap.add_argument("--users", type=int, default=1000, help="distinct test users whose histories are posted")
    ap.add_argument("--modes", nargs="+", default=["micro-batched", "one-at-a-time"],
                    choices=["micro-batched", "one-at-a-time"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--log-dir", default="/tmp")
    ap.add_argument("--out", default="benchmarks/results/load-test.json")
    args = ap.parse_args(argv)

    from pauserec.artifacts import environment

    histories = test_histories(args.run, args.users, args.seed)
    common = ["--dtype", args.dtype, "--beams", str(args.beams), "--max-wait-ms", str(args.max_wait_ms)]
    if args.threads:
        common += ["--threads", str(args.threads)]
    modes = {"micro-batched": common + ["--max-batch", str(args.max_batch)], "one-at-a-time": common + ["--no-batching"]}
    print(f"run {args.run}, {args.dtype}, beam {args.beams}, k {args.k}, {len(histories)} test histories, "
          f"levels {args.concurrency}", flush=True)
    rows = run_modes(args, {m: modes[m] for m in args.modes}, histories)

    by = {(r["mode"], r["clients"]): r for r in rows}
    speedup = {str(c): by["micro-batched", c]["requests_per_s"] / by["one-at-a-time", c]["requests_per_s"]
               for c in args.concurrency if ("micro-batched", c) in by and ("one-at-a-time", c) in by}
    report = {
        "benchmark": "load-test",
        "command": list(sys.argv) if argv is None else ["benchmarks/load_test.py", *argv],
        "config": vars(args),
        "server_commands": {m: ["pauserec", "serve", args.run, "--host", HOST, *modes[m]] for m in args.modes},
        "rows": rows,
        "summary": {
            "batched_over_one_at_a_time_rps": speedup,
            "failed_requests": sum(r["failed"] for r in rows),
            "goal": "at 32 clients >= 4x the requests/s of one-at-a-time, no failed request",
        },
        "environment": {**environment(), "load_average": os.getloadavg()},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"speed-up (batched / one-at-a-time req/s): {speedup}; wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
