"""Load test of `fbrec serve` on loopback: a real server process, an asyncio client (aiohttp) in this process.

python -m benchmarks.serving [--write] [--quick]
Two bundles: MovieLens-100K (1,682 items, SVD embeddings of the real training matrix, Flat index) and a synthetic
1M items x 64 dims (IVF1024,Flat, nprobe 16; its recall@10 against exact search is reported). For each: an open-loop
phase at a fixed rate (requests are sent on schedule whether or not earlier ones finished, so queueing shows in
the latency) and a closed-loop soak of many requests with the server's RSS sampled along the way. The client
shares the machine's cores with the server.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import machine, table, write_section


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def ml100k_bundle(out: Path) -> tuple[Path, list]:
    import polars as pl

    from fbrec.bundle import write_bundle
    from fbrec.data.prepare import interactions_csr, prepare

    data = prepare("movielens-100k")
    m = interactions_csr(data.train, data.num_users, data.num_items).toarray()
    u, s, vt = np.linalg.svd(m, full_matrices=False)
    users, items = (u[:, :64] * np.sqrt(s[:64])).astype(np.float32), (vt[:64].T * np.sqrt(s[:64])).astype(np.float32)
    seen = pl.concat([data.train.select("user_index", "item_index"), data.val.select("user_index", "item_index")])
    write_bundle(out, user_embeddings=users, item_embeddings=items, user_map=data.user_map, item_map=data.item_map,
                 seen=seen, model="svd", items=data.items, dataset=data.name, overwrite=True)
    return out, data.user_map.raw.to_list()


def synthetic_bundle(out: Path, num_items: int, num_users: int = 100_000, dim: int = 64) -> tuple[Path, list]:
    """Clustered unit vectors (an ANN index has structure to find), 20 seen items per user."""
    import polars as pl

    from fbrec.bundle import write_bundle
    from fbrec.data.idmap import IdMap

    rng = np.random.default_rng(0)
    centers = rng.normal(size=(256, dim)).astype(np.float32)

    def draw(n):
        x = centers[rng.integers(0, len(centers), n)] + 0.5 * rng.normal(size=(n, dim)).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    items, users = draw(num_items), draw(num_users)
    seen = pl.DataFrame({"user_index": np.repeat(np.arange(num_users), 20),
                         "item_index": rng.integers(0, num_items, num_users * 20)}).unique()
    index = "IVF1024,Flat" if num_items >= 100_000 else "Flat"
    write_bundle(out, user_embeddings=users, item_embeddings=items, user_map=IdMap.fit("user", pl.Series(
        np.arange(num_users))), item_map=IdMap.fit("item", pl.Series(np.arange(num_items))), seen=seen,
        model="synthetic", index_factory=index, search_params="nprobe=16" if index != "Flat" else "",
        overwrite=True, recall_queries=500)
    return out, list(range(num_users))


async def _one(session, url, user, k, latencies, errors):
    start = time.perf_counter()
    try:
        async with session.post(url, json={"user": user, "k": k}) as r:
            await r.read()
            if r.status != 200:
                errors.append(r.status)
    except Exception as exc:   # noqa: BLE001 - a failed request is a result here
        errors.append(type(exc).__name__)
    latencies.append(time.perf_counter() - start)


async def open_loop(url, users, rate: float, seconds: float, k: int = 10):
    import aiohttp

    latencies, errors, tasks = [], [], []
    rng = np.random.default_rng(1)
    n = int(rate * seconds)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as session:
        start = time.perf_counter()
        for i in range(n):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(_one(session, url, users[rng.integers(len(users))], k, latencies,
                                                  errors)))
        await asyncio.gather(*tasks)
        wall = time.perf_counter() - start
    return np.array(latencies), errors, n / wall


async def closed_loop(url, users, total: int, concurrency: int, pid: int, k: int = 10):
    import aiohttp

    latencies, errors, rss = [], [], [_rss_mb(pid)]
    rng = np.random.default_rng(2)
    per = total // concurrency
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async def worker(w):
            for i in range(per):
                await _one(session, url, users[rng.integers(len(users))], k, latencies, errors)
                if w == 0 and i % max(1, per // 10) == 0:
                    rss.append(_rss_mb(pid))

        start = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        wall = time.perf_counter() - start
    rss.append(_rss_mb(pid))
    return np.array(latencies), errors, per * concurrency / wall, rss


def run_server(bundle: Path, threads: int):
    port = _free_port()
    log = tempfile.TemporaryFile(mode="w+")   # never an undrained pipe: a full one blocks the server's log writes
    proc = subprocess.Popen([sys.executable, "-m", "fbrec.cli.main", "serve", "--bundle", str(bundle), "--port",
                             str(port), "--threads", str(threads), "--log-level", "warning", "--no-access-log"],
                            stdout=subprocess.DEVNULL, stderr=log, text=True)
    import requests

    deadline = time.time() + 300
    while time.time() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise RuntimeError(log.read())
        try:
            if requests.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc, f"http://127.0.0.1:{port}"
        except requests.ConnectionError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("server not ready")


def ms(x: float) -> str:
    return f"{1000 * x:.2f}"


def measure(name: str, bundle: Path, users: list, rate: float, seconds: float, soak: int, threads: int) -> list:
    import requests

    proc, url = run_server(bundle, threads)
    try:
        recall = requests.get(f"{url}/version", timeout=10).json()["manifest"]["recall_at_k"]
        asyncio.run(open_loop(f"{url}/recommend", users, rate, 2))   # warm-up
        lat, errors, achieved = asyncio.run(open_loop(f"{url}/recommend", users, rate, seconds))
        p50, p95, p99 = np.percentile(lat, [50, 95, 99])
        soak_lat, soak_err, throughput, rss = asyncio.run(closed_loop(f"{url}/recommend", users, soak, 16, proc.pid))
        return [name, f"{recall:.3f}", f"{achieved:.0f}", ms(p50), ms(p95), ms(p99), len(errors), f"{throughput:.0f}",
                ms(np.percentile(soak_lat, 99)), len(soak_err), f"{rss[0]:.0f} -> {max(rss):.0f} -> {rss[-1]:.0f}"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--quick", action="store_true", help="100k items, short phases (a smoke run)")
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--soak", type=int, default=100_000)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="fbrec-serving-"))
    n_items = 100_000 if args.quick else 1_000_000
    seconds, soak = (5.0, 5_000) if args.quick else (args.seconds, args.soak)
    rows = []
    t = time.perf_counter()
    bundle, users = ml100k_bundle(root / "ml100k")
    rows.append(measure("MovieLens-100K (1,682 items, Flat)", bundle, users, args.rate, seconds, soak, args.threads))
    build = time.perf_counter()
    bundle, users = synthetic_bundle(root / "big", n_items)
    build = time.perf_counter() - build
    rows.append(measure(f"synthetic {n_items:,} items x 64 (IVF1024,Flat nprobe 16)", bundle, users, args.rate,
                        seconds, soak, args.threads))
    headers = ["bundle", "recall@10 vs exact", "req/s sent", "p50 ms", "p95 ms", "p99 ms", "errors",
               "closed-loop req/s (16 conn.)", "closed-loop p99 ms", "errors", "server RSS MB (start -> max -> end)"]
    body = (f"### Retrieval service under load (`POST /recommend`, k = 10, seen items excluded)\n\n"
            f"`python -m benchmarks.serving --write` on {machine()}; one `fbrec serve` process (--threads "
            f"{args.threads}) and the aiohttp client on the same cores. Open loop: {args.rate:.0f} requests/s for "
            f"{seconds:.0f} s after a 2 s warm-up, random known users. Closed loop: {soak:,} requests over 16 "
            f"connections, server RSS sampled every tenth. Building the big bundle took {build:.0f} s "
            f"(total run {time.perf_counter() - t:.0f} s).\n\n" + table(headers, rows))
    print(body)
    if args.write:
        write_section("serving", body)


if __name__ == "__main__":
    main()
