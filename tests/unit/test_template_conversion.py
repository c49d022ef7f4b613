"""Karvdash 2.x templates read unchanged: removed API versions converted to
their current form (exact manifests), objects named without $NAME renamed
with their references, and reserved variables filled only where declared."""

from __future__ import annotations

import pytest

from karvdash_hub.services import templates as st
from karvdash_hub.services.conversion import convert
from karvdash_hub.services.renaming import prefix_fixed_names

# --- conversion: exact manifests ----------------------------------------------------------


def test_extensions_ingress_becomes_networking_v1():
    old = {
        "apiVersion": "extensions/v1beta1", "kind": "Ingress",
        "metadata": {"name": "$NAME", "annotations": {"kubernetes.io/ingress.class": "nginx"}},
        "spec": {
            "tls": [{"hosts": ["$HOSTNAME"], "secretName": "$NAME-tls"}],
            "rules": [{"host": "$HOSTNAME", "http": {"paths": [
                {"path": "/", "backend": {"serviceName": "$NAME", "servicePort": 80}},
                {"path": "/api", "backend": {"serviceName": "$NAME-api", "servicePort": "http"}},
                {"backend": {"serviceName": "$NAME", "servicePort": "8080"}},
                {"path": "/exact", "pathType": "Exact", "backend": {"serviceName": "$NAME", "servicePort": 81}},
            ]}}],
        },
    }
    new, notes = convert(old)
    assert new == {
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "$NAME"},
        "spec": {
            "ingressClassName": "nginx",
            "tls": [{"hosts": ["$HOSTNAME"], "secretName": "$NAME-tls"}],
            "rules": [{"host": "$HOSTNAME", "http": {"paths": [
                {"path": "/", "pathType": "Prefix",
                 "backend": {"service": {"name": "$NAME", "port": {"number": 80}}}},
                {"path": "/api", "pathType": "Prefix",
                 "backend": {"service": {"name": "$NAME-api", "port": {"name": "http"}}}},
                {"pathType": "ImplementationSpecific",
                 "backend": {"service": {"name": "$NAME", "port": {"number": 8080}}}},
                {"path": "/exact", "pathType": "Exact",
                 "backend": {"service": {"name": "$NAME", "port": {"number": 81}}}},
            ]}}],
        },
    }
    assert notes == [
        "Ingress $NAME: extensions/v1beta1 converted to networking.k8s.io/v1 (annotation kubernetes.io/ingress.class "
        "became spec.ingressClassName; backend.serviceName/servicePort became backend.service.name/port; "
        "pathType ImplementationSpecific/Prefix added)"]
    # the original is left as it was
    assert old["apiVersion"] == "extensions/v1beta1" and "serviceName" in old["spec"]["rules"][0]["http"]["paths"][0][
        "backend"]


def test_networking_v1beta1_ingress_regex_paths_default_backend_and_class_set():
    old = {
        "apiVersion": "networking.k8s.io/v1beta1", "kind": "Ingress",
        "metadata": {"name": "$NAME", "annotations": {
            "kubernetes.io/ingress.class": "other", "nginx.ingress.kubernetes.io/use-regex": "true"}},
        "spec": {
            "ingressClassName": "nginx",
            "backend": {"serviceName": "$NAME", "servicePort": "$PORT"},
            "rules": [{"host": "$HOSTNAME", "http": {"paths": [
                {"path": "/app(/|$)(.*)", "backend": {"serviceName": "$NAME", "servicePort": "$PORT_NAME"}},
            ]}}],
        },
    }
    new, notes = convert(old, {"PORT": "8080", "PORT_NAME": "web"})
    assert new == {
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "$NAME", "annotations": {"nginx.ingress.kubernetes.io/use-regex": "true"}},
        "spec": {
            "ingressClassName": "nginx",
            "defaultBackend": {"service": {"name": "$NAME", "port": {"number": "$PORT"}}},
            "rules": [{"host": "$HOSTNAME", "http": {"paths": [
                {"path": "/app(/|$)(.*)", "pathType": "ImplementationSpecific",
                 "backend": {"service": {"name": "$NAME", "port": {"name": "$PORT_NAME"}}}},
            ]}}],
        },
    }
    assert notes == [
        "Ingress $NAME: networking.k8s.io/v1beta1 converted to networking.k8s.io/v1 (annotation "
        "kubernetes.io/ingress.class dropped (spec.ingressClassName is set); spec.backend became spec.defaultBackend; "
        "backend.serviceName/servicePort became backend.service.name/port; pathType ImplementationSpecific added)"]


