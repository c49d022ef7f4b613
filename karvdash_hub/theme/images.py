"""The deployment's logo and favicon (``dashboardLogo``, ``dashboardFavicon``).

Each is empty, an http(s) URL (the browser loads it from there; the hub never
fetches it), or the absolute path of an image file, read and checked once
when the hub starts (a bad one stops start-up naming the setting) and served
by the hub at ``/hub/theme/<name>`` to its pages and the dashboard's, the
login page included. :func:`image_type` is pure; :func:`load_theme_images`
reads the files.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from karvdash_hub.core.settings import KarvdashConfig, SettingsError

THEME_PATH = "/hub/theme/"
# name -> (setting, largest file in bytes)
IMAGES = {
    "logo": ("dashboardLogo", 512 * 1024),
    "favicon": ("dashboardFavicon", 128 * 1024),
}
# leading bytes -> type (what browsers show as images, SVG apart)
SIGNATURES = [
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"\x00\x00\x01\x00", "image/x-icon"),
]


def image_type(data: bytes) -> str:
    """The MIME type of an image file's bytes ('' if they are no image
    this hub serves: PNG, JPEG, GIF, WebP, ICO or SVG)."""
    for signature, kind in SIGNATURES:
        if data.startswith(signature):
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    try:
        head = data[:2048].decode("utf-8").lstrip("\ufeff").lstrip()
    except UnicodeDecodeError:
        return ""
    if head.startswith(("<?xml", "<!--", "<svg")) and "<svg" in head:
        return "image/svg+xml"
    return ""


def is_file_setting(value: str) -> bool:
    """An image setting that names a file (not a URL, not empty)."""
    return value.startswith("/")


def image_url(settings: KarvdashConfig, name: str) -> str:
    """Where pages load the image ``name`` from ('' when it is not set)."""
    value = getattr(settings, IMAGES[name][0])
    return THEME_PATH + name if is_file_setting(value) else value


@dataclass(frozen=True)
class ThemeImage:
    content: bytes
    content_type: str

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha256(self.content).hexdigest()[:32] + '"'


def load_theme_images(settings: KarvdashConfig) -> dict[str, ThemeImage]:
    """The image files the settings name, read and checked; raises
    SettingsError naming the setting of a missing, large or non-image file."""
    images = {}
    for name, (setting, largest) in IMAGES.items():
        value = getattr(settings, setting)
        if not is_file_setting(value):
            continue
        path = Path(value)
        try:
            size = path.stat().st_size
            if size > largest:
                raise SettingsError(setting, f"{path} has {size} bytes; an image here has at most {largest // 1024} KiB")
            data = path.read_bytes()
            if len(data) > largest:  # it grew since
                raise SettingsError(setting, f"{path} is larger than {largest // 1024} KiB")
        except OSError as e:
            raise SettingsError(setting, f"cannot read {path}: {e.strerror}") from None
        kind = image_type(data)
        if not kind:
            raise SettingsError(setting, f"{path} is not a PNG, JPEG, GIF, WebP, ICO or SVG image")
        images[name] = ThemeImage(data, kind)
    return images
