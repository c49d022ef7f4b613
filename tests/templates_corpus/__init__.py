"""Malicious and malformed service templates, each with what must happen to it.

Files ``*.template.yaml`` here say it in their first lines::

    # expect: add 400 <part of the message>       refused when the template is added
    # expect: create 400 <part of the message>    added, refused when a service is started
    # expect: create 201                           both work
    # values: {"VAR": "..."}                       values for the service (JSON)

:func:`cases` adds the ones too large to keep as files (generated here).
The unit tests run them through the template engine, the kube tests through
the stores on the real API server, and test_templates_corpus_kube.py through
a running dashboard as one user while another user's requests are timed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).parent

HEADER = "kind: Template\nname: Corpus {name}\nvariables:\n- name: NAME\n  default: {default}\n"


@dataclass(frozen=True)
class Case:
    name: str
    text: str
    stage: str  # "add" or "create": where it is refused (or "create" with status 201)
    status: int
    message: str = ""
    values: dict = field(default_factory=dict)


def _configmaps(count: int) -> str:
    return "".join(f"---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: $NAME-{i}\n" for i in range(count))


def _generated() -> list[Case]:
    deep = 20_000
    nested = "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: $NAME\ndata:\n  x: " + "[" * deep + "]" * deep + "\n"
    # a sequence in a sequence ... on one line, in block style
    block_nested = "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: $NAME\ndata:\n  x:\n  " + "- " * deep + "x\n"
    wide = "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: $NAME\ndata:\n" + "".join(
        f"  k{i}: v\n" for i in range(6_000))
    # a string of 60,000 references to a 1,024-character value: 60 MB rendered
    amplified = ("---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: $NAME\ndata:\n  x: \"" + "$V" * 60_000
                 + "\"\n")
    configmap = "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: $NAME\ndata:\n"
    unreadable = [
        # values PyYAML's constructors fail on, or that JSON cannot carry
        ("int-tag", "  a: !!int 0xZZ\n", "not valid YAML: a value cannot be read"),
        ("bool-tag", "  a: !!bool maybe\n", "not valid YAML: a value cannot be read"),
        ("set-value", "  a: !!set {a, b}\n", "document 2.data.a: a set value cannot be sent to Kubernetes"),
        ("binary-key", "  ? !!binary aGVsbG8=\n  : x\n", "the key b'hello' is not text or a number"),
        ("nan", "  a: .nan\n", "nan is not a number JSON can carry"),
    ]
    return [
        *(Case(name, HEADER.format(name=name, default="v") + configmap + body, "add", 400, message)
          for name, body, message in unreadable),
        Case("objects-3500", HEADER.format(name="objects-3500", default="many") + _configmaps(3_500), "add", 400,
             "has more than 50 objects; a template may have at most 50"),
        Case("objects-51", HEADER.format(name="objects-51", default="many") + _configmaps(51), "add", 400,
             "has 51 objects; a template may have at most 50"),
        Case("nesting-20000", HEADER.format(name="nesting-20000", default="deep") + nested, "add", 400,
             "nested more than 40 levels deep"),
        Case("block-nesting-20000", HEADER.format(name="block-nesting-20000", default="deep") + block_nested,
             "add", 400, "nested more than 40 levels deep"),
        Case("nodes-12000", HEADER.format(name="nodes-12000", default="wide") + wide, "add", 400,
             "has more than 10000 YAML nodes"),
        Case("size-300k", HEADER.format(name="size-300k", default="big") + "# " + "x" * 300_000 + "\n"
             + _configmaps(1), "add", 400, "is larger than 256 KiB"),
        Case("value-amplification",
             HEADER.format(name="value-amplification", default="amp") + "- name: V\n  default: v\n" + amplified,
             "create", 400, "the rendered objects would be larger than 2048 KiB", {"V": "v" * 1024}),
    ]


def _from_file(path: Path) -> Case:
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    stage, status, *message = lines[0].removeprefix("# expect: ").split(" ", 2)
    values = {}
    if lines[1].startswith("# values: "):
        values = json.loads(lines[1].removeprefix("# values: "))
    return Case(path.name.removesuffix(".template.yaml"), text, stage, int(status), "".join(message), values)


def cases() -> list[Case]:
    return [_from_file(p) for p in sorted(HERE.glob("*.template.yaml"))] + _generated()