@pytest.mark.parametrize("path, expected", [
    ("/", "Prefix"), ("/$NAME/x", "Prefix"), ("$PREFIX", "Prefix"), ("/a.*", "ImplementationSpecific"),
    ("/a(b)", "ImplementationSpecific"), ("relative", "ImplementationSpecific"), (None, "ImplementationSpecific"),
])
def test_path_types(path, expected):
    rule = {"path": path} if path is not None else {}
    old = {"apiVersion": "extensions/v1beta1", "kind": "Ingress", "metadata": {"name": "x"},
           "spec": {"rules": [{"host": "h", "http": {"paths": [{**rule, "backend": {"serviceName": "s",
                                                                                    "servicePort": 1}}]}}]}}
    assert convert(old)[0]["spec"]["rules"][0]["http"]["paths"][0]["pathType"] == expected


@pytest.mark.parametrize("version", ["apps/v1beta1", "apps/v1beta2", "extensions/v1beta1"])
@pytest.mark.parametrize("kind", ["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"])
def test_workloads_become_apps_v1_with_a_selector_from_their_labels(version, kind):
    old = {"apiVersion": version, "kind": kind, "metadata": {"name": "$NAME"},
           "spec": {"template": {"metadata": {"labels": {"app": "$NAME", "tier": "web"}},
                                 "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}
    new, notes = convert(old)
    assert new == {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": "$NAME"},
                   "spec": {"selector": {"matchLabels": {"app": "$NAME", "tier": "web"}},
                            "template": {"metadata": {"labels": {"app": "$NAME", "tier": "web"}},
                                         "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}
    assert notes == [f"{kind} $NAME: {version} converted to apps/v1 (spec.selector set from the pod template's labels)"]


def test_a_written_selector_stays_and_removed_fields_go():
    old = {"apiVersion": "extensions/v1beta1", "kind": "Deployment", "metadata": {"name": "$NAME"},
           "spec": {"rollbackTo": {"revision": 1}, "selector": {"matchLabels": {"app": "x"}},
                    "template": {"metadata": {"labels": {"app": "x", "more": "y"}}}}}
    new, notes = convert(old)
    assert new == {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "$NAME"},
                   "spec": {"selector": {"matchLabels": {"app": "x"}},
                            "template": {"metadata": {"labels": {"app": "x", "more": "y"}}}}}
    assert notes == ["Deployment $NAME: extensions/v1beta1 converted to apps/v1 (spec.rollbackTo dropped (apps/v1 has "
                     "no such field))"]
    daemon = {"apiVersion": "extensions/v1beta1", "kind": "DaemonSet", "metadata": {"name": "d"},
              "spec": {"templateGeneration": 3, "selector": {"matchLabels": {"a": "b"}}}}
    assert "templateGeneration" not in convert(daemon)[0]["spec"]


@pytest.mark.parametrize("old_version, kind, new_version", [
    ("batch/v1beta1", "CronJob", "batch/v1"),
    ("batch/v2alpha1", "CronJob", "batch/v1"),
    ("policy/v1beta1", "PodDisruptionBudget", "policy/v1"),
    ("rbac.authorization.k8s.io/v1beta1", "Role", "rbac.authorization.k8s.io/v1"),
    ("rbac.authorization.k8s.io/v1beta1", "RoleBinding", "rbac.authorization.k8s.io/v1"),
    ("rbac.authorization.k8s.io/v1alpha1", "Role", "rbac.authorization.k8s.io/v1"),
    ("extensions/v1beta1", "NetworkPolicy", "networking.k8s.io/v1"),
    ("autoscaling/v2beta2", "HorizontalPodAutoscaler", "autoscaling/v2"),
    ("coordination.k8s.io/v1beta1", "Lease", "coordination.k8s.io/v1"),
])
def test_kinds_whose_fields_did_not_change(old_version, kind, new_version):
    old = {"apiVersion": old_version, "kind": kind, "metadata": {"name": "$NAME"}, "spec": {"a": [1, {"b": 2}]}}
    new, notes = convert(old)
    assert new == {**old, "apiVersion": new_version}
    assert notes == [f"{kind} $NAME: {old_version} converted to {new_version}"]


def test_an_empty_disruption_budget_selector_is_pointed_out():
    old = {"apiVersion": "policy/v1beta1", "kind": "PodDisruptionBudget", "metadata": {"name": "$NAME"},
           "spec": {"maxUnavailable": 1, "selector": {}}}
    assert convert(old)[1] == ["PodDisruptionBudget $NAME: policy/v1beta1 converted to policy/v1 (its empty "
                               "spec.selector selects every pod of the namespace in policy/v1, none before)"]


def test_autoscaler_v2beta1_metrics():
    old = {"apiVersion": "autoscaling/v2beta1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "$NAME"},
           "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "$NAME"},
                    "maxReplicas": 3, "metrics": [
                        {"type": "Resource", "resource": {"name": "cpu", "targetAverageUtilization": 80}},
                        {"type": "Resource", "resource": {"name": "memory", "targetAverageValue": "1Gi"}},
                        {"type": "Pods", "pods": {"metricName": "qps", "targetAverageValue": "10"}},
                        {"type": "Object", "object": {"target": {"kind": "Service", "name": "s"},
                                                      "metricName": "hits", "targetValue": "100"}},
                        {"type": "External", "external": {"metricName": "queue", "metricSelector": {
                            "matchLabels": {"q": "a"}}, "targetAverageValue": "30"}},
                    ]}}
    new, notes = convert(old)
    assert new["apiVersion"] == "autoscaling/v2"
    assert new["spec"]["metrics"] == [
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}},
        {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "1Gi"}}},
        {"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "10"}}},
        {"type": "Object", "object": {"describedObject": {"kind": "Service", "name": "s"}, "metric": {"name": "hits"},
                                      "target": {"type": "Value", "value": "100"}}},
        {"type": "External", "external": {"metric": {"name": "queue", "selector": {"matchLabels": {"q": "a"}}},
                                          "target": {"type": "AverageValue", "averageValue": "30"}}},
    ]
    assert notes == ["HorizontalPodAutoscaler $NAME: autoscaling/v2beta1 converted to autoscaling/v2 (metrics' "
                     "targets written as target: {type, value})"]


@pytest.mark.parametrize("obj", [
    {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "x"},
     "spec": {"rules": [{"host": "h"}]}},
    {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}, "spec": {}},
    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}},
    {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"name": "x"}},
    {"kind": "Ingress"}, ["a list"], "text", {"apiVersion": "extensions/v1beta1", "kind": "Ingress", "spec": "odd"},
    {"apiVersion": "extensions/v1beta1", "kind": "Ingress", "spec": {"rules": "odd", "backend": 3}},
    {"apiVersion": "apps/v1beta1", "kind": "Deployment", "spec": ["odd"]},
])
def test_current_and_odd_objects_are_left_to_the_checks(obj):
    new, notes = convert(obj)
    if obj in ({"apiVersion": "extensions/v1beta1", "kind": "Ingress", "spec": "odd"},
               {"apiVersion": "apps/v1beta1", "kind": "Deployment", "spec": ["odd"]}):
        assert new["apiVersion"] in ("networking.k8s.io/v1", "apps/v1") and len(notes) == 1
    elif isinstance(obj, dict) and obj.get("apiVersion") == "extensions/v1beta1":
        assert new["spec"]["defaultBackend"] == 3 and new["spec"]["rules"] == "odd"
    else:
        assert (new, notes) == (obj, [])


