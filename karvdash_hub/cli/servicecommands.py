"""Service and template commands: list_services, create_service,
exec_service, delete_service, list_templates, add_template, get_template,
remove_template (Karvdash's names)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .client import DashboardClient
from .commands import Command, UsageProblem, argument, parse_values, quote_name, remove, show_list, show_text
from .output import Output


def yes_no(value: bool) -> str:
    return "yes" if value else "no"


def run_list_services(client: DashboardClient, args, out: Output) -> int:
    return show_list(client, out, "services", ["name", "status", "template", "created", "url"],
                     lambda s: (s["name"], s["status"], s["template"], s["created"], s["url"]))


def run_create_service(client: DashboardClient, args, out: Output) -> int:
    values = parse_values(args.variables)
    if "id" in values:
        raise UsageProblem("id is the template, not a variable")
    service = client.request("POST", "services", json={"id": args.template, **values})
    out.done(service, f"created {service['name']}" + (f" at {service['url']}" if service["url"] else ""))
    for variable, value in service.get("credentials", {}).items():
        out.say(f"{variable}={value} (generated; shown only now)")
    return 0


def run_exec_service(client: DashboardClient, args, out: Output) -> int:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise UsageProblem("give the command to run after the service's name")
    results = client.request("POST", f"services/{quote_name(args.name)}", json={"command": command, "all_pods": args.all})
    if out.json:
        out.data(results)
        return 0
    code = 0
    for result in results:
        if len(results) > 1:
            out.say(f"--- {result['pod']}")
        out.say(result["output"].rstrip("\n"))
        if result.get("exit_code") is None and result.get("error"):
            out.error(f"{result['pod']}: {result['error']}")
            code = code or 1
        code = code or (result.get("exit_code") or 0)
    return min(code, 255)


def run_delete_service(client: DashboardClient, args, out: Output) -> int:
    return remove(client, out, f"services/{quote_name(args.name)}", {"name": args.name}, f"removed {args.name}")


def run_list_templates(client: DashboardClient, args, out: Output) -> int:
    return show_list(client, out, "templates", ["id", "singleton", "custom", "name", "variables"],
                     lambda t: (t["id"], yes_no(t["singleton"]), yes_no(t["custom"]), t["name"],
                                " ".join(v["name"] for v in t["variables"])))


def run_add_template(client: DashboardClient, args, out: Output) -> int:
    try:
        text = Path(args.file).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UsageProblem(f"{args.file} is not UTF-8 text") from None
    template = client.request("POST", "templates", json={"data": text})
    out.done(template, f"added template {template['id']} ({template['name']})")
    return 0


def run_get_template(client: DashboardClient, args, out: Output) -> int:
    return show_text(client, out, f"templates/{quote_name(args.id)}", "data")


def run_remove_template(client: DashboardClient, args, out: Output) -> int:
    return remove(client, out, f"templates/{quote_name(args.id)}", {"id": args.id}, f"removed template {args.id}")


SERVICE = argument("name", help="the service")
TEMPLATE_ID = argument("id", help="template id")

COMMANDS = [
    Command("list_services", "list your services", run_list_services),
    Command(
        "create_service",
        "start a service from a template",
        run_create_service,
        (argument("template", help="template id, e.g. jupyter"),
         argument("variables", nargs="*", metavar="NAME=VALUE", help="e.g. NAME=notebook")),
        description="Start a service from a template; variables left out take their defaults "
        "(list_templates shows them).",
    ),
    Command(
        "exec_service",
        "run a command in a service's pods",
        run_exec_service,
        (argument("-a", "--all-pods", "--all", dest="all", action="store_true", help="run it in every running pod"),
         SERVICE,
         # everything after the name is the command, its options too (as in Karvdash)
         argument("command", nargs=argparse.REMAINDER, metavar="COMMAND...",
                  help="the command and its arguments, e.g. ls -l /")),
        description="Run a command in the first running pod of a service (all of them with -a). Everything "
        "after the service's name is the command; options of karvdashctl come before the name.",
    ),
    Command("delete_service", "remove a service", run_delete_service, (SERVICE,)),
    Command("list_templates", "list templates", run_list_templates, description="List service templates."),
    Command("add_template", "add a template", run_add_template, (argument("file", help="the template file"),),
            description="Add a template from a local *.template.yaml file."),
    Command("get_template", "print a template's YAML", run_get_template, (TEMPLATE_ID,)),
    Command("remove_template", "delete one of your templates", run_remove_template, (TEMPLATE_ID,),
            description="Delete a template you added."),
]
