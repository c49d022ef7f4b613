"""Malicious templates (tests/templates_corpus) against the template engine:
each is refused where the corpus says, with its message, quickly; and the
pure checks behind them, with their exact errors."""

from __future__ import annotations

import time
import unicodedata

import pytest

from karvdash_hub.services import templates as st
from tests.templates_corpus import cases

CASES = {case.name: case for case in cases()}


def context(name: str, **overrides) -> st.RenderContext:
    return st.RenderContext(**{
        "username": "alice", "namespace": "karvdash-alice",
        "hostname": st.hostname_for(name, "alice", "example.test"),
        "auth_url": "https://example.test/services/karvdash/ingress-auth/check/alice/" + name,
        "signin_url": "https://example.test/services/karvdash/ingress-auth/signin", **overrides})


def add(text: str, **policy) -> st.ServiceTemplate:
    """What adding a user's template checks (UserTemplateStore.add)."""
    ctx = context("x", **policy)
    template = st.parse_template(text, "corpus", "user", max_objects=ctx.max_objects)
    st.check_policy(template, ctx)
    return template


def create(template: st.ServiceTemplate, values: dict) -> st.RenderedService:
    values = {**template.form_defaults(), **values}
    return st.render(template, values, context(values["NAME"].strip() or "x"))


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_corpus_template_is_refused_where_it_says(name):
    case = CASES[name]
    started = time.monotonic()
    if case.stage == "add":
        with pytest.raises(st.TemplateError) as error:
            add(case.text)
        assert case.message in str(error.value)
    else:
        template = add(case.text)
        if case.status == 201:
            rendered = create(template, case.values)
            assert rendered.objects
        else:
            with pytest.raises((st.TemplateError, st.ValuesError)) as error:
                create(template, case.values)
            assert case.message in str(error.value)
    # nothing in the corpus costs: bounds are checked before anything is built
    assert time.monotonic() - started < 2


def test_the_alias_bomb_is_small_and_refused_at_once():
    case = CASES["alias-bomb"]
    assert len(case.text.encode()) < 700
    started = time.monotonic()
    with pytest.raises(st.TemplateError) as error:
        add(case.text)
    assert time.monotonic() - started < 0.1
    assert str(error.value) == (
        "line 14: YAML anchors and aliases (&name, *name, <<: *name) are not supported in templates; "
        "write the repeated part out")


HEADER = "kind: Template\nname: T\nvariables:\n- name: NAME\n  default: t\n"
CONFIGMAP = "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: $NAME{}\n"


@pytest.mark.parametrize("text, message", [
    (HEADER + "".join(CONFIGMAP.format(f"-{i}") for i in range(4)),
     "has 4 objects; a template may have at most 3"),
    # counted on the parser's events, before anything is built
    (HEADER + "".join(CONFIGMAP.format(f"-{i}") for i in range(3)) + "---\n---\n---\n" + CONFIGMAP.format("-x"),
     "has more than 3 objects; a template may have at most 3"),
    (HEADER + CONFIGMAP.format("") + "data: {x: " + "[" * 2000 + "]" * 2000 + "}\n",
     "line 11: nested more than 40 levels deep"),
    (HEADER + CONFIGMAP.format("") + "data: {x: " + "[" * 41 + "]" * 41 + "}\n",
     "line 11: nested more than 40 levels deep"),
    (HEADER + CONFIGMAP.format("") + "data: {x: [" + ",".join(["1"] * 10_000) + "]}\n",
     "has more than 10000 YAML nodes (keys, values and items)"),
    (HEADER + "# " + "x" * (256 * 1024) + "\n" + CONFIGMAP.format(""), "is larger than 256 KiB"),
    (HEADER + CONFIGMAP.format("") + "data: {x: &x a, y: *x}\n",
     "line 11: YAML anchors and aliases (&name, *name, <<: *name) are not supported in templates; "
     "write the repeated part out"),
])
def test_bounds_are_checked_with_exact_errors(text, message):
    with pytest.raises(st.TemplateError) as error:
        st.parse_template(text, "bounds", "user", max_objects=3)
    assert str(error.value) == message