# --- conversion when a template is read ---------------------------------------------------------

KARVDASH_INGRESS = """kind: Template
name: Old
variables:
- name: NAME
  default: old
- name: HOSTNAME
  default: localhost
- name: PORT
  default: 8080
---
apiVersion: extensions/v1beta1
kind: Ingress
metadata:
  name: $NAME
spec:
  rules:
  - host: $HOSTNAME
    http:
      paths:
      - path: /
        backend:
          serviceName: $NAME
          servicePort: $PORT
---
apiVersion: v1
kind: Service
metadata:
  name: $NAME
spec:
  ports:
  - port: $PORT
"""


def context(name: str) -> st.RenderContext:
    return st.RenderContext(username="alice", namespace="karvdash-alice",
                            hostname=st.hostname_for(name, "alice", "example.test"))


def test_a_karvdash_ingress_is_read_converted_and_its_port_typed():
    template = st.parse_template(KARVDASH_INGRESS, "old", "admin")
    assert template.notes == (
        "Ingress $NAME: extensions/v1beta1 converted to networking.k8s.io/v1 (backend.serviceName/servicePort became "
        "backend.service.name/port; pathType Prefix added)",)
    ingress = st.render(template, {"NAME": "web", "PORT": "9000"}, context("web")).objects[0]
    assert ingress["apiVersion"] == "networking.k8s.io/v1"
    assert ingress["spec"]["rules"][0] == {"host": "web-alice.example.test", "http": {"paths": [
        {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 9000}}}}]}}


