"""How the API tells a person what it is doing: a `progress` callable taking one line (the CLI prints them), else the
"fbrec" logger. The bottom of fbrec.api: every other module may import it, it imports none of them."""

from __future__ import annotations

import logging
from collections.abc import Callable

Progress = Callable[[str], None]


def to_log(line: str) -> None:
    """The default progress: one INFO record on the "fbrec" logger."""
    logging.getLogger("fbrec").info(line)