@pytest.mark.parametrize("body", [
    "a: 2024-13-45", "a: !!float abc", "a: !!timestamp x", "a: !!int 0xZZ", "a: 2001-12-14t21:59:43.10-99:99",
    "a: !!set {a, b}", "a: !!bool maybe", "a: !!binary aGVsbG8=", "a: .inf", "? !!binary aGVsbG8=\n  : x",
    "a: !!python/name:os.system", "a: \"\\ud800\"", "{[1]: 2}", "a: !!omap [a]", "<<: x",
])
def test_odd_values_are_a_template_error_or_json(body):
    """Never another exception (a 500): what PyYAML cannot construct, or
    JSON cannot carry, is refused; dates stay text, as Kubernetes reads them."""
    text = HEADER + CONFIGMAP.format("") + "data:\n  " + body + "\n"
    try:
        template = st.parse_template(text, "odd", "user")
    except st.TemplateError:
        return
    import json

    json.dumps(template.objects, allow_nan=False)
    assert all(isinstance(v, str) for v in template.objects[0]["data"].values())


def test_the_object_bound_is_checked_again_at_render():
    template = st.parse_template(HEADER + "".join(CONFIGMAP.format(f"-{i}") for i in range(4)), "four", "user")
    st.render(template, {"NAME": "t"}, context("t", max_objects=4))
    with pytest.raises(st.TemplateError) as error:
        st.render(template, {"NAME": "t"}, context("t", max_objects=3))
    assert str(error.value) == "has 4 objects; a template may have at most 3 (templateMaxObjects)"


# --- ingresses -----------------------------------------------------------------------------


def ingress(host="$HOSTNAME", annotations=None, **spec) -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "$NAME", "annotations": annotations or {}},
            "spec": {"rules": [{"host": host}], **spec}}


@pytest.mark.parametrize("obj, hostname, message", [
    (ingress("cache-bob.example.test"), None,
     "host 'cache-bob.example.test' is not this service's own host; an Ingress may only use $HOSTNAME"),
    (ingress("cache-bob.example.test"), "web-alice.example.test",
     "host 'cache-bob.example.test' is not this service's own host; an Ingress may only use web-alice.example.test"),
    (ingress("example.test"), "web-alice.example.test",
     "host 'example.test' is not this service's own host; an Ingress may only use web-alice.example.test"),
    (ingress(None), None, "a rule without host would catch requests for every host; set host: $HOSTNAME"),
    (ingress(defaultBackend={"service": {"name": "x"}}), None,
     "spec.defaultBackend would catch requests for every host; write a rule for host $HOSTNAME instead"),
    (ingress(tls=[{"hosts": ["$HOSTNAME", "example.test"]}]), None,
     "TLS host 'example.test' is not this service's own host; an Ingress may only use $HOSTNAME"),
    (ingress(annotations={"nginx.ingress.kubernetes.io/configuration-snippet": "x"}), None,
     "annotation nginx.ingress.kubernetes.io/configuration-snippet is not allowed in your templates (raw nginx "
     "configuration); allowed: " + ", ".join(sorted(st.USER_NGINX_ANNOTATIONS))),
    (ingress(annotations={"nginx.ingress.kubernetes.io/auth-signin": "x"}), None,
     "annotation nginx.ingress.kubernetes.io/auth-signin is not allowed in your templates (the hub's login "
     "protects services); allowed: " + ", ".join(sorted(st.USER_NGINX_ANNOTATIONS))),
    (ingress(annotations={"nginx.ingress.kubernetes.io/upstream-vhost": "x"}), None,
     "annotation nginx.ingress.kubernetes.io/upstream-vhost is not allowed in your templates (ingress-nginx "
     "configuration); allowed: " + ", ".join(sorted(st.USER_NGINX_ANNOTATIONS))),
    (ingress(annotations={"nginx.ingress.kubernetes.io/proxy-read-timeout": "60;"}), None,
     "annotation nginx.ingress.kubernetes.io/proxy-read-timeout: '60;' is not a plain value (letters, digits, '.')"),
    (ingress(annotations={"nginx.org/server-snippets": "x"}), None,
     "annotation nginx.org/server-snippets is not allowed in your templates (ingress controller configuration)"),
    (ingress("web-alice.example.test", ingressClassName="other"), "web-alice.example.test",
     "ingressClassName 'other': your templates' ingresses use 'nginx'"),
])
def test_ingress_checks_with_exact_errors(obj, hostname, message):
    with pytest.raises(st.ValuesError) as error:
        st.check_ingress(obj, "user", hostname, "nginx")
    assert str(error.value) == message


