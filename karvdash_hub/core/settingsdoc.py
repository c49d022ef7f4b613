"""Write the settings reference (docs/settings.md) from the traits themselves,
so the documentation cannot drift from the code.

    python -m karvdash_hub.core.settingsdoc > docs/settings.md
"""

from __future__ import annotations

import inspect

from traitlets import Bool, Dict, Integer, List

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


def render() -> str:
    envs = env_names()
    rows = []
    for name, trait in sorted(KarvdashConfig.class_own_traits(config=True).items(), key=lambda kv: kv[0].lower()):
        meaning = " ".join(inspect.cleandoc(trait.help).split())
        rows.append(f"| `{name}` | `{envs[name]}` | {_type(trait)} | {_default(name, trait)} | {meaning} |")
    return HEADER + "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(render(), end="")