# --- objects named without $NAME ---------------------------------------------------------------

FIXED = [
    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"a": "b"}},
    {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "credentials"}},
    {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"}},
    {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "runner"}},
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db"}, "spec": {"selector": {"app": "db"}}},
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "reader"}},
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "$NAME-reader"},
     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
     "subjects": [{"kind": "ServiceAccount", "name": "runner", "namespace": "$NAMESPACE"},
                  {"kind": "ServiceAccount", "name": "runner", "namespace": "elsewhere"},
                  {"kind": "User", "name": "runner"}]},
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "$NAME-view"},
     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "reader"},
     "subjects": [{"kind": "ServiceAccount", "name": "runner"}]},
    {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "$NAME"}, "spec": {
        "serviceName": "db",
        "template": {"spec": {
            "serviceAccountName": "runner",
            "subdomain": "db",
            "imagePullSecrets": [{"name": "credentials"}],
            "initContainers": [{"name": "init", "envFrom": [{"secretRef": {"name": "credentials"}}]}],
            "containers": [{
                "name": "c",
                "command": ["sh", "-c", "wait-for db:5432 && start --config settings.conf --data /data/db"],
                "args": ["db", "--url=http://db/x", "db.properties"],
                "envFrom": [{"configMapRef": {"name": "settings"}}, {"prefix": "X_"}],
                "env": [
                    {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "a"}}},
                    {"name": "B", "valueFrom": {"secretKeyRef": {"name": "credentials", "key": "b"}}},
                    {"name": "HOST", "value": "db"},
                    {"name": "URL", "value": "postgres://db:5432/x,db.$NAMESPACE.svc"},
                    {"name": "WORD", "value": "settings"},
                ],
            }],
            "volumes": [
                {"name": "c", "configMap": {"name": "settings"}},
                {"name": "s", "secret": {"secretName": "credentials"}},
                {"name": "d", "persistentVolumeClaim": {"claimName": "data"}},
                {"name": "p", "projected": {"sources": [{"configMap": {"name": "settings"}},
                                                        {"secret": {"name": "credentials"}}]}},
            ],
        }},
    }},
    {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "$NAME"}, "spec": {
        "tls": [{"hosts": ["$HOSTNAME"], "secretName": "credentials"}],
        "rules": [{"host": "$HOSTNAME", "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "db", "port": {"number": 1}}}}]}}]}},
    {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "$NAME"},
     "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "$NAME"}}},
    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "${NAME}-files"},
     "data": {"app.conf": "upstream db:5432;\nserver http://db/;\nlog db.log\n", "host": "db"}},
]


