"""The synthetic generator at scale: rows, wall time and peak RSS without a dense users x items matrix.

python -m benchmarks.generator [--write]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from benchmarks.common import machine, table, write_section

SIZES = [(200_000, 100_000, 8), (1_000_000, 1_000_000, 1)]


def one(users: int, items: int, sessions: int) -> list:
    code = (f"import time, resource; from fbrec.data.synthetic import SyntheticConfig, generate; "
            f"t = time.perf_counter(); d = generate(SyntheticConfig(num_users={users}, num_items={items}, "
            f"sessions_per_user={sessions})); print(d.log.height, time.perf_counter() - t, "
            f"resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)")
    rows, seconds, rss = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                        check=True).stdout.split()
    return [f"{users:,}", f"{items:,}", sessions, f"{int(rows):,}", f"{float(seconds):.1f}", f"{float(rss):.2f}"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    start = time.perf_counter()
    rows = [one(*size) for size in SIZES]
    body = ("### Synthetic generator at scale (no dense users x items matrix)\n\n"
            f"`python -m benchmarks.generator --write` on {machine()}; each size in a fresh process; ground truth "
            "for any pair via `SyntheticData.relevance_of` (before: 200k x 100k asked for a 149 GiB array).\n\n"
            + table(["users", "items", "sessions/user", "log rows", "seconds", "peak RSS GB"], rows)
            + f"\n\n(total {time.perf_counter() - start:.0f} s)")
    print(body)
    if args.write:
        write_section("generator", body)


if __name__ == "__main__":
    main()
