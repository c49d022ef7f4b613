"""Accounts at the scale of a department: the Sign-ups page, the accounts
API and sign-up with N accounts, against the hub's own ``/hub/api`` in the
same run.

    .venv/bin/python bench/hub_scale.py [--users 10000] [--seconds 5] [--rounds 5] [--signups 20] [--json]

Starts a karvdash-hub (local mode, real proxy, SQLite; tests/hubprocess.py)
on loopback ports, fills it with --users accounts (half waiting for
approval, half approved) through the admin's import API, the approved half
also users of the hub (as after their first login) through JupyterHub's
users API, and measures one client's requests one after another, over
keep-alive connections:

- ``reference``: ``GET /hub/api`` (JupyterHub's version answer: the cost of
  the proxy, Tornado and the hub's login check alone);
- ``signups-first-page``: ``GET /hub/authorize`` (50 accounts by name);
- ``signups-search``: ``GET /hub/authorize?search=...`` (a name or email substring);
- ``signups-sort``: ``GET /hub/authorize?sort=email&order=desc&offset=N/2`` (a page in the middle);
- ``accounts-api``: ``GET /hub/api/accounts?sort=created&offset=N/2`` (JSON, with a token);
- ``hub-admin-page``: ``GET /hub/admin`` (JupyterHub's admin page);
- ``hub-users-api``: ``GET /hub/api/users?limit=50`` (what that page asks for);
- ``signup-post``: ``POST /hub/signup`` of a new account, with N/10
  accounts and with N (a bcrypt hash of the password is most of its time;
  the email check is one indexed look-up, so the two should match).

Beside it, a plain JupyterHub (bench/spawn_scale.py's: the same proxy and
database, no karvdash-hub) holding as many JupyterHub users, created through
its users API, answers ``GET /hub/api`` and ``GET /hub/api/users?limit=50``
in the same turns: JupyterHub's own cost of that users page over its
reference, and karvdash-hub's users API over plain JupyterHub's.

Targets take turns in short rounds (so a change of the machine's load
affects them alike). Prints p50/p99 per target and their ratio to the
reference's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.spawn_scale import server_command, start_plain_hub  # noqa: E402
from tests.hubprocess import start_hub  # noqa: E402

IMPORT_BATCH = 2000
PASSWORD = "bench-password-1"


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def fill(hub, token: str, first: int, last: int) -> None:
    """Accounts user<first>..user<last - 1>, odd ones approved and, as after
    their first login, users of the hub itself."""
    for state, parity in (("pending", 0), ("approved", 1)):
        numbers = [i for i in range(first, last) if i % 2 == parity]
        for start in range(0, len(numbers), IMPORT_BATCH):
            batch = numbers[start:start + IMPORT_BATCH]
            lines = [f"user{i},user{i}@dept{i % 7}.example.org" for i in batch]
            response = hub.api("POST", f"/accounts?state={state}", token=token, data="\n".join(lines),
                               headers={"Content-Type": "text/csv"})
            if response.status_code != 201 or response.json()["refused"]:
                raise RuntimeError(f"import: {response.status_code} {response.text[:500]}")
            if state == "approved":
                add_users(hub, token, [f"user{i}" for i in batch])


def add_users(hub, token: str, names: list[str]) -> None:
    """Users of the hub itself, through JupyterHub's users API."""
    response = requests.post(hub.hub_api + "/users", json={"usernames": names}, timeout=600,
                             headers={"Authorization": f"token {token}"})
    if response.status_code != 201:
        raise RuntimeError(f"users: {response.status_code} {response.text[:500]}")


def jupyterhub_users(hub, token: str) -> int:
    """How many users the hub itself holds (an account waiting for approval
    is not one yet)."""
    response = hub.api("GET", "/users?limit=1", token=token, headers={"Accept": "application/jupyterhub-pagination+json"})
    response.raise_for_status()
    return response.json()["_pagination"]["total"]