def test_fixed_names_are_prefixed_with_every_reference():
    objects, notes = prefix_fixed_names(FIXED)
    names = [(o["kind"], o["metadata"]["name"]) for o in objects]
    assert names == [
        ("ConfigMap", "$NAME-settings"), ("Secret", "$NAME-credentials"), ("PersistentVolumeClaim", "$NAME-data"),
        ("ServiceAccount", "$NAME-runner"), ("Service", "$NAME-db"), ("Role", "$NAME-reader"),
        ("RoleBinding", "$NAME-reader"), ("RoleBinding", "$NAME-view"), ("StatefulSet", "$NAME"),
        ("Ingress", "$NAME"), ("HorizontalPodAutoscaler", "$NAME"), ("ConfigMap", "${NAME}-files"),
    ]
    binding, view, workload, ingress = objects[6], objects[7], objects[8], objects[9]
    assert binding["roleRef"]["name"] == "$NAME-reader"
    # only the namespace's own service accounts; another namespace's and users keep their names
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "$NAME-runner", "namespace": "$NAMESPACE"},
                                   {"kind": "ServiceAccount", "name": "runner", "namespace": "elsewhere"},
                                   {"kind": "User", "name": "runner"}]
    # a ClusterRole is not one of the template's objects
    assert view["roleRef"]["name"] == "reader" and view["subjects"][0]["name"] == "$NAME-runner"
    spec = workload["spec"]
    assert spec["serviceName"] == "$NAME-db"
    pod = spec["template"]["spec"]
    assert (pod["serviceAccountName"], pod["subdomain"], pod["imagePullSecrets"]) == (
        "$NAME-runner", "$NAME-db", [{"name": "$NAME-credentials"}])
    assert pod["initContainers"][0]["envFrom"] == [{"secretRef": {"name": "$NAME-credentials"}}]
    container = pod["containers"][0]
    assert container["envFrom"] == [{"configMapRef": {"name": "$NAME-settings"}}, {"prefix": "X_"}]
    assert container["env"] == [
        {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "$NAME-settings", "key": "a"}}},
        {"name": "B", "valueFrom": {"secretKeyRef": {"name": "$NAME-credentials", "key": "b"}}},
        {"name": "HOST", "value": "$NAME-db"},
        {"name": "URL", "value": "postgres://$NAME-db:5432/x,$NAME-db.$NAMESPACE.svc"},
        # only Services are hosts
        {"name": "WORD", "value": "settings"},
    ]
    # host names in commands are renamed; a word, a file or a path that is the name is not
    assert container["command"] == [
        "sh", "-c", "wait-for $NAME-db:5432 && start --config settings.conf --data /data/db"]
    assert container["args"] == ["db", "--url=http://$NAME-db/x", "db.properties"]
    assert pod["volumes"] == [
        {"name": "c", "configMap": {"name": "$NAME-settings"}},
        {"name": "s", "secret": {"secretName": "$NAME-credentials"}},
        {"name": "d", "persistentVolumeClaim": {"claimName": "$NAME-data"}},
        {"name": "p", "projected": {"sources": [{"configMap": {"name": "$NAME-settings"}},
                                                {"secret": {"name": "$NAME-credentials"}}]}},
    ]
    assert ingress["spec"]["tls"][0]["secretName"] == "$NAME-credentials"
    assert ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] == "$NAME-db"
    assert objects[11]["data"] == {"app.conf": "upstream $NAME-db:5432;\nserver http://$NAME-db/;\nlog db.log\n",
                                   "host": "$NAME-db"}
    assert notes == [
        "ConfigMap settings renamed to $NAME-settings (a name without $NAME would be shared by every service of the "
        "template); 4 references renamed with it",
        "Secret credentials renamed to $NAME-credentials (a name without $NAME would be shared by every service of "
        "the template); 6 references renamed with it",
        "PersistentVolumeClaim data renamed to $NAME-data (a name without $NAME would be shared by every service of "
        "the template); 1 reference renamed with it",
        "ServiceAccount runner renamed to $NAME-runner (a name without $NAME would be shared by every service of "
        "the template); 3 references renamed with it",
        "Service db renamed to $NAME-db (a name without $NAME would be shared by every service of the template); "
        "11 references renamed with it",
        "Role reader renamed to $NAME-reader (a name without $NAME would be shared by every service of the "
        "template); 1 reference renamed with it",
    ]
    # the originals are untouched
    assert FIXED[0]["metadata"]["name"] == "settings"


def test_a_scale_target_named_without_name_follows_its_workload():
    objects, _ = prefix_fixed_names([
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}},
        {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "$NAME"},
         "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}}},
    ])
    assert objects[1]["spec"]["scaleTargetRef"]["name"] == "$NAME-web"


def test_names_are_prefixed_when_the_template_is_read_and_two_services_do_not_share():
    text = ("kind: Template\nname: T\nvariables:\n- name: NAME\n  default: t\n---\napiVersion: v1\nkind: ConfigMap\n"
            "metadata: {name: settings}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: $NAME}\n"
            "spec: {containers: [{name: c, image: x, envFrom: [{configMapRef: {name: settings}}]}]}\n")
    template = st.parse_template(text, "fixed", "user")
    first = st.render(template, {"NAME": "one"}, context("one")).objects
    second = st.render(template, {"NAME": "two"}, context("two")).objects
    assert [o["metadata"]["name"] for o in first + second] == ["one-settings", "one", "two-settings", "two"]
    assert second[1]["spec"]["containers"][0]["envFrom"] == [{"configMapRef": {"name": "two-settings"}}]
    assert template.notes == ("ConfigMap settings renamed to $NAME-settings (a name without $NAME would be shared by "
                              "every service of the template); 1 reference renamed with it",)
    # a singleton keeps its fixed names
    single = st.parse_template(text.replace("name: T", "name: T\nsingleton: true"), "single", "user")
    assert single.objects[0]["metadata"]["name"] == "settings" and single.notes == ()


