"""The template engine and the shipped catalogue: golden renderings, schema
validation, template checks and values that try to inject structure.

Golden files live in tests/unit/golden/templates/; after a deliberate
change, rewrite them with KARVDASH_UPDATE_GOLDEN=1 and review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from karvdash_hub.core.labels import (
    DATASETS_LABEL,
    INSTANCE_LABEL,
    MANAGED_BY_LABEL,
    OWNER_LABEL,
    TEMPLATE_LABEL,
    VALUES_ANNOTATION,
)
from karvdash_hub.services import catalogue
from karvdash_hub.services import templates as st

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "service_templates"
GOLDEN = Path(__file__).parent / "golden" / "templates"
# the test cluster's version, and the oldest release still in common use
KUBE_VERSIONS = ["1.34", "1.30"]

CATALOGUE, PROBLEMS = catalogue.file_catalogue(SHIPPED, ROOT / "no-admin-templates")


def context(name: str = "svc", **overrides) -> st.RenderContext:
    settings = dict(
        username="alice",
        namespace="karvdash-alice",
        hostname=st.hostname_for(name, "alice", "example.com"),
        registry="registry.example.com:5000",
        auth_url="https://example.com/services/karvdash/ingress-auth/alice/" + name,
        signin_url="https://example.com/services/karvdash/ingress-auth/signin",
    )
    settings.update(overrides)
    return st.RenderContext(**settings)


def render_defaults(template: st.ServiceTemplate) -> st.RenderedService:
    values = template.form_defaults(token=lambda: "generated-secret-0123")
    return st.render(template, values, context(values["NAME"]))


# --- the shipped catalogue ---------------------------------------------------------------


def test_catalogue_loads_without_problems():
    assert PROBLEMS == []
    assert {
        "zeppelin", "jupyter", "argo", "minio", "filebrowser", "nginx", "tensorboard", "postgresql",
        "pgadmin", "redis", "rabbitmq", "kafka", "neo4j", "hello-kubernetes",
    } <= set(CATALOGUE)
    assert all(t.source == "system" for t in CATALOGUE.values())


@pytest.mark.parametrize("template_id", sorted(CATALOGUE))
def test_golden_rendering(template_id):
    rendered = render_defaults(CATALOGUE[template_id])
    text = yaml.safe_dump_all(rendered.objects, sort_keys=True, default_flow_style=False, allow_unicode=True)
    golden = GOLDEN / f"{template_id}.yaml"
    if os.environ.get("KARVDASH_UPDATE_GOLDEN"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text)
    assert golden.exists(), f"no golden file {golden}; run with KARVDASH_UPDATE_GOLDEN=1"
    assert text == golden.read_text()


@pytest.mark.parametrize("template_id", sorted(CATALOGUE))
@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_rendered_objects_match_kubernetes_schemas(template_id, version):
    for obj in render_defaults(CATALOGUE[template_id]).objects:
        # strict: unknown fields are errors too; removed APIs have no schema
        kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.parametrize("template_id", sorted(CATALOGUE))
def test_every_object_is_labelled_and_namespaced(template_id):
    template = CATALOGUE[template_id]
    rendered = render_defaults(template)
    for obj in rendered.objects:
        metadata = obj["metadata"]
        assert metadata["namespace"] == "karvdash-alice"
        assert metadata["labels"][OWNER_LABEL] == "alice"
        assert metadata["labels"][INSTANCE_LABEL] == rendered.name
        assert metadata["labels"][TEMPLATE_LABEL] == template_id
        assert metadata["labels"][MANAGED_BY_LABEL] == "karvdash-hub"
        assert json.loads(metadata["annotations"][VALUES_ANNOTATION]) == rendered.public_values
        assert obj["apiVersion"] not in ("extensions/v1beta1", "networking.k8s.io/v1beta1", "apps/v1beta1",
                                         "apps/v1beta2", "batch/v1beta1")
        if obj["kind"] == "Ingress":
            assert obj["spec"]["ingressClassName"] == "nginx"
            assert obj["metadata"]["annotations"][st.AUTH_URL_ANNOTATION] == context(rendered.name).auth_url
        if obj["kind"] in ("Deployment", "StatefulSet"):
            pod_labels = obj["spec"]["template"]["metadata"]["labels"]
            assert pod_labels[INSTANCE_LABEL] == rendered.name
            assert pod_labels[OWNER_LABEL] == "alice"
            assert (pod_labels.get(DATASETS_LABEL) == "false") == (not template.datasets)
            # selectors stay as written: they are immutable
            assert INSTANCE_LABEL not in obj["spec"]["selector"]["matchLabels"]


CREDENTIALS = {
    "minio": "ROOT_PASSWORD",
    "rabbitmq": "PASSWORD",
    "postgresql": "PASSWORD",
    "pgadmin": "PASSWORD",
    "neo4j": "PASSWORD",
    "redis": "PASSWORD",
}


@pytest.mark.parametrize("template_id, variable", sorted(CREDENTIALS.items()))
def test_credentials_are_generated_and_never_empty(template_id, variable):
    template = CATALOGUE[template_id]
    secret = {v.name: v for v in template.variables}[variable]
    assert secret.secret and secret.default == ""
    first, second = template.form_defaults(), template.form_defaults()
    assert len(first[variable]) >= 20 and first[variable] != second[variable]
    values = first | {variable: ""}
    with pytest.raises(st.ValuesError, match=f"{variable}: must not be empty"):
        st.render(template, values, context())
    values.pop(variable)
    with pytest.raises(st.ValuesError, match=f"{variable}: is a credential and must be given"):
        st.render(template, values, context())
    # the password reaches a Secret, and never the values annotation
    rendered = st.render(template, first, context(first["NAME"]))
    secrets = [o for o in rendered.objects if o["kind"] == "Secret"]
    assert first[variable] in secrets[0]["stringData"].values()
    for obj in rendered.objects:
        assert first[variable] not in obj["metadata"]["annotations"][VALUES_ANNOTATION]
    assert variable not in rendered.public_values
    assert template.summary()["variables"][[v["name"] for v in template.summary()["variables"]].index(variable)][
        "default"] == ""


def test_services_without_ingress_have_no_url():
    assert render_defaults(CATALOGUE["redis"]).url == ""
    assert render_defaults(CATALOGUE["hello-kubernetes"]).url == "https://hello-alice.example.com"


# --- substitution ------------------------------------------------------------------------

SIMPLE = """
kind: Template
name: Simple
variables:
- name: NAME
  default: simple