def fill_plain(hub, token: str, count: int) -> None:
    """``count`` users in a plain JupyterHub."""
    for start in range(0, count, IMPORT_BATCH):
        add_users(hub, token, [f"plain{i}" for i in range(start, min(start + IMPORT_BATCH, count))])


class SignUps:
    """New accounts through the sign-up form, one per request."""

    def __init__(self, hub):
        self.url = hub.url + "/hub/signup"
        self.session = requests.Session()
        self.session.get(self.url, timeout=60)
        self.count = 0

    def __call__(self) -> None:
        self.count += 1
        name = f"new{os.getpid()}x{self.count}"
        response = self.session.post(self.url, timeout=120, data={
            "username": name, "email": f"{name}@signup.example.org",
            "signup_password": PASSWORD, "signup_password_confirmation": PASSWORD,
            "_xsrf": self.session.cookies.get("_xsrf"),
        })
        if response.status_code != 200 or "sent to the admin" not in response.text:
            raise RuntimeError(f"sign-up of {name}: {response.status_code}")


def getter(session: requests.Session, url: str, expect: str = ""):
    def one() -> None:
        response = session.get(url, timeout=120)
        if response.status_code != 200 or (expect and expect not in response.text):
            raise RuntimeError(f"{url}: {response.status_code} {response.text[:300]}")
    return one


def measure(targets: dict, seconds: float, rounds: int, warm_up: int = 3) -> dict[str, list[float]]:
    """Latencies of each target, taking turns for ``seconds`` in all."""
    for one in targets.values():
        for _ in range(warm_up):
            one()
    samples: dict[str, list[float]] = {name: [] for name in targets}
    for _ in range(rounds):
        for name, one in targets.items():
            deadline = time.perf_counter() + seconds / rounds
            while True:
                started = time.perf_counter()
                one()
                samples[name].append(time.perf_counter() - started)
                if time.perf_counter() >= deadline:
                    break
    return samples


def timed_calls(one, count: int) -> list[float]:
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        one()
        latencies.append(time.perf_counter() - started)
    return latencies


def against_reference(results: dict) -> None:
    """Each result's p50 and p99 over those of ``results["reference"]``."""
    reference = results["reference"]
    for result in results.values():
        result["p50_vs_reference"] = round(result["p50_ms"] / reference["p50_ms"], 2)
        result["p99_vs_reference"] = round(result["p99_ms"] / reference["p99_ms"], 2)


def print_rows(results: dict) -> None:
    for name, r in results.items():
        print(f"{name:<26}{r['requests']:>10}{r['p50_ms']:>10}{r['p99_ms']:>10}{r['p50_vs_reference']:>11}{r['p99_vs_reference']:>11}")


