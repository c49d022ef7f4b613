"""The shapes of Kubernetes names, checked wherever a name is made from
user input (settings, datasets, service templates), and :func:`free_name`,
which makes a taken name free with a random suffix."""

from __future__ import annotations

import re
import secrets
import string
from typing import Callable, Iterable

# RFC 1123 label: namespaces, most object names, PVCs, volume names.
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
# RFC 1123 subdomain: names of most other objects.
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
# Label values may be empty.
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")

# the suffix that makes a taken name free: "-" and four of these
SUFFIX_ALPHABET = string.ascii_lowercase + string.digits
SUFFIX_LENGTH = 4


def random_suffix(choose: Callable[[str], str] = secrets.choice) -> str:
    """``SUFFIX_LENGTH`` characters, each ``choose(SUFFIX_ALPHABET)``."""
    return "".join(choose(SUFFIX_ALPHABET) for _ in range(SUFFIX_LENGTH))


def free_name(
    wanted: str,
    taken: Iterable[str],
    *,
    limit: int,
    error: Exception,
    suffix: Callable[[], str] | None = None,
) -> str:
    """``wanted`` if it is not ``taken``, else ``<wanted>-<suffix()>``, with
    ``wanted`` shortened so that the name has at most ``limit`` characters.
    Raises ``error`` when 100 suffixes give no free name."""
    taken = set(taken)
    if wanted not in taken:
        return wanted
    suffix = suffix or random_suffix
    base = wanted[: limit - SUFFIX_LENGTH - 1].rstrip("-")
    for _ in range(100):
        candidate = f"{base}-{suffix()}"
        if candidate not in taken:
            return candidate
    raise error
