"""Service and template commands: list_services, create_service,
exec_service, delete_service, list_templates, add_template, get_template,
remove_template (Karvdash's names)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from .client import DashboardClient
from .filecommands import UsageProblem
from .output import Output


def parse_values(pairs: list[str]) -> dict[str, str]:
    """``NAME=web MESSAGE=hi there`` -> {"NAME": "web", "MESSAGE": "hi there"}."""
    values = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise UsageProblem(f"{pair!r}: give variables as NAME=value")
        if name in values:
            raise UsageProblem(f"{name} is given twice")
        values[name] = value
    return values


def register(commands) -> None:
    ls = commands.add_parser("list_services", help="list your services", description="List your services.")
    ls.set_defaults(run=run_list_services)

    create = commands.add_parser(
        "create_service",
        help="start a service from a template",
        description="Start a service from a template; variables left out take their defaults "
        "(list_templates shows them).",
    )
    create.add_argument("template", help="template id, e.g. jupyter")
    create.add_argument("variables", nargs="*", metavar="NAME=VALUE", help="e.g. NAME=notebook")
    create.set_defaults(run=run_create_service)

    run = commands.add_parser(
        "exec_service",
        help="run a command in a service's pods",
        description="Run a command in the first running pod of a service (all of them with -a).",
    )
    run.add_argument("-a", "--all", action="store_true", help="run it in every running pod")
    run.add_argument("name", help="the service")
    run.add_argument("command", nargs="+", help="the command and its arguments (put -- before options)")
    run.set_defaults(run=run_exec_service)

    delete = commands.add_parser("delete_service", help="remove a service", description="Remove a service.")
    delete.add_argument("name", help="the service")
    delete.set_defaults(run=run_delete_service)

    templates = commands.add_parser("list_templates", help="list templates", description="List service templates.")
    templates.set_defaults(run=run_list_templates)

    add = commands.add_parser(
        "add_template", help="add a template", description="Add a template from a local *.template.yaml file."
    )
    add.add_argument("file", help="the template file")
    add.set_defaults(run=run_add_template)

    get = commands.add_parser("get_template", help="print a template's YAML", description="Print a template's YAML.")
    get.add_argument("id", help="template id")
    get.set_defaults(run=run_get_template)

    remove = commands.add_parser(
        "remove_template", help="delete one of your templates", description="Delete a template you added."
    )
    remove.add_argument("id", help="template id")
    remove.set_defaults(run=run_remove_template)


def run_list_services(client: DashboardClient, args, out: Output) -> int:
    services = client.request("GET", "services")
    if out.json:
        out.data(services)
        return 0
    out.table(["name", "status", "template", "created", "url"],
              [(s["name"], s["status"], s["template"], s["created"], s["url"]) for s in services])
    return 0


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
    results = client.request(
        "POST", f"services/{quote(args.name, safe='')}", json={"command": args.command, "all_pods": args.all}
    )
    if out.json:
        out.data(results)
        return 0
    code = 0
    for result in results:
        if len(results) > 1:
            out.say(f"--- {result['pod']}")
        out.say(result["output"].rstrip("\n"))
        code = code or (result.get("exit_code") or 0)
    return min(code, 255)


def run_delete_service(client: DashboardClient, args, out: Output) -> int:
    client.request("DELETE", f"services/{quote(args.name, safe='')}")
    out.done({"name": args.name}, f"removed {args.name}")
    return 0


def run_list_templates(client: DashboardClient, args, out: Output) -> int:
    templates = client.request("GET", "templates")
    if out.json:
        out.data(templates)
        return 0
    out.table(["id", "singleton", "custom", "name", "variables"],
              [(t["id"], "yes" if t["singleton"] else "no", "yes" if t["custom"] else "no", t["name"],
                " ".join(v["name"] for v in t["variables"])) for t in templates])
    return 0


def run_add_template(client: DashboardClient, args, out: Output) -> int:
    try:
        text = Path(args.file).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UsageProblem(f"{args.file} is not UTF-8 text") from None
    template = client.request("POST", "templates", json={"data": text})
    out.done(template, f"added template {template['id']} ({template['name']})")
    return 0


def run_get_template(client: DashboardClient, args, out: Output) -> int:
    template = client.request("GET", f"templates/{quote(args.id, safe='')}")
    if out.json:
        out.data(template)
    else:
        print(template["data"], end="" if template["data"].endswith("\n") else "\n", file=out.stream)
    return 0


def run_remove_template(client: DashboardClient, args, out: Output) -> int:
    client.request("DELETE", f"templates/{quote(args.id, safe='')}")
    out.done({"id": args.id}, f"removed template {args.id}")
    return 0
