"""Error classes. Every message names the offending value, the rule it broke and the fix."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class FbrecError(ValueError):
    """Base class for user-facing errors: the CLI prints these as one line plus a hint (exit code 2)."""

    def __init__(self, problem: str, *, rule: str | None = None, fix: str | None = None):
        self.problem, self.rule, self.fix = problem, rule, fix
        parts = [problem]
        if rule:
            parts.append(f"rule: {rule}")
        if fix:
            parts.append(f"fix: {fix}")
        super().__init__("; ".join(parts))


class DataValidationError(FbrecError):
    """A click log, split or id map that breaks the canonical schema."""


class ConfigError(FbrecError):
    """A recipe, option or argument that does not make sense."""


class BundleError(FbrecError):
    """A bundle directory that is missing, corrupted or does not match its manifest."""


class UnknownNameError(ConfigError):
    """A dataset, recipe, metric or level name that is not known; suggests the closest known one."""

    def __init__(self, kind: str, name: str, known: Iterable[str]):
        known = sorted(known)
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
        hint = f"did you mean {close[0]!r}?" if close else f"choose one of {', '.join(known)}"
        super().__init__(f"unknown {kind} {name!r}", rule=f"known {kind}s: {', '.join(known)}", fix=hint)
        self.suggestion = close[0] if close else None


class MissingExtraError(ConfigError):
    """An optional package a command needs is not installed: names the package and the extra that brings it."""

    def __init__(self, package: str, extra: str, purpose: str):
        super().__init__(f"{purpose} needs the package {package!r}, which is not installed",
                         rule=f"it comes with fbrec's {extra!r} extra",
                         fix=f"pip install 'fbrec[{extra}]' (or FBREC_EXTRAS=...,{extra} scripts/install.sh)")
        self.package, self.extra = package, extra
