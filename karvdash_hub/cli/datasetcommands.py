"""Dataset commands: list_datasets, add_dataset, get_dataset, remove_dataset.

``add_dataset TYPE name=... key=value...`` takes the type's fields (the
Datasets page shows them). S3 secret keys left out are asked for without
echo, so they stay out of the shell's history.
"""

from __future__ import annotations

import getpass
import sys
from urllib.parse import quote

from .client import DashboardClient
from .filecommands import UsageProblem
from .output import Output
from .servicecommands import parse_values

TYPES = ("s3-local", "s3-remote", "h3-local", "h3-remote", "archive")
SECRET_FIELDS = ("accessKeyID", "secretAccessKey")


def register(commands) -> None:
    ls = commands.add_parser("list_datasets", help="list your datasets", description="List your datasets.")
    ls.set_defaults(run=run_list_datasets)

    add = commands.add_parser(
        "add_dataset",
        help="add a dataset",
        description="Add a dataset. Fields by type: s3-remote: name endpoint bucket accessKeyID secretAccessKey "
        "[region readonly]; s3-local: name service bucket accessKeyID secretAccessKey [region readonly]; "
        "h3-remote: name storageUri bucket; h3-local: name service bucket; archive: name url. "
        "S3 keys left out are asked for (not echoed). A taken name gets a suffix.",
    )
    add.add_argument("type", choices=TYPES, help="the dataset type")
    add.add_argument("fields", nargs="*", metavar="FIELD=VALUE", help="e.g. name=climate bucket=data")
    add.set_defaults(run=run_add_dataset)

    get = commands.add_parser(
        "get_dataset", help="print a dataset's YAML", description="Print a dataset's YAML (credentials left out)."
    )
    get.add_argument("name", help="the dataset")
    get.set_defaults(run=run_get_dataset)

    remove = commands.add_parser(
        "remove_dataset", help="remove a dataset", description="Remove a dataset (its data stays where it is)."
    )
    remove.add_argument("name", help="the dataset")
    remove.set_defaults(run=run_remove_dataset)


def run_list_datasets(client: DashboardClient, args, out: Output) -> int:
    datasets = client.request("GET", "datasets")
    if out.json:
        out.data(datasets)
        return 0
    out.table(["name", "type", "bucket", "endpoint"], [(d["name"], d["type"], d["bucket"], d["endpoint"]) for d in datasets])
    return 0


def ask_secrets(dataset_type: str, fields: dict, stdin=None) -> dict:
    """Ask for the S3 keys that are not given, when someone can answer."""
    stdin = stdin or sys.stdin
    if not dataset_type.startswith("s3-"):
        return fields
    for name in SECRET_FIELDS:
        if name not in fields and stdin.isatty():
            fields[name] = getpass.getpass(f"{name}: ")
    return fields


def run_add_dataset(client: DashboardClient, args, out: Output) -> int:
    fields = parse_values(args.fields)
    if "type" in fields:
        raise UsageProblem("the type is the first argument, not a field")
    if "readonly" in fields:
        fields["readonly"] = fields["readonly"].lower() in ("true", "yes", "1", "on")
    dataset = client.request("POST", "datasets", json={"type": args.type, **ask_secrets(args.type, fields)})
    out.done(dataset, f"added dataset {dataset['name']} (mounted at /mnt/datasets/{dataset['name']})")
    return 0


def run_get_dataset(client: DashboardClient, args, out: Output) -> int:
    dataset = client.request("GET", f"datasets/{quote(args.name, safe='')}")
    if out.json:
        out.data(dataset)
    else:
        print(dataset["yaml"], end="", file=out.stream)
    return 0


def run_remove_dataset(client: DashboardClient, args, out: Output) -> int:
    client.request("DELETE", f"datasets/{quote(args.name, safe='')}")
    out.done({"name": args.name}, f"removed dataset {args.name}")
    return 0
