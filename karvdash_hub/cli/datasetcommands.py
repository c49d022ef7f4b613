"""Dataset commands: list_datasets, add_dataset, get_dataset, remove_dataset.

``add_dataset TYPE name=... key=value...`` takes the type's fields (the
Datasets page shows them). S3 secret keys left out are asked for without
echo, so they stay out of the shell's history.
"""

from __future__ import annotations

import getpass
import sys

from .client import DashboardClient
from .commands import Command, UsageProblem, argument, parse_values, quote_name, remove, show_list, show_text
from .output import Output

TYPES = ("s3-local", "s3-remote", "h3-local", "h3-remote", "archive")
SECRET_FIELDS = ("accessKeyID", "secretAccessKey")


def run_list_datasets(client: DashboardClient, args, out: Output) -> int:
    return show_list(client, out, "datasets", ["name", "type", "bucket", "endpoint"],
                     lambda d: (d["name"], d["type"], d["bucket"], d["endpoint"]))


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
    return show_text(client, out, f"datasets/{quote_name(args.name)}", "yaml")


def run_remove_dataset(client: DashboardClient, args, out: Output) -> int:
    return remove(client, out, f"datasets/{quote_name(args.name)}", {"name": args.name}, f"removed dataset {args.name}")


DATASET = argument("name", help="the dataset")

COMMANDS = [
    Command("list_datasets", "list your datasets", run_list_datasets),
    Command(
        "add_dataset",
        "add a dataset",
        run_add_dataset,
        (argument("type", choices=TYPES, help="the dataset type"),
         argument("fields", nargs="*", metavar="FIELD=VALUE", help="e.g. name=climate bucket=data")),
        description="Add a dataset. Fields by type: s3-remote: name endpoint bucket accessKeyID secretAccessKey "
        "[region readonly]; s3-local: name service bucket accessKeyID secretAccessKey [region readonly]; "
        "h3-remote: name storageUri bucket; h3-local: name service bucket; archive: name url. "
        "S3 keys left out are asked for (not echoed). A taken name gets a suffix.",
    ),
    Command("get_dataset", "print a dataset's YAML", run_get_dataset, (DATASET,),
            description="Print a dataset's YAML (credentials left out)."),
    Command("remove_dataset", "remove a dataset", run_remove_dataset, (DATASET,),
            description="Remove a dataset (its data stays where it is)."),
]
