"""How karvdashctl answers: text for people, ``--json`` for programs."""

from __future__ import annotations

import json
import sys
import time

# columns of numbers, aligned on their last digit
RIGHT_ALIGNED = {"size"}


class Output:
    def __init__(self, as_json: bool = False, stream=None, errors=None):
        self.json = as_json
        self.stream = stream or sys.stdout
        self.errors = errors or sys.stderr
        self._shown_progress = False

    def data(self, value) -> None:
        """The command's result, printed only with --json."""
        if self.json:
            print(json.dumps(value, indent=2, sort_keys=True), file=self.stream)

    def say(self, text: str) -> None:
        if not self.json:
            print(text, file=self.stream)

    def done(self, value, text: str) -> None:
        self.data(value)
        self.say(text)

    def table(self, headers: list[str], rows: list[tuple]) -> None:
        widths = [max([len(h)] + [len(str(r[i])) for r in rows]) for i, h in enumerate(headers)]
        for row in [headers, *rows]:
            cells = [
                str(c).rjust(w) if h in RIGHT_ALIGNED else str(c).ljust(w) for h, c, w in zip(headers, row, widths)
            ]
            print("  ".join(cells).rstrip(), file=self.stream)

    def progress(self, name: str, done: int, total: int, started: float) -> None:
        if self.json or not self.errors.isatty():
            return
        rate = done / max(time.monotonic() - started, 1e-6) / 2**20
        percent = f"{done * 100 // total:3d}%" if total else "    "
        print(f"\r{name}: {percent} {done / 2**20:,.1f} MiB ({rate:,.1f} MiB/s)", end="", file=self.errors, flush=True)
        self._shown_progress = True

    def progress_done(self) -> None:
        if self._shown_progress:
            print(file=self.errors)
            self._shown_progress = False

    def error(self, text: str, status: int | None = None) -> None:
        if self.json:
            print(json.dumps({"error": text, "status": status}), file=self.stream)
        print(f"karvdashctl: {text}", file=self.errors)
