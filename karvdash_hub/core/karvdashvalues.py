"""Values from Karvdash: a Karvdash 2.x ``karvdash:`` values section read as
karvdash-hub settings.

:func:`map_karvdash_values` is the one place where Karvdash's names and
forms become karvdash-hub's: renamed keys, keys that now mean JupyterHub
configuration, keys that no longer apply, and the forms Karvdash's chart
passed through environment variables (empty for unset, "set to anything to
enable", ``:``-separated folders). It is pure: it returns the new values
and one warning per Karvdash key it met; :func:`~.settings.load_settings`
applies it to every values file, so the hub, the dashboard and the webhook
read the same settings, and the programs log the warnings at start-up.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from traitlets import Bool, Dict, Integer, List, TraitError

from .settingtext import SettingsError, check_absolute_path, parse_setting_text

# Karvdash key -> setting of the same meaning under its karvdash-hub name
RENAMED = {
    "dockerRegistry": "dockerRegistryURL",
    "dockerRegistryNoVerify": "dockerRegistryInsecure",
    "djangoDebug": "debug",
    # the chart mounts the state volume at stateDir; a values file the hub
    # reads itself names the folder
    "stateHostPath": "stateDir",
}

# Karvdash keys that no longer apply, and what happens instead
DROPPED = {
    "stateVolumeClaim": "it names a PersistentVolumeClaim, which only the Helm chart mounts (as the hub's "
    "state volume, at stateDir); the hub keeps its state in stateDir",
    "logsVolumeClaim": "it names a PersistentVolumeClaim, which only the Helm chart mounts (the hub writes "
    "jupyterhub.log there); set hub.config.JupyterHub.extra_log_file for a log file",
    "htpasswdExportDir": "karvdash-hub exports no htpasswd file: the hub's own login protects services "
    "(ingress-nginx asks the dashboard), so there is no password file to export",
}

COOKIE_SECRET = ("JupyterHub", "cookie_secret")
LOG_FILE = ("JupyterHub", "extra_log_file")

# Karvdash said "set to anything to enable" for these
ANYTHING_ENABLES = {"datasetsAvailable", "djangoDebug", "dockerRegistryNoVerify"}
OFF_WORDS = ("", "0", "false", "no", "off")

KARVDASH_KEYS = {*RENAMED, *DROPPED, "djangoSecret", "logsHostPath"}

# Settings for which an empty string is a value of its own, not "unset"
EMPTY_IS_A_VALUE = {"ingressClassName", "ingressControllerNamespace"}


@dataclass(frozen=True)
class MappedValues:
    settings: dict
    hub_config: dict
    warnings: tuple[str, ...] = ()


def enabled(value) -> bool:
    """Karvdash's "set to anything to enable": off for nothing, empty,
    ``0``, ``false``, ``no`` and ``off``, on for anything else."""
    if isinstance(value, bool):
        return value
    return value is not None and str(value).strip().lower() not in OFF_WORDS


UNSET = object()


def setting_value(name: str, trait, value):
    """A value of the values file in the type of its setting, or UNSET."""
    if isinstance(trait, Bool) and name in ANYTHING_ENABLES:
        return enabled(value)
    if value is None or (value == "" and name not in EMPTY_IS_A_VALUE and not isinstance(trait, Bool)):
        return UNSET
    if isinstance(value, str) and isinstance(trait, (Bool, Integer, List, Dict)):
        # the same text forms as the environment: "yes", "", "12", "/a:/b", "a,b"
        return parse_setting_text(trait, name, value)
    return value


def _hub_section(hub_config: dict, section: str) -> dict:
    values = hub_config.setdefault(section, {})
    if not isinstance(values, dict):
        raise SettingsError(f"hub.config.{section}", "must be a mapping")
    return values


def _log_file(folder) -> str:
    try:
        return check_absolute_path(str(folder)).rstrip("/") + "/jupyterhub.log"
    except TraitError as error:
        raise SettingsError("logsHostPath", str(error)) from None


def map_karvdash_values(settings: dict, hub_config: dict | None, traits: dict) -> MappedValues:
    """Karvdash's values (``settings``, the ``karvdash:`` section, and the
    ``hub.config`` sections beside it) as karvdash-hub's settings (``traits``,
    by name), with one warning
    per Karvdash key that has a value. Keys that are no setting are left as
    they are (the caller names them). Raises SettingsError when a Karvdash
    key and its new name are both set, to different values."""
    mapped = {}
    for name, value in settings.items():
        if name in KARVDASH_KEYS:
            continue
        if name in traits:
            value = setting_value(name, traits[name], value)
        if value is not UNSET:
            mapped[name] = value
    hub = {section: dict(values) if isinstance(values, dict) else values
           for section, values in (hub_config or {}).items()}
    warnings = []

    def put(old: str, target: dict, key: str, label: str, value, advice: str = "rename it") -> None:
        current = target.get(key, UNSET)
        if current not in (UNSET, None, "") and current != value:
            raise SettingsError(old, f"is Karvdash's name of {label}, which is set too: keep only {label}")
        target[key] = value
        warnings.append(f"Karvdash value {old} is deprecated: it is read as {label}; {advice}")

    for old, value in settings.items():
        if old not in KARVDASH_KEYS or value is None or value == "":
            continue
        if old in RENAMED:
            new = RENAMED[old]
            put(old, mapped, new, new, enabled(value) if old in ANYTHING_ENABLES else value)
        elif old in DROPPED:
            warnings.append(f"Karvdash value {old} no longer applies: {DROPPED[old]}; it is ignored")
        elif old == "djangoSecret":
            # JupyterHub wants 32 bytes (64 hex digits): derived as the chart always did
            secret = hashlib.sha256(str(value).encode()).hexdigest()
            section, key = COOKIE_SECRET
            put(old, _hub_section(hub, section), key, f"hub.config.{section}.{key} (its SHA-256)", secret,
                "set that instead")
        elif old == "logsHostPath":
            section, key = LOG_FILE
            log_file = _log_file(value)
            put(old, _hub_section(hub, section), key, f"hub.config.{section}.{key} ({log_file})", log_file,
                "set that instead")
    return MappedValues(settings=mapped, hub_config=hub, warnings=tuple(warnings))
