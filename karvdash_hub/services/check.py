"""``karvdash-hub check-template FILE...``: is a service template fit to
run here, before anyone starts a service from it?

Each file is read as an administrator's template would be (converting
removed API versions and renaming objects named without ``$NAME``, with a
warning for each), rendered with its defaults for an example user, and
every object is checked, offline, against the JSON schema of the
Kubernetes version the hub is made for (kubernetes-validate, strict: a
field the kind does not have is an error, as with the server-side apply the
dashboard does). One line per object, ``Kind/name: ok`` or ``Kind/name:
error: ...``; the exit status is 1 if anything is wrong, 2 for bad usage.

Custom resources (Argo's Workflow, say) have no schema offline: they are
reported ``not checked``, which is not an error; a built-in group's
version that Kubernetes does not serve is.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from . import templates as st

# The Kubernetes release the hub is built and tested against
# (tools/kube/versions.env pins its control plane).
KUBERNETES_VERSION = "1.34"
EXAMPLE_USER = "admin"
EXAMPLE_DOMAIN = "example.org"
OK, FAILED, USAGE = 0, 1, 2


def main(argv: list[str], out: TextIO | None = None) -> int:
    out = out or sys.stdout
    parser = argparse.ArgumentParser(
        prog="karvdash-hub check-template",
        description="Read, convert, render (with the defaults) and validate service templates offline.",
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="*.template.yaml files")
    parser.add_argument("--kubernetes-version", default=KUBERNETES_VERSION, metavar="X.Y",
                        help=f"validate against this Kubernetes release (default {KUBERNETES_VERSION})")
    try:
        arguments = parser.parse_args(argv)
    except SystemExit as exit:
        return USAGE if exit.code else OK
    # imported here: loading the schemas' package is not for every start of the hub
    import kubernetes_validate

    try:
        kubernetes_validate.validate({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}},
                                     arguments.kubernetes_version, strict=True)
    except Exception:  # noqa: BLE001 - any failure here means the version has no schemas
        print(f"check-template: no schemas for Kubernetes {arguments.kubernetes_version}", file=sys.stderr)
        return USAGE
    status = OK
    for name in arguments.files:
        if not check_file(Path(name), arguments.kubernetes_version, out):
            status = FAILED
    return status


def check_file(path: Path, version: str, out: TextIO) -> bool:
    """Print what the file gives; True if every object is fine."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        print(f"{path}: error: cannot read it ({error})", file=out)
        return False
    template_id = (path.name[: -len(st.TEMPLATE_SUFFIX)] if path.name.endswith(st.TEMPLATE_SUFFIX)
                   else path.stem)
    if not st.TEMPLATE_ID.match(template_id):
        template_id = st.slug(template_id)
    try:
        template = st.parse_template(text, template_id, "admin", filename=path.name)
    except st.TemplateError as error:
        print(f"{path}: error: {error}", file=out)
        return False
    for note in template.notes:
        print(f"{path}: warning: {note}", file=out)
    try:
        rendered = render_example(template)
    except (st.TemplateError, st.ValuesError) as error:
        print(f"{path}: error: cannot render it with its defaults: {error}", file=out)
        return False
    good = True
    for obj in rendered.objects:
        problem = object_problem(obj, version)
        label = f"{obj['kind']}/{obj['metadata']['name']}"
        if problem is None:
            print(f"{path}: {label}: ok", file=out)
        elif problem.startswith("not checked"):
            print(f"{path}: {label}: {problem}", file=out)
        else:
            good = False
            print(f"{path}: {label}: error: {problem}", file=out)
    return good


def render_example(template: st.ServiceTemplate) -> st.RenderedService:
    """The template's objects for its defaults, as a service of an example user."""
    values = template.form_defaults()
    name = values["NAME"]
    context = st.RenderContext(
        username=EXAMPLE_USER,
        namespace=f"karvdash-{EXAMPLE_USER}",
        hostname=st.hostname_for(st.check_name(name), EXAMPLE_USER, EXAMPLE_DOMAIN),
        registry=f"registry.{EXAMPLE_DOMAIN}",
        auth_url=f"https://{EXAMPLE_DOMAIN}/services/karvdash/ingress-auth/check/{EXAMPLE_USER}/{name}",
        signin_url=f"https://{EXAMPLE_DOMAIN}/services/karvdash/ingress-auth/signin",
        max_objects=max(st.DEFAULT_MAX_OBJECTS, len(template.objects)),
    )
    return st.render(template, values, context)


def object_problem(obj: dict, version: str) -> str | None:
    """None if ``obj`` matches its kind's schema, else what is wrong."""
    import kubernetes_validate

    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        where = ".".join(str(part) for part in error.absolute_path)
        return f"{where}: {error.message}" if where else error.message
    except kubernetes_validate.SchemaNotFoundError:
        group = obj["apiVersion"].rpartition("/")[0]
        if not group or "." not in group or group.endswith(".k8s.io"):
            return f"Kubernetes {version} does not serve {obj['kind']} in {obj['apiVersion']}"
        return f"not checked (no schema offline for the custom resource {obj['apiVersion']} {obj['kind']})"
    return None
