"""Counters and latency histograms rendered in the Prometheus text format (no client library needed)."""

from __future__ import annotations

import threading
from collections import defaultdict

# seconds; fine-grained below 10 ms, where a retrieval service should live
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    body = ",".join(f'{k}="{str(v).replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
                    for k, v in sorted(labels.items()))
    return "{" + body + "}"


class Metrics:
    """Thread-safe counters, gauges and histograms keyed by (name, labels)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._counters: dict[tuple[str, tuple], float] = defaultdict(float)
        self._gauges: dict[tuple[str, tuple], float] = {}
        self._hist: dict[tuple[str, tuple], list[float]] = {}
        self._help: dict[str, tuple[str, str]] = {}

    def _declare(self, name: str, kind: str, help_text: str) -> None:
        self._help.setdefault(name, (kind, help_text))

    def inc(self, name: str, help_text: str, value: float = 1.0, **labels: str) -> None:
        with self._lock:
            self._declare(name, "counter", help_text)
            self._counters[(name, tuple(sorted(labels.items())))] += value

    def set(self, name: str, help_text: str, value: float, **labels: str) -> None:
        with self._lock:
            self._declare(name, "gauge", help_text)
            self._gauges[(name, tuple(sorted(labels.items())))] = value

    def observe(self, name: str, help_text: str, seconds: float, **labels: str) -> None:
        with self._lock:
            self._declare(name, "histogram", help_text)
            h = self._hist.setdefault((name, tuple(sorted(labels.items()))), [0.0] * (len(BUCKETS) + 2))
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    h[i] += 1
            h[-2] += 1          # count (the +Inf bucket)
            h[-1] += seconds    # sum

    def counter(self, name: str, **labels: str) -> float:
        with self._lock:
            return self._counters.get((name, tuple(sorted(labels.items()))), 0.0)

    def render(self) -> str:
        with self._lock:
            lines = []
            for name, (kind, help_text) in sorted(self._help.items()):
                lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
                if kind == "counter":
                    lines += [f"{n}{_labels(dict(lb))} {v:g}" for (n, lb), v in sorted(self._counters.items())
                              if n == name]
                elif kind == "gauge":
                    lines += [f"{n}{_labels(dict(lb))} {v:g}" for (n, lb), v in sorted(self._gauges.items())
                              if n == name]
                else:
                    for (n, lb), h in sorted(self._hist.items()):
                        if n != name:
                            continue
                        for bound, count in zip(BUCKETS, h, strict=False):
                            lines.append(f"{n}_bucket{_labels({**dict(lb), 'le': f'{bound:g}'})} {count:g}")
                        lines.append(f"{n}_bucket{_labels({**dict(lb), 'le': '+Inf'})} {h[-2]:g}")
                        lines.append(f"{n}_count{_labels(dict(lb))} {h[-2]:g}")
                        lines.append(f"{n}_sum{_labels(dict(lb))} {h[-1]:.6f}")
            return "\n".join(lines) + "\n"
