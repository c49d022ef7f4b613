"""``karvdash-hub check-template``, run as the installed command: the shipped
catalogue and Karvdash 2.x templates (tests/karvdash_templates) pass, with a
warning per conversion; broken ones fail with a line naming the object;
exit statuses 0, 1 and 2."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from karvdash_hub.services import catalogue, check

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted(p.relative_to(ROOT) for p in (ROOT / "service_templates").glob("*.template.yaml"))
KARVDASH = sorted(p.relative_to(ROOT) for p in (ROOT / "tests" / "karvdash_templates").glob("*.template.yaml"))
COMMAND = [str(Path(sys.executable).parent / "karvdash-hub"), "check-template"]
HEADER = "kind: Template\nname: T\nvariables:\n- name: NAME\n  default: t\n"


def run(*args) -> subprocess.CompletedProcess:
    """The installed command, as an administrator runs it (from the repository)."""
    return subprocess.run([*COMMAND, *map(str, args)], capture_output=True, text=True, timeout=300, cwd=ROOT)


def check_here(capsys, *args) -> subprocess.CompletedProcess:
    """The same, in this process (the schemas' package is loaded once)."""
    status = check.main([str(a) for a in args])
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(args, status, captured.out, captured.err)


def test_the_shipped_catalogue_and_karvdash_templates_pass_as_the_command():
    result = run(*SHIPPED, *KARVDASH)
    assert result.returncode == 0, result.stdout + result.stderr
    templates, problems = catalogue.file_catalogue(ROOT / "service_templates", ROOT / "no-admin-templates")
    expected = []
    for path in SHIPPED:
        rendered = check.render_example(templates[path.name[: -len(".template.yaml")]])
        expected += [f"{path}: {o['kind']}/{o['metadata']['name']}: ok" for o in rendered.objects]
    # one line per object, and no warning: shipped templates are in the current form
    assert problems == [] and result.stdout.splitlines()[:len(expected)] == expected
    assert {"argo-metrics", "kubebox", "zookeeper"} <= set(templates)


def test_karvdash_templates_pass_and_every_conversion_is_a_warning(capsys):
    result = check_here(capsys, *KARVDASH)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert not [line for line in lines if ": error" in line]
    warnings = [line for line in lines if ": warning: " in line]
    for expected in [
        "web-v1beta1.template.yaml: warning: Ingress $NAME: extensions/v1beta1 converted to networking.k8s.io/v1 "
        "(annotation kubernetes.io/ingress.class became spec.ingressClassName; backend.serviceName/servicePort became "
        "backend.service.name/port; pathType Prefix added)",
        "web-v1beta1.template.yaml: warning: Deployment $NAME: apps/v1beta1 converted to apps/v1 (spec.selector set "
        "from the pod template's labels)",
        "notebook-statefulset.template.yaml: warning: StatefulSet $NAME: apps/v1beta1 converted to apps/v1 "
        "(spec.selector set from the pod template's labels)",
        "fixed-names.template.yaml: warning: ConfigMap settings renamed to $NAME-settings (a name without $NAME would "
        "be shared by every service of the template); 2 references renamed with it",
        "fixed-names.template.yaml: warning: CronJob $NAME: batch/v1beta1 converted to batch/v1",
        "kafka-shell.template.yaml: warning: Service zookeeper renamed to $NAME-zookeeper (a name without $NAME "
        "would be shared by every service of the template); 1 reference renamed with it",
    ]:
        assert any(line.endswith(expected) for line in warnings), (expected, warnings)
    assert "tests/karvdash_templates/fixed-names.template.yaml: ConfigMap/report-settings: ok" in lines
    assert "tests/karvdash_templates/kafka-shell.template.yaml: StatefulSet/kafka: ok" in lines
    assert "tests/karvdash_templates/web-v1beta1.template.yaml: Ingress/web: ok" in lines


def test_errors_name_the_object_and_exit_1(tmp_path):
    """As the command: its exit status."""
    bad = tmp_path / "bad.template.yaml"
    bad.write_text(HEADER + (
        "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: $NAME}\n"
        "spec: {replica: 1, selector: {matchLabels: {a: b}}, template: {metadata: {labels: {a: b}}, "
        "spec: {containers: [{name: c, image: x}]}}}\n"
        "---\napiVersion: storage.k8s.io/v1beta1\nkind: CSIStorageCapacity\nmetadata: {name: $NAME}\n"
        "storageClassName: x\n"
        "---\napiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {name: $NAME}\nspec: {}\n"
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: $NAME-ok}\n"))
    result = run(bad, KARVDASH[0])
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[:4] == [
        f"{bad}: Deployment/t: error: spec: Additional properties are not allowed ('replica' was unexpected)",
        f"{bad}: CSIStorageCapacity/t: error: Kubernetes 1.34 does not serve CSIStorageCapacity in "
        "storage.k8s.io/v1beta1",
        f"{bad}: Workflow/t: not checked (no schema offline for the custom resource argoproj.io/v1alpha1 Workflow)",
        f"{bad}: ConfigMap/t-ok: ok",
    ]
    # the next file is still checked
    assert any(line.startswith(f"{KARVDASH[0]}: ") and line.endswith(": ok") for line in lines)


def test_custom_resources_alone_do_not_fail(tmp_path, capsys):
    custom = tmp_path / "custom.template.yaml"
    custom.write_text(HEADER + "---\napiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {name: $NAME}\n")
    assert check_here(capsys, custom).returncode == 0


@pytest.mark.parametrize("text, message", [
    ("a: [", "error: not valid YAML"),
    (HEADER + "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: $NAME}\n",
     "error: object 1 (Namespace $NAME): Namespace is cluster-scoped"),
    (HEADER + "- name: N\n  default: 101\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: $NAME}\n"
     "data: {n: $N}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: $NAME}\nspec: {replicas: $N}\n",
     "error: cannot render it with its defaults: N: must be a whole number from 0 to 100 (replicas)"),
])
def test_templates_that_do_not_read_or_render_exit_1(tmp_path, capsys, text, message):
    path = tmp_path / "t.template.yaml"
    path.write_text(text)
    result = check_here(capsys, path)
    assert result.returncode == 1
    assert result.stdout.startswith(f"{path}: {message}")


def test_usage_errors_exit_2(tmp_path, capsys):
    nothing = run()
    assert nothing.returncode == 2 and "the following arguments are required: FILE" in nothing.stderr
    result = check_here(capsys, "--kubernetes-version", "0.1", SHIPPED[0])
    assert (result.returncode, result.stderr) == (2, "check-template: no schemas for Kubernetes 0.1\n")
    missing = check_here(capsys, tmp_path / "missing.template.yaml")
    assert missing.returncode == 1 and "error: cannot read it" in missing.stdout
    helped = check_here(capsys, "--help")
    assert helped.returncode == 0 and "usage: karvdash-hub check-template" in helped.stdout


def test_other_kubernetes_versions_can_be_asked_for(capsys):
    result = check_here(capsys, "--kubernetes-version", "1.30", ROOT / "service_templates" / "redis.template.yaml")
    assert result.returncode == 0 and result.stdout.count(": ok") == 3


def test_the_command_is_imported_only_when_asked_for():
    probe = ("import sys, karvdash_hub.hub.launcher as l; print(l.COMMANDS['check-template'], "
             "'kubernetes_validate' in sys.modules, 'karvdash_hub.services.check' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "('karvdash_hub.services.check', 'main') False False"


def test_the_version_is_the_test_control_planes_and_the_images_schemas():
    pinned = re.search(r"^KUBERNETES_VERSION=v(\d+\.\d+)\.", (ROOT / "tools" / "kube" / "versions.env").read_text(),
                       re.M).group(1)
    assert check.KUBERNETES_VERSION == pinned
    # the image keeps the schemas of that version only
    assert f"! -name 'v{pinned}.0-local-strict'" in (ROOT / "Dockerfile").read_text()
