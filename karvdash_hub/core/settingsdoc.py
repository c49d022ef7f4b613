"""Write the settings reference (docs/settings.md) from the traits themselves,
so the documentation cannot drift from the code.

    python -m karvdash_hub.core.settingsdoc > docs/settings.md
"""

from __future__ import annotations

import inspect

from traitlets import Bool, Dict, Integer, List

from . import karvdashvalues as kv
from .settings import KarvdashConfig, env_names

HEADER = """# Settings reference

Every setting of karvdash-hub, as a key of the Helm chart's `karvdash:`
values, a key of the values file named by `KARVDASH_VALUES`, an environment
variable, or `c.KarvdashConfig.<name>` in `jupyterhub_config.py` (that order
is also the order of precedence, last wins). The hub, the dashboard and the
webhook read the same settings; a bad value stops start-up with a message
that names the setting.

This page is generated: `python -m karvdash_hub.core.settingsdoc > docs/settings.md`.

| Setting | Environment variable | Type | Default | Meaning |
|---|---|---|---|---|
"""


def _type(trait) -> str:
    if isinstance(trait, Bool):
        return "boolean"
    if isinstance(trait, Integer):
        return "integer"
    if isinstance(trait, List):
        return "list"
    if isinstance(trait, Dict):
        return "mapping"
    values = getattr(trait, "values", None)
    if values:
        return " \\| ".join(f"`{v}`" for v in values)
    return "string"


def _default(name: str, trait) -> str:
    if name == "stateDir":
        return "`.state` in the project"
    value = trait.default()
    if value in ("", None) or value == [] or value == {}:
        return ""
    return f"`{value}`"


def values_from_karvdash() -> str:
    """The section on Karvdash's values, from the mapping's own tables."""
    section, key = kv.COOKIE_SECRET
    cookie = f"`hub.config.{section}.{key}`: its SHA-256 (64 hex digits, the 32 bytes JupyterHub wants)"
    section, key = kv.LOG_FILE
    rows = [(old, f"`{new}`") for old, new in kv.RENAMED.items()]
    rows += [("djangoSecret", cookie),
             ("logsHostPath", f"`hub.config.{section}.{key}`: `<logsHostPath>/jupyterhub.log`")]
    rows += [(old, f"nothing: {why}") for old, why in kv.DROPPED.items()]
    table = "\n".join(f"| `{old}` | {new} |" for old, new in rows)
    anything = ", ".join(f"`{name}`" for name in sorted(kv.ANYTHING_ENABLES))
    off = ", ".join(f"`{word}`" for word in kv.OFF_WORDS if word)
    kept = ", ".join(f"`{name}`" for name in sorted(kv.EMPTY_IS_A_VALUE))
    return f"""
### Values from Karvdash

A Karvdash 2.x `karvdash:` values section works as it is in the values file
(in local mode too) and in the chart. Each key of Karvdash's that has a
value is read as the karvdash-hub setting below, and the hub (the dashboard
and the webhook too, when they run on their own) logs one warning for it at
start-up, `Karvdash value <key> ...`, naming what it is read as. The keys of
the same name mean the same. A Karvdash key and its new name set to
different values stop start-up. In the Helm chart, `stateVolumeClaim`,
`stateHostPath`, `logsVolumeClaim` and `logsHostPath` are the chart's own
values, its volumes ([deployment.md](deployment.md#values-from-karvdash)).

| Karvdash value | read as |
|---|---|
{table}

Karvdash passed its values through environment variables, so they were
text; they are read so:

- Empty (or no value at all) is unset: the setting's default. Only for
  {kept} is empty a value of its own.
- {anything}: Karvdash's "set to anything to enable": off for empty,
  {off}, on for anything else. Other boolean settings take the
  environment's words (`true`, `yes`, `on`, `1`, `false`, `no`, `off`,
  `0`, empty).
- Lists as text: `allowedHostPathDirs: /opt/a:/opt/b` is two folders
  (separated with `:`, as in Karvdash); other lists are separated with `,`
  or written as a YAML list. Numbers and mappings as text too, as in the
  environment.
"""


def render() -> str:
    envs = env_names()
    rows = []
    for name, trait in sorted(KarvdashConfig.class_own_traits(config=True).items(), key=lambda kv: kv[0].lower()):
        meaning = " ".join(inspect.cleandoc(trait.help).split())
        rows.append(f"| `{name}` | `{envs[name]}` | {_type(trait)} | {_default(name, trait)} | {meaning} |")
    return HEADER + "\n".join(rows) + "\n\n## Moving from Karvdash\n" + values_from_karvdash()


if __name__ == "__main__":
    print(render(), end="")