def summary(latencies: list[float]) -> dict:
    return {
        "requests": len(latencies),
        "p50_ms": round(1000 * percentile(latencies, 50), 2),
        "p99_ms": round(1000 * percentile(latencies, 99), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=10_000, help="accounts to fill in (default 10000)")
    parser.add_argument("--seconds", type=float, default=5.0, help="measuring time per read target (default 5)")
    parser.add_argument("--rounds", type=int, default=5, help="turns each read target takes (default 5)")
    parser.add_argument("--signups", type=int, default=20, help="sign-up POSTs at N/10 and at N each (default 20)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    if args.users < 10:
        parser.error("--users must be at least 10")

    work = Path(tempfile.mkdtemp(prefix="karvdash-scale-"))
    hub = plain = None
    try:
        hub = start_hub(work / "hub")
        plain, plain_token = start_plain_hub(work / "plain", patient=False, command=server_command("karvdash"))
        token = hub.token_for(hub.admin)
        admin = hub.admin_session()
        api = requests.Session()
        api.headers["Authorization"] = f"token {token}"
        signups = SignUps(hub)

        started = time.perf_counter()
        tenth = max(args.users // 10, 1)
        fill(hub, token, 0, tenth)
        signup_small = timed_calls(signups, args.signups)
        fill(hub, token, tenth, args.users)
        filled = time.perf_counter() - started
        signup_large = timed_calls(signups, args.signups)
        users = jupyterhub_users(hub, token)
        fill_plain(plain, plain_token, users - jupyterhub_users(plain, plain_token))
        plain_users = jupyterhub_users(plain, plain_token)
        plain_api = requests.Session()
        plain_api.headers["Authorization"] = f"token {plain_token}"

        middle = args.users // 2
        search = f"user{args.users // 3}"[:-1]  # matches about ten names
        targets = {
            "reference": getter(api, hub.hub_api, "version"),
            "signups-first-page": getter(admin, hub.url + "/hub/authorize", 'id="signups"'),
            "signups-search": getter(admin, f"{hub.url}/hub/authorize?search={search}", f'id="{search}'),
            "signups-sort": getter(admin, f"{hub.url}/hub/authorize?sort=email&order=desc&offset={middle}", "<tr id="),
            "accounts-api": getter(api, f"{hub.hub_api}/accounts?sort=created&offset={middle}", '"accounts"'),
            "hub-admin-page": getter(admin, hub.url + "/hub/admin"),
            "hub-users-api": getter(api, hub.hub_api + "/users?limit=50"),
            "plain-reference": getter(plain_api, plain.hub_api, "version"),
            "plain-hub-users-api": getter(plain_api, plain.hub_api + "/users?limit=50"),
        }
        samples = measure(targets, args.seconds, args.rounds)
        total = api.get(hub.hub_api + "/accounts?limit=1", timeout=60).json()["total"]
    finally:
        for running in (hub, plain):
            if running:
                running.stop()
        shutil.rmtree(work, ignore_errors=True)

    plain_results = {name.removeprefix("plain-"): summary(samples.pop(name)) for name in list(samples)
                     if name.startswith("plain-")}
    against_reference(plain_results)
    results = {name: summary(latencies) for name, latencies in samples.items()}
    results[f"signup-post-at-{tenth}"] = summary(signup_small)
    results[f"signup-post-at-{args.users}"] = summary(signup_large)
    against_reference(results)
    ours, theirs = results["hub-users-api"], plain_results["hub-users-api"]
    plain_report = {
        "users": plain_users, "karvdash_users": users, "results": plain_results,
        "users_api_vs_plain": {"p50": round(ours["p50_ms"] / theirs["p50_ms"], 2),
                               "p99": round(ours["p99_ms"] / theirs["p99_ms"], 2)},
    }
    signup_ratio = round(results[f"signup-post-at-{args.users}"]["p50_ms"] / results[f"signup-post-at-{tenth}"]["p50_ms"], 2)
    machine = f"python {platform.python_version()}, {os.cpu_count()} cores, {platform.machine()}"
    if args.json:
        print(json.dumps({"users": args.users, "accounts": total, "fill_seconds": round(filled, 1), "machine": machine,
                          "signup_p50_at_n_vs_n_tenth": signup_ratio, "results": results, "plain": plain_report},
                         indent=2))
        return
    print(f"hub scale: {total} accounts (filled in {filled:.1f} s), {args.seconds:g} s per read target, one client; {machine}")
    print(f"{'target':<26}{'requests':>10}{'p50 ms':>10}{'p99 ms':>10}{'p50 x ref':>11}{'p99 x ref':>11}")
    print_rows(results)
    print(f"sign-up p50 with {args.users} accounts / with {tenth}: {signup_ratio}")
    print(f"\nplain JupyterHub with {plain_users} users (karvdash-hub's hub: {users}), the same turns:")
    print_rows(plain_results)
    vs = plain_report["users_api_vs_plain"]
    print(f"users API, karvdash-hub / plain JupyterHub: p50 {vs['p50']}, p99 {vs['p99']}")


if __name__ == "__main__":
    main()
