"""Run every benchmark suite: python -m benchmarks.run [--write] [--huge]."""

from __future__ import annotations

import subprocess
import sys


def main() -> None:
    extra = [a for a in sys.argv[1:] if a in ("--write",)]
    suites = [("benchmarks.evaluation", extra + [a for a in sys.argv[1:] if a == "--huge"]),
              ("benchmarks.training", extra), ("benchmarks.ingest", extra), ("benchmarks.quality", extra)]
    for module, args in suites:
        print(f"== {module}", flush=True)
        subprocess.run([sys.executable, "-m", module, *args], check=True)


if __name__ == "__main__":
    main()
