"""An incremental JSON checker for constrained decoding: is this text still the beginning of a JSON value of the
expected type, and is the value complete?

`JsonPrefix(kind)` takes characters one at a time (`feed`); a character that could not continue a JSON value of
`kind` is refused and leaves the state as it was. A kind is "string", "number", "boolean", "array", "object", None
(any value), or a container of a kind: "array<string>" (an array of strings), "object<array<string>>" (an object whose
values are arrays of strings), "object<object<number>>". `copy()` is cheap, so a decoder can try a token's characters on a copy and keep it only when all of them
fit. `closing()` is the shortest text that ends the value from here (used when a token budget runs out)."""

from __future__ import annotations

import re
from functools import lru_cache

_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)?(\.[0-9]*)?([eE][+-]?[0-9]*)?")
_COMPLETE_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_FIRST = {"string": '"', "array": "[", "object": "{", "boolean": "tf", "number": "-0123456789"}
_LITERALS = {"t": "true", "f": "false", "n": "null"}
_EMPTY = {"string": '""', "number": "0", "boolean": "false", "array": "[]", "object": "{}", None: "null"}
WHITESPACE = " \t\n\r"


@lru_cache(maxsize=256)   # called for every character a decoder tries
def split_kind(kind: str | None) -> tuple[str | None, str | None]:
    """"object<array<string>>" -> ("object", "array<string>"); "string" -> ("string", None)."""
    if kind is None:
        return None, None
    base, sep, rest = kind.partition("<")
    if base not in _FIRST or (sep and (base not in ("array", "object") or len(rest) < 2 or not rest.endswith(">"))):
        raise ValueError(f"kind {kind!r} is not a JSON type (string, number, boolean, array, object, "
                         "array<KIND>, object<KIND>)")
    child = rest[:-1] if rest else None
    if child is not None:
        split_kind(child)
    return base, child


