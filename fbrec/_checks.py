"""Small validators shared by every layer (they raise FbrecError subclasses, never assert)."""

from __future__ import annotations

from collections.abc import Sequence

from fbrec.errors import ConfigError


def check_positive(name: str, value: float, *, strict: bool = True) -> None:
    ok = value > 0 if strict else value >= 0
    if not ok:
        rule = "> 0" if strict else ">= 0"
        raise ConfigError(f"{name}={value!r} is out of range", rule=f"{name} must be {rule}", fix=f"pass a {name} {rule}")


def check_fraction(name: str, value: float, *, low_open: bool = True, high_open: bool = True) -> None:
    lo_ok = value > 0 if low_open else value >= 0
    hi_ok = value < 1 if high_open else value <= 1
    if not (lo_ok and hi_ok):
        interval = f"{'(' if low_open else '['}0, 1{')' if high_open else ']'}"
        raise ConfigError(f"{name}={value!r} is out of range", rule=f"{name} must lie in {interval}",
                          fix=f"pass a {name} in {interval}")


def check_ks(ks: Sequence[int]) -> tuple[int, ...]:
    ks = tuple(int(k) for k in ks)
    if not ks or any(k < 1 for k in ks):
        raise ConfigError(f"k values {list(ks)!r} are invalid", rule="every k must be an integer >= 1",
                          fix="pass e.g. ks=[5, 10, 20]")
    return tuple(sorted(set(ks)))
