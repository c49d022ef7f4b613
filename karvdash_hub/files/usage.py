"""How much a folder holds, counted within a bound.

A private folder can hold millions of files; the Home page wants a figure,
not a full walk on every visit. The count stops after ``max_entries``
entries or ``max_seconds``, and then says it is a lower bound. Links are
not followed (they are counted as themselves), so the walk never leaves
the folder.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

MAX_ENTRIES = 200_000
MAX_SECONDS = 2.0


@dataclass(frozen=True)
class Usage:
    bytes: int
    files: int
    # False when the count stopped at its bound: the folder holds at least this much
    complete: bool

    def to_json(self) -> dict:
        return {"bytes": self.bytes, "files": self.files, "complete": self.complete}


def folder_usage(folder: Path, max_entries: int = MAX_ENTRIES, max_seconds: float = MAX_SECONDS, clock=time.monotonic) -> Usage:
    """Bytes and files under ``folder`` (blocking: run it off the event loop)."""
    deadline = clock() + max_seconds
    total = files = seen = 0
    pending = [str(folder)]
    while pending:
        try:
            with os.scandir(pending.pop()) as entries:
                for entry in entries:
                    seen += 1
                    if seen > max_entries or clock() > deadline:
                        return Usage(total, files, complete=False)
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            pending.append(entry.path)
                            continue
                        total += entry.stat(follow_symlinks=False).st_size
                    except OSError:
                        continue  # gone while counting
                    files += 1
        except OSError:
            continue  # a folder gone or unreadable: count the rest
    return Usage(total, files, complete=True)