# --- reserved variables only where declared -------------------------------------------------------

RESERVED = """kind: Template
name: R
variables:
- name: NAME
  default: r
{declared}---
apiVersion: v1
kind: ConfigMap
metadata:
  name: $NAME
  namespace: $NAMESPACE
data:
  host: $HOSTNAME
  braced: ${{HOSTNAME}}.$NAME
  shell: export ID=${{HOSTNAME##*-}}; echo $HOSTNAME
  namespace: $NAMESPACE
  registry: $REGISTRY/image
  private: $PRIVATE/x
  shared: ${{SHARED}}/y
"""


ALICE = st.RenderContext(username="alice", namespace="karvdash-alice", hostname="web-alice.example.test",
                         registry="reg:5000")


def test_reserved_variables_stay_text_unless_declared():
    template = st.parse_template(RESERVED.format(declared=""), "r", "user")
    config = st.render(template, {"NAME": "web"}, ALICE).objects[0]
    assert config["metadata"]["namespace"] == "karvdash-alice"
    assert config["data"] == {
        "host": "$HOSTNAME", "braced": "${HOSTNAME}.web", "shell": "export ID=${HOSTNAME##*-}; echo $HOSTNAME",
        "namespace": "$NAMESPACE", "registry": "$REGISTRY/image", "private": "$PRIVATE/x", "shared": "${SHARED}/y"}


def test_declared_reserved_variables_are_the_systems():
    declared = "".join(f"- name: {name}\n  default: ignored\n" for name in st.RESERVED_VARIABLES)
    template = st.parse_template(RESERVED.format(declared=declared), "r", "user")
    assert [v.name for v in template.form_variables] == ["NAME"]
    config = st.render(template, {"NAME": "web"}, ALICE).objects[0]
    assert config["data"] == {
        "host": "web-alice.example.test", "braced": "web-alice.example.test.web",
        # shell's ${VAR##...} is not a reference; plain $HOSTNAME is, once declared
        "shell": "export ID=${HOSTNAME##*-}; echo web-alice.example.test",
        "namespace": "karvdash-alice", "registry": "reg:5000/image", "private": "/private/x", "shared": "/shared/y"}


def test_shipped_templates_declare_the_reserved_variables_they_use():
    import re
    from pathlib import Path

    from karvdash_hub.services import catalogue

    shipped, problems = catalogue.file_catalogue(Path(__file__).resolve().parents[2] / "service_templates",
                                                 Path("/nonexistent"))
    assert problems == []
    reference = re.compile(r"\$(?:([A-Za-z_]\w*)|\{([A-Za-z_]\w*)\})")
    for template in shipped.values():
        used = {m.group(1) or m.group(2) for m in reference.finditer(template.text)} & set(st.RESERVED_VARIABLES)
        declared = {v.name for v in template.variables}
        assert used <= declared, (template.id, used - declared)
        # and nothing converted or renamed: shipped templates are in the current form
        assert template.notes == (), template.id


def test_admin_folders_log_each_conversion_once_per_version_of_a_file(tmp_path, caplog):
    import logging
    import os

    from karvdash_hub.services import catalogue

    path = tmp_path / "old.template.yaml"
    path.write_text(KARVDASH_INGRESS)
    with caplog.at_level(logging.WARNING, logger="karvdash.templates"):
        for _ in range(3):
            templates, problems = catalogue.load_folder(tmp_path, "admin")
    assert problems == [] and templates["old"].notes
    assert [r.getMessage() for r in caplog.records] == [f"template {path}: {templates['old'].notes[0]}"]
    # a new version of the file is said again
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    with caplog.at_level(logging.WARNING, logger="karvdash.templates"):
        catalogue.load_folder(tmp_path, "admin")
    assert len(caplog.records) == 2