def test_ingresses_that_serve_their_own_host_pass():
    tuned = {"nginx.ingress.kubernetes.io/proxy-body-size": "0", "nginx.ingress.kubernetes.io/proxy-read-timeout":
             "$TIMEOUT", "example.org/note": "anything; at all"}
    st.check_ingress(ingress("${HOSTNAME}", tuned, tls=[{"hosts": ["$HOSTNAME"]}]), "user", None)
    st.check_ingress(ingress("web-alice.example.test", {"nginx.ingress.kubernetes.io/proxy-read-timeout": "3600"}),
                     "user", "web-alice.example.test", "nginx")
    # the administrator's templates may configure ingress-nginx, but still only on their own host
    st.check_ingress(ingress(annotations={"nginx.ingress.kubernetes.io/configuration-snippet": "x"}), "admin", None)
    with pytest.raises(st.ValuesError):
        st.check_ingress(ingress("example.test"), "system", None)


def test_auth_false_only_where_allowed():
    text = HEADER.replace("name: T", "name: T\nauth: false") + "- name: HOSTNAME\n" + (
        "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: $NAME}\n"
        "spec: {rules: [{host: $HOSTNAME}]}\n")
    message = ("auth: false is not allowed in your templates on this deployment (serviceAuthOptional): its "
               "services would be open without the hub's login")
    for source in ("system", "admin"):
        st.render(st.parse_template(text, "open", source), {"NAME": "t"}, context("t"))
    user = st.parse_template(text, "open", "user")
    with pytest.raises(st.TemplateError) as error:
        st.render(user, {"NAME": "t"}, context("t"))
    assert str(error.value) == message
    rendered = st.render(user, {"NAME": "t"}, context("t", auth_optional=True))
    assert st.AUTH_URL_ANNOTATION not in rendered.objects[0]["metadata"]["annotations"]


# --- values ----------------------------------------------------------------------------------

VALUES_TEMPLATE = st.parse_template(
    "kind: Template\nname: V\nvariables:\n- name: NAME\n  default: web\n- name: TEXT\n  default: hi\n"
    "- name: PASSWORD\n  secret: true\n- name: REPLICAS\n  default: 1\n- name: PORT\n  default: 80\n"
    "- name: FLAG\n  default: true\n- name: RATIO\n  default: 0.5\n- name: COUNT\n  default: 3\n"
    "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: $NAME}\n"
    "data: {text: $TEXT, secret: $PASSWORD, replicas: $REPLICAS, flag: $FLAG, ratio: $RATIO, count: $COUNT}\n"
    "---\napiVersion: v1\nkind: Service\nmetadata: {name: $NAME}\nspec: {ports: [{port: $PORT}]}\n",
    "values", "user")
GOOD = {"NAME": "web", "TEXT": "hi", "PASSWORD": "pw", "REPLICAS": "1", "PORT": "80", "FLAG": "true",
        "RATIO": "0.5", "COUNT": "3"}
# every line break and control character: C0, DEL, C1 (NEL among them), U+2028, U+2029
REFUSED = [chr(c) for c in (*range(0x00, 0x20), *range(0x7F, 0xA0), 0x2028, 0x2029)]


@pytest.mark.parametrize("variable", sorted(GOOD))
def test_control_characters_and_line_breaks_are_refused_in_every_kind_of_value(variable):
    for char in REFUSED:
        for value in (GOOD[variable] + char, char + GOOD[variable], GOOD[variable][:1] + char + GOOD[variable][1:]):
            with pytest.raises(st.ValuesError) as error:
                st.render(VALUES_TEMPLATE, {**GOOD, variable: value}, context("web"))
            assert str(error.value) == (
                f"{variable}: must not contain control characters or line breaks (U+{ord(char):04X})")