class JsonPrefix:
    """Modes: value (a value may start), string, number, literal, after (a value ended inside a container),
    key (an object key or, first, its closing brace), colon, done."""

    max_depth = 8

    def __init__(self, kind: str | None = None):
        split_kind(kind)
        self.kind = kind
        self.stack: list[str] = []        # open containers: "{" or "["
        self.kinds: list[str | None] = []  # the kind of each open container's values
        self.mode = "value"
        self.first = True                 # the container just opened (a closing bracket may follow at once)
        self.is_key = False               # the string being read is an object key
        self.escape = 0                   # 1 after a backslash, 2..5 inside \\uXXXX
        self.token = ""                   # the number or literal read so far
        self.text = ""

    def copy(self) -> JsonPrefix:
        other = JsonPrefix.__new__(JsonPrefix)
        other.__dict__.update(self.__dict__)
        other.stack, other.kinds = list(self.stack), list(self.kinds)
        return other

    def expected(self) -> str | None:
        """The kind of the value that may start here."""
        return self.kinds[-1] if self.stack else self.kind

    @property
    def done(self) -> bool:
        return self.mode == "done"

    def can_end(self) -> bool:
        """True when the value is complete, or is a top-level number that could end here."""
        return self.done or (self.mode == "number" and not self.stack
                             and _COMPLETE_NUMBER.fullmatch(self.token) is not None)

    def feed_text(self, text: str) -> bool:
        """Feed every character of text; False (state unchanged) unless all of them fit."""
        trial = self.copy()
        for ch in text:
            if not trial.feed(ch):
                return False
        self.__dict__.update(trial.__dict__)
        return True

    def feed(self, ch: str) -> bool:
        ok = self._feed(ch)
        if ok:
            self.text += ch
        return ok

    def _feed(self, ch: str) -> bool:
        mode = self.mode
        if mode == "done":
            return False
        if mode == "string":
            return self._string(ch)
        if mode == "number":
            if _NUMBER.fullmatch(self.token + ch):
                self.token += ch
                return True
            if _COMPLETE_NUMBER.fullmatch(self.token) and self.stack:
                self._end_value()
                return self._feed(ch)
            return False
        if mode == "literal":
            word = _LITERALS[self.token[0]]
            if word.startswith(self.token + ch):
                self.token += ch
                if self.token == word:
                    self._end_value()
                return True
            return False
        if ch in WHITESPACE:
            return True
        if mode == "value":
            return self._start_value(ch)
        if mode == "key":
            if ch == '"':
                self.mode, self.is_key = "string", True
                return True
            if ch == "}" and self.first:
                return self._close()
            return False
        if mode == "colon":
            if ch == ":":
                self.mode, self.first = "value", False
                return True
            return False
        # after a value inside a container
        top = self.stack[-1]
        if ch == ",":
            self.mode, self.first = ("key" if top == "{" else "value"), False
            return True
        if ch in "}]" and (ch == "}") == (top == "{"):
            return self._close()
        return False

    def _start_value(self, ch: str) -> bool:
        if ch == "]" and self.stack and self.stack[-1] == "[" and self.first:
            return self._close()
        base, child = split_kind(self.expected())
        if base is not None and ch not in _FIRST[base]:
            return False
        if ch in "{[":
            if len(self.stack) >= self.max_depth:
                return False
            self.stack.append(ch)
            self.kinds.append(child)
            self.mode, self.first = ("key" if ch == "{" else "value"), True
            return True
        if ch == '"':
            self.mode, self.is_key = "string", False
            return True
        if ch in "-0123456789":
            self.mode, self.token = "number", ch
            return True
        if ch in _LITERALS:
            self.mode, self.token = "literal", ch
            return True
        return False

    def _string(self, ch: str) -> bool:
        if self.escape == 1:
            if ch in '"\\/bfnrt':
                self.escape = 0
                return True
            if ch == "u":
                self.escape = 2
                return True
            return False
        if self.escape >= 2:
            if ch in "0123456789abcdefABCDEF":
                self.escape = 0 if self.escape == 5 else self.escape + 1
                return True
            return False
        if ch == "\\":
            self.escape = 1
            return True
        if ch == '"':
            if self.is_key:
                self.mode, self.is_key = "colon", False
            else:
                self._end_value()
            return True
        return ord(ch) >= 0x20

    def _end_value(self) -> None:
        self.token = ""
        self.mode = "after" if self.stack else "done"

    def _close(self) -> bool:
        self.stack.pop()
        self.kinds.pop()
        self._end_value()
        return True

    def closing(self) -> str:
        """The shortest text that completes the value from this state."""
        trial, out = self.copy(), ""

        def push(text: str) -> None:
            nonlocal out
            for ch in text:
                if not trial.feed(ch):
                    raise AssertionError(f"closing {ch!r} refused in mode {trial.mode}")
            out += text

        for _ in range(4 * (self.max_depth + 2)):
            if trial.done or (trial.mode == "number" and not trial.stack and trial.can_end()):
                return out
            mode = trial.mode
            if mode == "string":
                push("0" * (5 - trial.escape + 1) if trial.escape >= 2 else ("n" if trial.escape == 1 else ""))
                push('"')
            elif mode == "number":
                push("0" if not _COMPLETE_NUMBER.fullmatch(trial.token) else (trial.stack[-1] == "{" and "}" or "]"))
            elif mode == "literal":
                push(_LITERALS[trial.token[0]][len(trial.token):])
            elif mode == "colon":
                push(":" + _EMPTY[split_kind(trial.kinds[-1])[0]])
            elif mode == "key":
                push("}" if trial.first else '"":' + _EMPTY[split_kind(trial.kinds[-1])[0]])
            elif mode == "value":
                if trial.stack and trial.stack[-1] == "[" and trial.first:
                    push("]")
                else:
                    push(_EMPTY[split_kind(trial.expected())[0]])
            else:   # after
                push("}" if trial.stack[-1] == "{" else "]")
        raise AssertionError("closing did not terminate")
