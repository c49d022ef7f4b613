"""Karvdash 2.x's REST API shapes, for its clients (``karvdash_client`` and
its ``karvdashctl``), which keep working unchanged against the dashboard.

Karvdash served ``<base_url>/services/`` and ``<base_url>/templates/``
(list and detail, with the trailing slash), listed collections as
``{"objects": [...]}``, answered errors as ``{"error": "<message>"}``,
described a service by its ``template`` object (the template's fields and
the ``values`` it was made with) and an exec by ``{"result": [<output of
each pod>]}``. Here the dashboard's own objects are turned into those shapes;
the work itself is done by the same stores as the dashboard's API.

Everything here is pure.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from .templates import TEMPLATE_SUFFIX, ServiceTemplate

if TYPE_CHECKING:
    from .store import Instance  # a type only: the store loads kubernetes_asyncio

# "all pods" as Karvdash's clients sent it: 1/0 from its library, booleans
# and strings from scripts; each text with what it means
_FLAG_TEXTS = {"1": True, "true": True, "True": True, "0": False, "false": False, "False": False}


def error_body(message: str) -> dict:
    return {"error": message}


def listing(items: list) -> dict:
    return {"objects": items}


def template_shape(template: ServiceTemplate, *, listed: bool = False, with_data: bool = False) -> dict:
    """A template as Karvdash described it: ``custom`` in listings, the
    YAML in ``data`` for one template, ``filename`` for the file ones."""
    variables = []
    for variable in template.variables:
        shown = {"name": variable.name, "default": "" if variable.secret else variable.default}
        shown.update({key: value for key, value in (("label", variable.label), ("help", variable.help)) if value})
        if variable.secret:
            shown["secret"] = True
        variables.append(shown)
    shape = {
        "id": template.id,
        "name": template.name,
        "description": template.description,
        "singleton": template.singleton,
        "auth": template.auth,
        "datasets": template.datasets,
        "variables": variables,
    }
    if template.source != "user":
        shape["filename"] = template.filename or template.id + TEMPLATE_SUFFIX
    if listed:
        shape["custom"] = template.source == "user"
    if with_data:
        shape["data"] = template.text
    return shape


def created_time(timestamp: str) -> str | None:
    """Kubernetes' ``2021-06-28T10:00:00Z`` as Karvdash sent it (Python's
    ``isoformat``: ``2021-06-28T10:00:00+00:00``)."""
    try:
        moment = datetime.fromisoformat(timestamp)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat()


def service_shape(instance: Instance, template: ServiceTemplate | None, generated: dict | None = None) -> dict:
    """A service as Karvdash listed it. ``template`` is None when the
    template is gone (Karvdash then sent ``"template": null``); secrets
    generated for a new service are among its ``values`` this once."""
    described = None
    if template is not None:
        described = {**template_shape(template), "values": {**instance.values, **(generated or {})}}
    return {
        "name": instance.name,
        "url": instance.url or None,
        "created": created_time(instance.created),
        # every service here is the dashboard's own, so it may be removed
        "actions": True,
        "template": described,
    }


def exec_shape(results: list[dict]) -> dict:
    """``[{"pod", "output", "exit_code"}]`` as Karvdash answered an exec."""
    return {"result": [result["output"] for result in results]}


def all_pods_flag(value) -> bool:
    """Karvdash's ``all_pods``: true or false, 1 or 0, "1" or "0" (and
    "true"/"false"), left out for false; anything else is refused rather
    than read as false. Raises ValueError."""
    if value is None or isinstance(value, bool):
        return bool(value)
    if type(value) is int and value in (0, 1):
        return value == 1
    if isinstance(value, str) and value in _FLAG_TEXTS:
        return _FLAG_TEXTS[value]
    raise ValueError(f"all_pods must be true or false, 1 or 0, not {value!r}")