def test_every_other_character_is_allowed():
    # one of each other general category, emoji (outside the BMP) and joiners among them
    samples = "aÄ名ǅʰ\u0301\u0903\u20dd٣Ⅻ½_-()«»!+$^¦ \u00a0\u200b\u200d\ue000🎂👨\u200d👩\U0010fffd"
    categories = {unicodedata.category(c) for c in samples}
    assert categories >= {"Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl", "No", "Pc", "Pd", "Ps", "Pe",
                          "Pi", "Pf", "Po", "Sm", "Sc", "Sk", "So", "Zs", "Cf", "Co"}
    rendered = st.render(VALUES_TEMPLATE, {**GOOD, "TEXT": samples, "PASSWORD": samples}, context("web"))
    assert rendered.objects[0]["data"]["text"] == samples.strip()


@pytest.mark.parametrize("variable, value, message", [
    ("REPLICAS", "99999999999999999999999", "REPLICAS: must be a whole number from 0 to 100 (replicas)"),
    ("REPLICAS", "1_000", "REPLICAS: must be a whole number from 0 to 100 (replicas)"),
    ("REPLICAS", "101", "REPLICAS: must be a whole number from 0 to 100 (replicas)"),
    ("REPLICAS", "-1", "REPLICAS: must be a whole number from 0 to 100 (replicas)"),
    ("REPLICAS", "+1", "REPLICAS: must be a whole number from 0 to 100 (replicas)"),
    ("REPLICAS", "01", "REPLICAS: must be a whole number from 0 to 100 (replicas)"),
    ("REPLICAS", "0x10", "REPLICAS: must be a whole number from 0 to 100 (replicas)"),
    ("REPLICAS", "٣", "REPLICAS: must be a whole number from 0 to 100 (replicas)"),
    ("PORT", "0", "PORT: must be a whole number from 1 to 65535 (a port)"),
    ("PORT", "65536", "PORT: must be a whole number from 1 to 65535 (a port)"),
    ("PORT", "1:30", "PORT: must be a whole number from 1 to 65535 (a port)"),
    ("COUNT", "2147483648", "COUNT: must be a whole number from -2147483648 to 2147483647"),
    ("COUNT", "1e3", "COUNT: must be a whole number from -2147483648 to 2147483647"),
    ("FLAG", "yes", "FLAG: must be true or false"),
    ("FLAG", "True", "FLAG: must be true or false"),
    ("RATIO", ".5", "RATIO: must be a number"),
    ("RATIO", "nan", "RATIO: must be a number"),
    ("RATIO", "1_0.5", "RATIO: must be a number"),
])
def test_typed_values_are_plain_and_bounded(variable, value, message):
    with pytest.raises(st.ValuesError) as error:
        st.render(VALUES_TEMPLATE, {**GOOD, variable: value}, context("web"))
    assert str(error.value) == message


def test_typed_values_within_bounds():
    rendered = st.render(VALUES_TEMPLATE, {**GOOD, "REPLICAS": "100", "PORT": "65535", "COUNT": "-2147483648",
                                           "FLAG": "false", "RATIO": "-2"}, context("web"))
    config, service = rendered.objects
    assert (config["data"]["replicas"], config["data"]["count"], config["data"]["flag"], config["data"]["ratio"]) == (
        100, -2147483648, False, -2.0)
    assert service["spec"]["ports"] == [{"port": 65535}]


def test_values_repeated_by_references_cannot_blow_the_rendering_up():
    text = ("kind: Template\nname: A\nvariables:\n- name: NAME\n  default: a\n- name: V\n  default: v\n---\n"
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: $NAME}\ndata: {x: \"" + "${V}" * 3_000 + "\"}\n")
    template = st.parse_template(text, "amp", "user")
    assert len(st.render(template, {"NAME": "a", "V": "v" * 600}, context("a")).objects[0]["data"]["x"]) == 1_800_000
    with pytest.raises(st.ValuesError) as error:
        st.render(template, {"NAME": "a", "V": "v" * 1024}, context("a"))
    assert str(error.value) == "the rendered objects would be larger than 2048 KiB"


# --- off the event loop, with a time limit (store.py) -------------------------------------------


async def test_template_work_gives_up_after_its_time_with_a_400():
    from karvdash_hub.services.store import InstanceError, off_loop

    with pytest.raises(InstanceError) as error:
        await off_loop(time.sleep, 1.0, seconds=0.05)
    assert (error.value.status, error.value.message) == (400, "the template takes too long to render")
    with pytest.raises(InstanceError) as error:
        await off_loop(st.parse_template, CASES["alias-bomb"].text, "bomb", "user")
    assert error.value.status == 400
    assert error.value.message.startswith("not a valid template: line 14: YAML anchors and aliases")


