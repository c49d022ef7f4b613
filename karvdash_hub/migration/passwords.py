"""Password hashes of accounts brought over from Karvdash.

Karvdash kept Django's encodings: ``<algorithm>$<iterations>$<salt>$<base64
hash>`` of PBKDF2 with HMAC-SHA256 or HMAC-SHA1, and, first in its hasher
list (so what every password set or used in Karvdash ends up as), its own
``apr1$<salt>$<hash>``: Apache's MD5-crypt without the leading ``$``, which
libpass checks. A migrated account keeps that text in NativeAuthenticator's
password column until its first successful login, when :func:`upgrade`
replaces it with the bcrypt hash the authenticator uses for every other
account.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets

import bcrypt
from passlib.hash import apr_md5_crypt

# Django's algorithm names -> hashlib's digest names
PBKDF2_DIGESTS = {"pbkdf2_sha256": "sha256", "pbkdf2_sha1": "sha1"}
# Django's own counts are below a few million; more would let a crafted
# database make every login attempt cost seconds
MAX_ITERATIONS = 10_000_000
# Karvdash's apr1 hasher: up to 8 salt characters and a 22-character hash, crypt's alphabet
APR1 = re.compile(r"^apr1\$[./0-9A-Za-z]{1,8}\$[./0-9A-Za-z]{22}\Z")


def _text(stored: bytes | str | None) -> str:
    if isinstance(stored, bytes):
        return stored.decode("ascii", errors="replace")
    return stored or ""


def algorithm(stored: bytes | str | None) -> str:
    """The Django algorithm name of a stored hash ('' for an unusable
    password, which Django writes as ``!`` and random text)."""
    text = _text(stored)
    if not text or text.startswith("!") or "$" not in text:
        return ""
    return text.split("$", 1)[0]


def parse(stored: bytes | str | None) -> tuple[str, int, str, bytes] | None:
    """(digest, iterations, salt, hash) of a Django PBKDF2 hash this hub
    can check, else None."""
    parts = _text(stored).split("$")
    if len(parts) != 4 or parts[0] not in PBKDF2_DIGESTS:
        return None
    name, iterations, salt, encoded = parts
    if not iterations.isdigit() or not 0 < int(iterations) <= MAX_ITERATIONS or not salt:
        return None
    try:
        expected = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(expected) != hashlib.new(PBKDF2_DIGESTS[name]).digest_size:
        return None
    return PBKDF2_DIGESTS[name], int(iterations), salt, expected


def apr1(stored: bytes | str | None) -> str | None:
    """Karvdash's ``apr1$<salt>$<hash>`` as Apache writes it (``$apr1$...``), else None."""
    text = _text(stored)
    return "$" + text if APR1.match(text) else None


def is_django_hash(stored: bytes | str | None) -> bool:
    """Whether ``stored`` is a hash Karvdash's Django kept that this hub
    checks (PBKDF2 or apr1; not a bcrypt one)."""
    return parse(stored) is not None or apr1(stored) is not None


def verify(password: str, stored: bytes | str | None) -> bool:
    """Whether ``password`` is the one of the Karvdash hash ``stored``
    (compared in constant time)."""
    if not isinstance(password, str):
        return False
    apache = apr1(stored)
    if apache is not None:
        return apr_md5_crypt.verify(password, apache)
    parsed = parse(stored)
    if parsed is None:
        return False
    digest, iterations, salt, expected = parsed
    computed = hashlib.pbkdf2_hmac(digest, password.encode("utf-8"), salt.encode("utf-8"), iterations)
    return hmac.compare_digest(computed, expected)


def matches(info, password: str) -> bool:
    """Whether ``password`` is the one of the NativeAuthenticator account
    ``info``, whichever kind of hash it holds (bcrypt would raise on a
    Django hash)."""
    if is_django_hash(info.password):
        return verify(password, info.password)
    return bool(info.is_valid_password(password))


def upgrade(db, info, password: str) -> bool:
    """If ``info`` still holds a Django hash and ``password`` matches it,
    store the bcrypt hash of ``password`` instead; True when it did."""
    if not is_django_hash(info.password) or not verify(password, info.password):
        return False
    info.password = bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt())
    db.commit()
    return True


def unusable() -> bytes:
    """A bcrypt hash no password matches in practice: for an account whose
    Karvdash password cannot be checked here (an administrator sets a new one)."""
    return bcrypt.hashpw(secrets.token_bytes(32).hex().encode(), bcrypt.gensalt())
