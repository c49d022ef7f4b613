"""Spawn profiles: one YAML file per profile, offered on the hub's spawn page.

A profile file is a KubeSpawner ``profile_list`` entry (``display_name``,
``description``, ``default``, ``kubespawner_override``, ``profile_options``)
plus karvdash-hub keys: ``groups``, ``gpu``, ``datasets``, ``app`` and
``local``. ``spawner_profiles/README.md`` documents the format.

Files come from the shipped folder and the admin folder (``<stateDir>/profiles``);
an admin file replaces a shipped one of the same name. Everything is
validated when the hub starts, and user choices are validated strictly
(unknown profile, option or choice, or a free-form value that fails its regex
are refused with a message that says which).
"""

from __future__ import annotations

import copy
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema
import yaml

from karvdash_hub.core.names import DNS_LABEL

# The option of GPU profiles that says how many GPUs (choice keys are counts).
GPU_OPTION = "gpus"
# The port of a user server (KubeSpawner's default); an app must listen on another.
SERVER_PORT = 8888

UNLISTED_SUFFIX = "--unlisted-choice"

_CHOICE = {
    "type": "object",
    "required": ["display_name"],
    "additionalProperties": False,
    "properties": {
        "display_name": {"type": "string", "minLength": 1},
        "description": {"type": "string"},
        "default": {"type": "boolean"},
        "kubespawner_override": {"type": "object"},
    },
}

PROFILE_SCHEMA = {
    "type": "object",
    "required": ["display_name"],
    "additionalProperties": False,
    "properties": {
        "display_name": {"type": "string", "minLength": 1},
        "slug": {"type": "string", "pattern": DNS_LABEL.pattern},
        "description": {"type": "string"},
        "default": {"type": "boolean"},
        "groups": {"type": "array", "items": {"type": "string", "minLength": 1}},
        "gpu": {"type": "boolean"},
        "datasets": {"type": "boolean"},
        "app": {
            "type": "object",
            "required": ["command", "port"],
            "additionalProperties": False,
            "properties": {
                "command": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                "port": {"type": "integer", "minimum": 1, "maximum": 65535},
            },
        },
        "local": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "available": {"type": "boolean"},
                "reason": {"type": "string"},
                "cmd": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                "default_url": {"type": "string"},
            },
        },
        "kubespawner_override": {"type": "object"},
        "profile_options": {
            "type": "object",
            "propertyNames": {"pattern": "^[a-z][a-z0-9_]*$"},
            "additionalProperties": {
                "type": "object",
                "required": ["display_name"],
                "additionalProperties": False,
                "properties": {
                    "display_name": {"type": "string", "minLength": 1},
                    "choices": {
                        "type": "object",
                        "propertyNames": {"pattern": "^[A-Za-z0-9][-A-Za-z0-9_.]*$"},
                        "additionalProperties": _CHOICE,
                    },
                    "unlisted_choice": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "enabled": {"type": "boolean"},
                            "display_name": {"type": "string"},
                            "display_name_in_choices": {"type": "string"},
                            "validation_regex": {"type": "string"},
                            "validation_message": {"type": "string"},
                            "kubespawner_override": {"type": "object"},
                        },
                    },
                },
            },
        },
    },
}


class ProfileError(ValueError):
    """A profile file is invalid (found at start-up)."""


class UserOptionsError(ValueError):
    """The options a user asked for are not valid; the message says why."""


