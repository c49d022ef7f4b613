"""The one error type of the domain code: a request that cannot be done,
with the HTTP status to answer and a message for the person who asked.

Files, services, datasets and images raise it (or a subclass naming their
concept); the dashboard turns it into its JSON error shape (or an error
page) in one place, ``karvdash_hub.dashboard.handlers``.
"""

from __future__ import annotations


class KarvdashError(Exception):
    """``status`` is the HTTP status to answer, ``message`` is shown as is;
    ``extra`` holds further fields of the JSON answer (e.g. the offset an
    upload goes on from)."""

    def __init__(self, status: int, message: str, **extra):
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra
