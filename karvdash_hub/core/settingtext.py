"""A setting's value from its text, as environment variables and Karvdash's
values files give it; shared by :mod:`.settings` and :mod:`.karvdashvalues`."""

from __future__ import annotations

import os

import yaml
from traitlets import Bool, Dict, Integer, List, TraitError


class SettingsError(ValueError):
    """A deployment setting is wrong; the message names the setting."""

    def __init__(self, name: str, message: str):
        self.setting = name
        super().__init__(f"setting {name}: {message}")


def check_absolute_path(value: str) -> str:
    if not value.startswith("/"):
        raise TraitError(f"{value!r} is not an absolute path")
    if "\0" in value:
        raise TraitError("a path cannot contain a NUL byte")
    return os.path.normpath(value)


def parse_setting_text(trait, name: str, raw: str):
    """The value of setting ``name`` (a ``trait``) written as ``raw`` text."""
    if isinstance(trait, Bool):
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("", "0", "false", "no", "off"):
            return False
        raise SettingsError(name, f"{raw!r} is not a boolean (true/false)")
    if isinstance(trait, Integer):
        try:
            return int(raw)
        except ValueError:
            raise SettingsError(name, f"{raw!r} is not a whole number") from None
    if isinstance(trait, List):
        raw = raw.strip()
        if raw.startswith("["):
            value = yaml.safe_load(raw)
            if not isinstance(value, list):
                raise SettingsError(name, "is not a list")
            return value
        separator = ":" if name == "allowedHostPathDirs" else ","
        return [item.strip() for item in raw.split(separator) if item.strip()]
    if isinstance(trait, Dict):
        value = yaml.safe_load(raw)
        if not isinstance(value, dict):
            raise SettingsError(name, "is not a mapping")
        return value
    return raw