- name: REPLICAS
  default: 2
- name: RATIO
  default: 0.5
- name: DEBUG
  default: false
- name: WORD
  default: hello
- name: NAMESPACE
- name: HOSTNAME
- name: REGISTRY
- name: PRIVATE
- name: SHARED
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: $NAME-config
  namespace: ${NAMESPACE}
data:
  braces: x${WORD}y
  plain: $WORD and $UNDECLARED and ${UNDECLARED} and $$WORD and $(SHELL) and $1
  quoted: "$REPLICAS"
  shell: echo "$HOME" $PATH
  $WORD-key: key substituted
  hostname: $HOSTNAME
  registry: $REGISTRY/image
  private: $PRIVATE/x
  shared: $SHARED/y
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: $NAME
spec:
  replicas: $REPLICAS
  paused: $DEBUG
  selector:
    matchLabels:
      app: $NAME
  template:
    metadata:
      labels:
        app: $NAME
    spec:
      containers:
      - name: c
        image: busybox
        args: [$WORD, "${RATIO}"]
      terminationGracePeriodSeconds: $RATIO
"""


def simple() -> st.ServiceTemplate:
    return st.parse_template(SIMPLE, "simple", "user")


def test_substitution_rules():
    rendered = st.render(simple(), {"NAME": "web", "REPLICAS": "3", "WORD": "hi"}, context("web"))
    config, deployment = rendered.objects
    assert config["metadata"]["name"] == "web-config"
    assert config["metadata"]["namespace"] == "karvdash-alice"
    assert config["data"] == {
        "braces": "xhiy",
        "plain": "hi and $UNDECLARED and ${UNDECLARED} and $WORD and $(SHELL) and $1",
        "quoted": "3",
        "shell": 'echo "$HOME" $PATH',
        "hi-key": "key substituted",
        "hostname": "web-alice.example.com",
        "registry": "registry.example.com:5000/image",
        "private": "/private/x",
        "shared": "/shared/y",
    }
    # plain whole references take the value's type, quoted ones stay text
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["paused"] is False
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 0.5
    assert deployment["spec"]["template"]["spec"]["containers"][0]["args"] == ["hi", "0.5"]
    assert rendered.values == {"NAME": "web", "REPLICAS": "3", "RATIO": "0.5", "DEBUG": "false", "WORD": "hi"}


@pytest.mark.parametrize(
    "variable, value, message",
    [
        ("REPLICAS", "three", "REPLICAS: must be a whole number from 0 to 100 (replicas)"),
        ("REPLICAS", "3.5", "REPLICAS: must be a whole number from 0 to 100 (replicas)"),
        ("REPLICAS", "{}", "REPLICAS: must be a whole number from 0 to 100 (replicas)"),
        ("DEBUG", "maybe", "DEBUG: must be true or false"),
        ("RATIO", "[1]", "RATIO: must be a number"),
    ],
)
def test_typed_references_check_the_value(variable, value, message):
    with pytest.raises(st.ValuesError) as error:
        st.render(simple(), {"NAME": "web", variable: value}, context("web"))
    assert str(error.value) == message


def test_values_are_checked():
    template = simple()
    with pytest.raises(st.ValuesError, match="NAMESPACE: is filled in by the system"):
        st.render(template, {"NAME": "web", "NAMESPACE": "kube-system"}, context("web"))
    with pytest.raises(st.ValuesError, match="HOSTNAME: is filled in by the system"):
        st.render(template, {"NAME": "web", "HOSTNAME": "evil.example.com"}, context("web"))
    with pytest.raises(st.ValuesError, match="OTHER: is not a variable of template 'simple'"):
        st.render(template, {"NAME": "web", "OTHER": "x"}, context("web"))
    with pytest.raises(st.ValuesError, match="WORD: must be text"):
        st.render(template, {"NAME": "web", "WORD": {"a": 1}}, context("web"))
    with pytest.raises(st.ValuesError, match="values must be a mapping"):
        st.render(template, ["NAME"], context("web"))
    # numbers and booleans from JSON clients become text
    rendered = st.render(template, {"NAME": "web", "REPLICAS": 4, "DEBUG": True}, context("web"))
    assert rendered.objects[1]["spec"]["replicas"] == 4 and rendered.objects[1]["spec"]["paused"] is True


# --- values that try to inject ----------------------------------------------------------------

INJECTIONS = [
    "a\nkind: Namespace",
    "x\n---\napiVersion: v1\nkind: Secret",
    "{a: 1}",
    "[1, 2]",
    "{}",
    "[]",
    "---",
    "...",
    "$NAMESPACE",
    "${HOSTNAME}",
    "$$",
    "'quoted'",
    '"double" \'single\'',
    "key: value",
    "- item",
    "&anchor *alias",
    "!!python/object:os.system",
    "# comment",
    "| block",
    "> folded",
    "%YAML 1.1",
    "\ttab",
    "nul\x00byte",
    "carriage\rreturn",
    "zero\u200bwidth",
    "x" * 1025,
    "ünïcode ✓ 名前",
    "a" * 1024,
]


@pytest.mark.parametrize("value", INJECTIONS, ids=range(len(INJECTIONS)))
def test_free_text_value_cannot_change_structure(value):
    template = CATALOGUE["hello-kubernetes"]
    try:
        rendered = st.render(template, {"NAME": "hello", "MESSAGE": value}, context("hello"))
    except st.ValuesError as error:
        # refused values are the ones with control characters or too long
        assert error.variable == "MESSAGE"
        assert any(ord(c) < 32 or c in "\u200b" for c in value) or len(value) > st.MAX_VALUE_LENGTH
        return
    baseline = render_defaults(template)
    assert [(o["apiVersion"], o["kind"], o["metadata"]["name"], o["metadata"]["namespace"]) for o in rendered.objects] \
        == [(o["apiVersion"], o["kind"], o["metadata"]["name"], o["metadata"]["namespace"]) for o in baseline.objects]
    env = rendered.objects[2]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env == [{"name": "MESSAGE", "value": value.strip()}]
    # the text that is applied reads back as the same objects
    text = yaml.safe_dump_all(rendered.objects, sort_keys=True, default_flow_style=False, allow_unicode=True)
    assert list(yaml.safe_load_all(text)) == rendered.objects
    assert json.loads(rendered.objects[0]["metadata"]["annotations"][VALUES_ANNOTATION])["MESSAGE"] == value.strip()


BAD_NAMES = [*INJECTIONS, "Hello", "-hello", "hello-", "1hello", "hel_lo", "hel.lo", "a" * 41, "", "   ",
             "hello world", "héllo"]


@pytest.mark.parametrize("name", BAD_NAMES, ids=range(len(BAD_NAMES)))
def test_name_must_be_a_dns_label(name):
    with pytest.raises(st.ValuesError) as error:
        st.render(CATALOGUE["hello-kubernetes"], {"NAME": name}, context("hello"))
    assert error.value.variable == "NAME"


def test_name_limits_and_host_name():
    st.check_name("a" * 40)
    st.check_name("a-1")
    assert st.hostname_for("web", "alice", "example.com") == "web-alice.example.com"
    assert st.hostname_for("web", "alice", "example.com", prefix="blue") == "blue.example.com"
    with pytest.raises(st.ValuesError, match="more than 63 characters"):
        st.hostname_for("a" * 40, "b" * 32, "example.com")


def test_taken_names_get_a_suffix():
    assert st.free_name("web", {"other"}) == "web"
    tokens = iter(["aaaa", "bbbb"])
    assert st.free_name("web", {"web", "web-aaaa"}, token=lambda: next(tokens)) == "web-bbbb"
    suffixed = st.free_name("a" * 40, {"a" * 40})
    assert len(suffixed) == 45 and suffixed.startswith("a" * 40 + "-")
    assert st.free_id("jupyter", {"jupyter"}, token=lambda: "x1y2") == "jupyter-x1y2"


# --- template checks -------------------------------------------------------------------------

HEADER = "kind: Template\nname: T\nvariables:\n- name: NAME\n  default: t\n"
CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: $NAME\n"


@pytest.mark.parametrize(
    "text, message",
    [
        ("a: [", "not valid YAML"),
        (CONFIGMAP, "needs exactly one document of kind Template, found 0"),
        (HEADER + "---\n" + HEADER + "---\n" + CONFIGMAP, "found 2"),
        (HEADER, "has no Kubernetes objects"),
        ("kind: Template\nname: T\nvariables:\n- name: OTHER\n---\n" + CONFIGMAP, "NAME must be declared"),
        ("kind: Template\nname: T\nvariables: []\nsingelton: true\n---\n" + CONFIGMAP,
         "unknown field(s) singelton; did you mean 'singleton'?"),
        ("kind: Template\nname: T\nsingleton: maybe\nvariables: []\n---\n" + CONFIGMAP,
         "singleton: 'maybe' is not of type 'boolean'"),
        ("kind: Template\nvariables: []\n---\n" + CONFIGMAP, "'name' is a required property"),
        ("kind: Template\nname: T\nvariables:\n- name: NAME\n- name: NAME\n---\n" + CONFIGMAP,
         "declared more than once: NAME"),
        ("kind: Template\nname: T\nvariables:\n- name: BAD-NAME\n---\n" + CONFIGMAP, "does not match"),
        (HEADER + "---\n- a list\n", "document 1 is not a mapping"),
        (HEADER + "---\nkind: ConfigMap\nmetadata: {name: $NAME}\n", "apiVersion is missing"),
        (HEADER + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {}\n", "metadata.name is missing"),
        (HEADER + "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: $NAME}\n",
         "Namespace is cluster-scoped"),
        (HEADER + "---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: $NAME}\n",
         "ClusterRoleBinding is cluster-scoped"),
        (HEADER + "---\napiVersion: v1\nkind: ConfigMapList\nmetadata: {name: $NAME}\n", "lists are not supported"),
        (HEADER + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: $NAME, namespace: kube-system}\n",
         "targets namespace 'kube-system'"),
        (HEADER + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: $NAME, namespace: $NAME}\n",
         "targets namespace '$NAME'"),
        (HEADER + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: $NAME, namespace: x$NAMESPACE}\n",
         "targets namespace"),
        (HEADER + "---\napiVersion: v1\nkind: Secret\nmetadata: {name: $NAME-fixed}\n---\napiVersion: v1\n"
         "kind: Secret\nmetadata: {name: fixed}\n", "object 2 (Secret fixed): another object has the same kind and name"),
        (HEADER + "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: $NAME}\n"
         "spec: {rules: [{host: $HOSTNAME}]}\n",
         "object 1 (Ingress $NAME): its hosts are $HOSTNAME, which is filled in only where the template declares it: "
         "add HOSTNAME to variables (- name: HOSTNAME)"),
        (HEADER + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: $NAME, generateName: x}\n",
         "generateName is not supported"),
        (HEADER + "---\n" + CONFIGMAP + "---\n" + CONFIGMAP, "same kind and name"),
    ],
)
def test_bad_templates_are_refused_with_a_reason(text, message):
    with pytest.raises(st.TemplateError) as error:
        st.parse_template(text, "bad", "user")
    assert message in str(error.value)


def test_singletons_may_use_fixed_names_and_namespace_reference():
    text = HEADER.replace("name: T", "name: T\nsingleton: true") + (
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: fixed, namespace: $NAMESPACE}\n"
    )
    template = st.parse_template(text, "single", "admin")
    assert template.singleton and not template.deletable
    rendered = st.render(template, {"NAME": "x"}, context("x"))
    assert rendered.objects[0]["metadata"] == {
        "name": "fixed",
        "namespace": "karvdash-alice",
        "labels": {OWNER_LABEL: "alice", INSTANCE_LABEL: "x", TEMPLATE_LABEL: "single",
                   MANAGED_BY_LABEL: "karvdash-hub"},
        "annotations": {VALUES_ANNOTATION: '{"NAME":"x"}'},
    }


def test_invalid_rendered_labels_and_names_are_refused():
    text = (
        "kind: Template\nname: T\nvariables:\n- name: NAME\n  default: t\n- name: LABEL\n  default: ok\n"
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: $NAME\n  labels: {tier: $LABEL}\n"
    )
    template = st.parse_template(text, "labels", "user")
    with pytest.raises(st.ValuesError, match="label tier would get the invalid value 'not ok'"):
        st.render(template, {"NAME": "x", "LABEL": "not ok"}, context("x"))


def test_reserved_variables_are_hidden_from_the_form():
    text = (
        "kind: Template\nname: T\nvariables:\n- name: NAME\n  default: t\n- name: NAMESPACE\n  default: default\n"
        "- name: HOSTNAME\n  default: h\n---\n" + CONFIGMAP
    )
    template = st.parse_template(text, "reserved", "user")
    assert [v.name for v in template.form_variables] == ["NAME"]
    assert template.form_defaults() == {"NAME": "t"}
    # the system's value wins over the template's default
    rendered = st.render(template, {}, context("t"))
    assert rendered.objects[0]["metadata"]["namespace"] == "karvdash-alice"


def test_ingress_without_auth_gets_no_auth_annotations():
    text = CATALOGUE["hello-kubernetes"].text.replace("auth: true", "auth: false")
    template = st.parse_template(text, "open", "admin")
    ingress = st.render(template, {"NAME": "hello"}, context("hello")).objects[0]
    assert st.AUTH_URL_ANNOTATION not in ingress["metadata"]["annotations"]
    assert template.summary()["auth"] is False


# --- sources -----------------------------------------------------------------------------------


def test_admin_templates_override_shipped_ones_and_disabled_are_hidden(tmp_path):
    admin = tmp_path / "templates"
    admin.mkdir()
    (admin / "redis.template.yaml").write_text(HEADER.replace("name: T", "name: Admin Redis") + "---\n" + CONFIGMAP)
    (admin / "broken.template.yaml").write_text("kind: Template\n")
    (admin / "Bad Name.template.yaml").write_text(HEADER + "---\n" + CONFIGMAP)
    (admin / "ignored.yaml").write_text("not a template")
    templates, problems = catalogue.file_catalogue(SHIPPED, admin, disabled=["jupyter.template.yaml"])
    assert templates["redis"].name == "Admin Redis" and templates["redis"].source == "admin"
    assert "jupyter" not in templates and "zeppelin" in templates
    assert "broken" not in templates and "ignored" not in templates
    assert len(problems) == 2
    assert any("broken.template.yaml" in p and "'name' is a required property" in p for p in problems)
    assert any("Bad Name.template.yaml" in p for p in problems)


def test_combine_sorts_by_name_and_keeps_file_templates_on_clash():
    user = st.parse_template(HEADER.replace("name: T", "name: AAA mine") + "---\n" + CONFIGMAP, "redis", "user")
    other = st.parse_template(HEADER.replace("name: T", "name: ZZZ mine") + "---\n" + CONFIGMAP, "mine", "user")
    merged = catalogue.combine(CATALOGUE, [user, other])
    assert merged["redis"].source == "system"
    assert list(merged)[-1] == "mine"
    assert list(merged)[:2] == ["argo-metrics", "argo"]


def test_ids_from_file_names_and_display_names():
    assert st.template_id_from_filename("hello-kubernetes.template.yaml") == "hello-kubernetes"
    with pytest.raises(st.TemplateError):
        st.template_id_from_filename("x.yaml")
    with pytest.raises(st.TemplateError):
        st.template_id_from_filename("../x.template.yaml")
    with pytest.raises(st.TemplateError):
        st.parse_template(HEADER + "---\n" + CONFIGMAP, "Bad Id", "user")
    assert st.slug("My Service (v2)!") == "my-service-v2"
    assert st.slug("Ünïcode") == "unicode"
    assert st.slug("日本") == "template"
