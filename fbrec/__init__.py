"""fbrec: recommender-system feedback modeling. `fbrec.train`, `fbrec.evaluate`, `fbrec.export` (fbrec.api),
`fbrec.Bundle` (fbrec.bundle) and `fbrec.read_log` (fbrec.data) are imported on first use, so `import fbrec` stays
light (a service loading bundles never pulls torch)."""

__version__ = "0.1.0"

_LAZY = {"train": "fbrec.api", "evaluate": "fbrec.api", "export": "fbrec.api", "TrainResult": "fbrec.api",
         "retrieve": "fbrec.api", "simulate": "fbrec.api", "demo": "fbrec.api",
         "Bundle": "fbrec.bundle", "read_log": "fbrec.data"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fbrec' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_LAZY])