@dataclass
class Profile:
    slug: str
    display_name: str
    description: str = ""
    default: bool = False
    groups: list[str] = field(default_factory=list)
    gpu: bool = False
    datasets: bool = True
    app: dict | None = None
    local: dict = field(default_factory=dict)
    kubespawner_override: dict = field(default_factory=dict)
    profile_options: dict = field(default_factory=dict)
    source: str = ""

    @classmethod
    def from_file(cls, path: Path) -> Profile:
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            raise ProfileError(f"{path}: not valid YAML: {e}") from None
        if not isinstance(data, dict):
            raise ProfileError(f"{path}: a profile file holds one mapping")
        try:
            jsonschema.validate(data, PROFILE_SCHEMA)
        except jsonschema.ValidationError as e:
            where = "/".join(str(p) for p in e.absolute_path) or "(top)"
            raise ProfileError(f"{path}: at {where}: {e.message}") from None
        slug = data.pop("slug", path.stem)
        if not DNS_LABEL.match(slug):
            raise ProfileError(f"{path}: the file name {slug!r} is not a valid profile slug; set 'slug'")
        profile = cls(slug=slug, source=str(path), **data)
        profile._check_options()
        profile._default_local_command()
        return profile

    def _check_options(self) -> None:
        for name, option in self.profile_options.items():
            choices = option.get("choices", {})
            unlisted = option.get("unlisted_choice", {})
            if not choices and not unlisted.get("enabled"):
                raise ProfileError(f"{self.source}: option {name!r} has no choices and no enabled unlisted_choice")
            if sum(1 for c in choices.values() if c.get("default")) > 1:
                raise ProfileError(f"{self.source}: option {name!r} has several default choices")
            regex = unlisted.get("validation_regex")
            if regex is not None:
                try:
                    re.compile(regex)
                except re.error as e:
                    raise ProfileError(f"{self.source}: option {name!r}: bad validation_regex: {e}") from None
        gpus = self.profile_options.get(GPU_OPTION)
        if gpus is not None:
            if not self.gpu:
                raise ProfileError(f"{self.source}: option {GPU_OPTION!r} needs 'gpu: true'")
            if gpus.get("unlisted_choice", {}).get("enabled"):
                raise ProfileError(f"{self.source}: option {GPU_OPTION!r} takes listed GPU counts only")
            bad = [key for key in gpus.get("choices", {}) if not key.isdigit() or int(key) < 1]
            if bad:
                raise ProfileError(f"{self.source}: option {GPU_OPTION!r}: choices {bad} are not GPU counts (1, 2, ...)")
        if self.app and self.app["port"] == SERVER_PORT:
            raise ProfileError(
                f"{self.source}: app port {SERVER_PORT} is the server's own port (the hub's login proxy); use another"
            )

    def _default_local_command(self) -> None:
        """An app that can run locally runs behind jupyter-standaloneproxy, as
        in a pod: the hub's login in front of it, ``{port}`` chosen by the proxy."""
        if self.app and self.local.get("available") and not self.local.get("cmd"):
            proxy = Path(sys.executable).parent / "jupyter-standaloneproxy"
            self.local = {**self.local, "cmd": [str(proxy), "--", *self.app["command"]]}

    def override_keys(self) -> set[str]:
        """Every spawner trait this profile's overrides may set."""
        keys = set(self.kubespawner_override)
        for option in self.profile_options.values():
            for choice in option.get("choices", {}).values():
                keys |= set(choice.get("kubespawner_override", {}))
            keys |= set(option.get("unlisted_choice", {}).get("kubespawner_override", {}))
        return keys

    # --- where it can run ---------------------------------------------------------

    def local_unavailable_reason(self) -> str:
        """Why this profile cannot run without Kubernetes ('' if it can)."""
        if self.gpu:
            return "needs a GPU node of a Kubernetes cluster"
        if not self.local.get("available", False):
            return self.local.get("reason") or "needs Kubernetes: it runs from a container image"
        return ""

    def allowed_for(self, username: str, groups: set[str], is_admin: bool) -> bool:
        return not self.groups or is_admin or bool(groups & set(self.groups))

    # --- KubeSpawner ----------------------------------------------------------------

    def kubespawner_entry(self) -> dict:
        """This profile as an entry of KubeSpawner's ``profile_list``."""
        entry = {
            "slug": self.slug,
            "display_name": self.display_name,
            "description": self.description,
            "default": self.default,
            "kubespawner_override": copy.deepcopy(self.kubespawner_override),
        }
        if self.profile_options:
            entry["profile_options"] = copy.deepcopy(self.profile_options)
        return entry


@dataclass
class Selection:
    """A validated choice: the profile and, per option, the chosen key or free value."""

    profile: Profile
    choices: dict[str, str]
    unlisted: dict[str, str]

    def overrides(self) -> list[dict]:
        """KubeSpawner overrides to apply, in order: profile, then each option."""
        result = [self.profile.kubespawner_override]
        for name, option in self.profile.profile_options.items():
            if name in self.unlisted:
                template = option["unlisted_choice"].get("kubespawner_override", {})
                result.append(_format_values(template, value=self.unlisted[name]))
            else:
                result.append(option["choices"][self.choices[name]].get("kubespawner_override", {}))
        return copy.deepcopy(result)

    def user_options(self) -> dict:
        """The canonical user_options for this selection (as the form posts them)."""
        options = {"profile": self.profile.slug, **self.choices}
        options.update({name + UNLISTED_SUFFIX: value for name, value in self.unlisted.items()})
        return options


def _format_values(obj, **values):
    if isinstance(obj, str):
        return obj.format(**values)
    if isinstance(obj, dict):
        return {k: _format_values(v, **values) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_format_values(v, **values) for v in obj]
    return obj