async def test_the_event_loop_keeps_answering_while_the_largest_template_is_read():
    import asyncio

    from karvdash_hub.services.store import off_loop

    # the largest template the bounds let through: 50 objects, close to 10,000 nodes
    text = "kind: Template\nname: W\nvariables:\n- name: NAME\n  default: w\n- name: V\n  default: v\n" + "".join(
        f"---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: $NAME-{i}\ndata:\n"
        + "".join(f"  k{j}: \"{'$V' * 12}\"\n" for j in range(90)) for i in range(50))
    gaps = []

    async def ticker(done: asyncio.Event):
        last = time.monotonic()
        while not done.is_set():
            await asyncio.sleep(0.005)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    done = asyncio.Event()
    ticking = asyncio.create_task(ticker(done))
    for _ in range(3):
        template = await off_loop(st.parse_template, text, "w", "user", max_objects=50)
        await off_loop(st.render, template, {"NAME": "w", "V": "x"}, context("w"))
    done.set()
    await ticking
    assert len(template.objects) == 50 and gaps
    # the loop went on ticking; CPU work in its thread only shares the GIL
    assert max(gaps) < 0.5
    import threading

    assert await off_loop(threading.get_ident) != threading.get_ident()


def test_apply_bodies_carry_emoji_as_utf8_and_escape_the_rest():
    import json

    from karvdash_hub.services.store import apply_body

    value = "cake 🎂 é \u2028 \x85 \" \\ \U0010fffd"
    body = apply_body({"data": {"x": value}})
    # YAML (the API server reads apply bodies as YAML) cannot take surrogate-pair escapes
    assert b"\\ud83c" not in body and "🎂".encode() in body
    # no raw character that YAML reads as a line break, no raw non-ASCII of the BMP
    assert b"\\u2028" in body and b"\\u0085" in body and b"\\u00e9" in body
    assert all(b < 0x80 for b in body.replace("🎂".encode(), b"").replace("\U0010fffd".encode(), b""))
    assert json.loads(body) == {"data": {"x": value}}


# --- the settings behind the bounds ------------------------------------------------------------


def test_the_bounds_come_from_the_settings():
    from karvdash_hub.core.settings import SettingsError, load_settings
    from karvdash_hub.dashboard.servicepages import render_context

    defaults = render_context(load_settings(environ={}), "/services/karvdash/")
    assert (defaults.max_objects, defaults.auth_optional) == (50, False)
    settings = load_settings(environ={"KARVDASH_TEMPLATE_MAX_OBJECTS": "7", "KARVDASH_SERVICE_AUTH_OPTIONAL": "true"})
    assert (render_context(settings, "/").max_objects, render_context(settings, "/").auth_optional) == (7, True)
    for bad in ("0", "1001"):
        with pytest.raises(SettingsError) as error:
            load_settings(environ={"KARVDASH_TEMPLATE_MAX_OBJECTS": bad})
        assert "templateMaxObjects" in str(error.value) and "must be from 1 to 1000" in str(error.value)


def test_stored_templates_are_parsed_once_per_version(monkeypatch):
    from karvdash_hub.services import store

    calls = []
    parse = st.parse_template
    monkeypatch.setattr(st, "parse_template", lambda *args, **kwargs: calls.append(args[1]) or parse(*args, **kwargs))
    text = HEADER + CONFIGMAP.format("")
    items = [{"metadata": {"name": "one", "uid": "u-1", "resourceVersion": "7"}, "spec": {"data": text}},
             {"metadata": {"name": "bad", "uid": "u-2", "resourceVersion": "9"}, "spec": {"data": "a: &x 1"}}]
    first = store._parse_stored(items)
    again = store._parse_stored(items)
    assert [t.id for t in first[0]] == [t.id for t in again[0]] == ["one"]
    assert first[1] == again[1] == [
        "bad: line 1: YAML anchors and aliases (&name, *name, <<: *name) are not supported in templates; "
        "write the repeated part out"]
    assert calls == ["one", "bad"]
    # a new version is parsed again
    items[0]["metadata"]["resourceVersion"] = "8"
    store._parse_stored(items)
    assert calls == ["one", "bad", "one"]