def unknown_overrides(profile: Profile) -> list[str]:
    """The keys of ``profile``'s overrides that are not KubeSpawner settings
    (KubeSpawner would ignore a misspelt one silently)."""
    # imported here: local mode reads profiles without loading KubeSpawner
    from kubespawner import KubeSpawner

    return sorted(profile.override_keys() - set(KubeSpawner.class_trait_names(config=True)))


def load_profiles(folders: list[Path], disabled: list[str] = ()) -> list[Profile]:
    """Read ``*.yaml`` profiles from ``folders``; later folders replace earlier
    files of the same name. Raise ProfileError on the first invalid file."""
    by_name: dict[str, Path] = {}
    for folder in folders:
        if folder.is_dir():
            for path in sorted(folder.glob("*.yaml")):
                by_name[path.name] = path
    profiles = [Profile.from_file(path) for _, path in sorted(by_name.items())]
    known = {p.slug for p in profiles}
    unknown = sorted(set(disabled) - known)
    if unknown:
        raise ProfileError(f"disabledProfiles names unknown profiles {unknown}; known: {sorted(known)}")
    profiles = [p for p in profiles if p.slug not in disabled]
    seen = set()
    for profile in profiles:
        if profile.slug in seen:
            raise ProfileError(f"{profile.source}: another file also has slug {profile.slug!r}")
        seen.add(profile.slug)
    # list the default first, then by name, as people scan the form top-down
    profiles.sort(key=lambda p: (not p.default, p.display_name.lower()))
    return profiles


def select(profiles: list[Profile], user_options: dict) -> Selection:
    """Validate ``user_options`` against ``profiles`` (the ones the user may use)."""
    if not profiles:
        raise UserOptionsError("no profile is available to you")
    if not isinstance(user_options, dict):
        raise UserOptionsError("user options must be a JSON object")
    slug = user_options.get("profile")
    if slug in (None, ""):
        profile = next((p for p in profiles if p.default), profiles[0])
    else:
        profile = next((p for p in profiles if p.slug == slug), None)
        if profile is None:
            raise UserOptionsError(
                f"unknown profile {slug!r}; available: {', '.join(p.slug for p in profiles)}"
            )
    allowed_keys = {"profile"} | set(profile.profile_options)
    allowed_keys |= {name + UNLISTED_SUFFIX for name in profile.profile_options}
    extra = sorted(set(user_options) - allowed_keys)
    if extra:
        raise UserOptionsError(f"profile {profile.slug!r} has no option {', '.join(map(repr, extra))}")

    choices, unlisted = {}, {}
    for name, option in profile.profile_options.items():
        free = user_options.get(name + UNLISTED_SUFFIX)
        choice = user_options.get(name)
        label = option["display_name"]
        if free not in (None, ""):
            spec = option.get("unlisted_choice", {})
            if not spec.get("enabled"):
                raise UserOptionsError(f"{label}: this option takes one of the listed choices only")
            if not isinstance(free, str):
                raise UserOptionsError(f"{label}: the value must be text")
            regex = spec.get("validation_regex")
            if regex and not re.fullmatch(regex, free):
                message = spec.get("validation_message") or f"must match {regex}"
                raise UserOptionsError(f"{label}: {free!r} is not allowed: {message}")
            unlisted[name] = free
            continue
        available = option.get("choices", {})
        if choice in (None, ""):
            choice = next((k for k, c in available.items() if c.get("default")), next(iter(available), None))
            if choice is None:
                raise UserOptionsError(f"{label}: a value is required")
        elif choice not in available:
            raise UserOptionsError(f"{label}: unknown choice {choice!r}; choose from {', '.join(available)}")
        choices[name] = choice
    return Selection(profile=profile, choices=choices, unlisted=unlisted)


def options_from_form(formdata: dict[str, list[str]]) -> dict:
    """user_options from the spawn form, with KubeSpawner's field names:
    ``profile`` and ``profile-option-<slug>--<option>[--unlisted-choice]``."""
    slug = (formdata.get("profile") or [""])[0]
    options = {"profile": slug} if slug else {}
    prefix = f"profile-option-{slug}--"
    for key, values in formdata.items():
        if slug and key.startswith(prefix) and values:
            options[key[len(prefix):]] = values[0]
    # The form posts both the list and the free-text field of an option; the
    # free text counts only when "Other..." (the empty choice) is selected.
    for key in [k for k in options if k.endswith(UNLISTED_SUFFIX)]:
        name = key[: -len(UNLISTED_SUFFIX)]
        if options[key] == "" or options.get(name):
            del options[key]  # a listed choice wins
        else:
            options.pop(name, None)  # "Other..." selected: keep only the free value
    return options
