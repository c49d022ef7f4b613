"""Latency and throughput of the admission webhook, against a reference.

    .venv/bin/python bench/webhook_latency.py [--seconds 10] [--rounds 5] [--concurrency 8] [--json]
    .venv/bin/python bench/webhook_latency.py --rate 200 [--seconds 10] [--connections 32] [--json]

Starts the webhook's HTTPS server (the same Tornado app, TLS context and
handlers as ``karvdash-webhook``) in a child process on 127.0.0.1 and sends
AdmissionReviews from this process over keep-alive connections, as the
kube-apiserver does. Every run measures, one after another:

- ``reference``: an allow-all decision behind the same handler (parses the
  review, answers allowed): the cost of the server stack itself;
- ``validate-pod``: a pod without host paths (no cluster lookup needed);
- ``validate-deployment``: a Deployment mounting the owner's private folder
  (owner lookup);
- ``mutate-pod``: the JSONPatch of file domains, API settings and a dataset.

Two modes:

- closed loop (default): ``--concurrency`` clients each send the next
  request when the last one is answered; prints requests per second and
  p50/p99, and req/s against the reference (the throughput ratio);
- open loop (``--rate R``): R requests per second are sent on a fixed
  schedule whether or not earlier ones were answered, as pods arrive at the
  API server; a request's latency counts from the time it was due to be
  sent, so a slow answer that holds up the next sends is counted in theirs
  too (no coordinated omission). Prints p50/p99 and both against the
  reference, and the median over the rounds of each round's p99 (on a
  shared machine a stall of a few hundred ms lands in one round and sets
  the p99 of the whole run).

Both modes also print the server process's CPU time per request (from
/proc), which the load of a shared machine changes far less than latencies.

The cluster lookups are answered from a table in the server process (in
production they come from the webhook's watches of namespaces and datasets,
also without a request per admission). Targets take turns in short rounds,
so a change in the machine's load during the run affects them alike.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FIXTURES = ROOT / "tests" / "unit" / "admission"
# the goals the webhook is measured against
GOAL_RPS_RATIO = 0.8  # closed loop: mutate's req/s at least this much of the reference's
GOAL_P99_RATIO = 1.2  # open loop: mutate's p99 at most this much of the reference's


# --- the server side (child process) -------------------------------------------------


class TableLookup:
    async def owner(self, namespace):
        return "alice"

    async def datasets(self, namespace):
        return ("mnist",)


def serve(port: int, cert: str, key: str) -> None:
    from tornado import httpserver
    from traitlets.config import Config

    from karvdash_hub.admission.rules import review_response
    from karvdash_hub.core.settings import load_settings
    from karvdash_hub.webhook.reviews import Reviewer
    from karvdash_hub.webhook.server import (
        AdmissionHandler,
        ServingCertificate,
        make_app,
    )

    settings = load_settings(config=Config({"KarvdashConfig": {
        "filesURL": "file:///data/karvdash", "allowedHostPathDirs": ["/opt/datasets"], "datasetsAvailable": True,
    }}), environ={})
    reviewer = Reviewer(settings, TableLookup())

    async def allow_all(request):
        return review_response(request.uid)

    async def main():
        app = make_app(reviewer.mutate, reviewer.validate)
        app.add_handlers(r".*", [(r"/reference", AdmissionHandler, {"decide": allow_all})])
        server = httpserver.HTTPServer(app, ssl_options=ServingCertificate(cert, key).context)
        server.listen(port, address="127.0.0.1")
        print("ready", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


# --- the client side ------------------------------------------------------------------


def review(kind: str) -> dict:
    return json.loads((FIXTURES / f"{kind}-create.json").read_text())


def targets() -> dict[str, tuple[str, bytes]]:
    deployment = review("deployment")
    deployment["request"]["object"]["spec"]["template"]["spec"]["volumes"] = [
        {"name": "mine", "hostPath": {"path": "/data/karvdash/private/alice"}}]
    pod = json.dumps(review("pod")).encode()
    return {
        "reference": ("/reference", pod),
        "validate-pod": ("/validate", pod),
        "validate-deployment": ("/validate", json.dumps(deployment).encode()),
        "mutate-pod": ("/mutate", pod),
    }


class Answers:
    """Sends one target's review and checks each answer."""

    def __init__(self, session, url: str, body: bytes):
        self.session, self.url, self.body = session, url, body
        self.errors = 0

    async def one(self) -> bool:
        try:
            async with self.session.post(self.url, data=self.body) as response:
                answer = await response.read()
                ok = response.status == 200 and json.loads(answer)["response"]["allowed"] is True
        except (asyncio.TimeoutError, OSError, ValueError, KeyError) as e:
            print(f"bench: {self.url}: {e!r}", file=sys.stderr)
            ok = False
        if not ok:
            self.errors += 1
        return ok

    async def warm_up(self, connections: int) -> None:
        # every connection opened (TLS handshakes) before the measurement
        for _ in range(3):
            await asyncio.gather(*(self.one() for _ in range(connections)))


def client_session(connections: int, context: ssl.SSLContext):
    import aiohttp

    connector = aiohttp.TCPConnector(limit=connections, ssl=context)
    return aiohttp.ClientSession(connector=connector, headers={"Content-Type": "application/json"})


async def closed_loop(url: str, body: bytes, seconds: float, concurrency: int, context: ssl.SSLContext,
                      server_pid: int) -> tuple[list[float], int, float]:
    """(latencies, errors, server CPU seconds) of ``concurrency`` clients for ``seconds``."""
    latencies: list[float] = []
    async with client_session(concurrency, context) as session:
        answers = Answers(session, url, body)
        await answers.warm_up(concurrency)
        cpu_before = cpu_seconds(server_pid)
        deadline = time.perf_counter() + seconds

        async def worker():
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                if await answers.one():
                    latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        cpu = cpu_seconds(server_pid) - cpu_before
    return latencies, answers.errors, cpu


async def open_loop(url: str, body: bytes, seconds: float, rate: float, connections: int, context: ssl.SSLContext,
                    server_pid: int) -> tuple[list[float], int, float]:
    """One request due every 1/rate s, each timed from when it was due:
    (latencies, errors, server CPU seconds)."""
    latencies: list[float] = []
    async with client_session(connections, context) as session:
        answers = Answers(session, url, body)
        await answers.warm_up(connections)
        cpu_before = cpu_seconds(server_pid)

        async def one(due: float):
            if await answers.one():
                latencies.append(time.perf_counter() - due)

        sent = []
        start = time.perf_counter() + 0.01
        for i in range(max(1, round(rate * seconds))):
            due = start + i / rate
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            # when the client fell behind it sends at once, still timed from when it was due
            sent.append(asyncio.ensure_future(one(due)))
        await asyncio.gather(*sent)
        cpu = cpu_seconds(server_pid) - cpu_before
    return latencies, answers.errors, cpu


def percentile(values: list[float], q: int) -> float:
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    from tests.kube.pki import CertificateAuthority

    ca = CertificateAuthority("webhook benchmark CA")
    cert, key = ca.issue("webhook", ip_addresses=("127.0.0.1",), server=True).write(directory, "webhook")
    ca_file = directory / "ca.crt"
    ca_file.write_bytes(ca.cert_pem)
    return cert, key, ca_file


def measure(args) -> dict[str, dict]:
    """Start the server, run every target in rounds, return the figures."""
    with tempfile.TemporaryDirectory() as tmp:
        cert, key, ca_file = make_certificates(Path(tmp))
        from tests.kube.cluster import free_port

        port = free_port()
        child = subprocess.Popen([sys.executable, __file__, "--serve", str(port), str(cert), str(key)],
                                 stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        try:
            if child.stdout.readline().strip() != "ready":
                sys.exit("bench: the webhook server did not start")
            context = ssl.create_default_context(cafile=str(ca_file))
            samples: dict[str, list[float]] = {name: [] for name in targets()}
            round_p99: dict[str, list[float]] = {name: [] for name in samples}
            errors = dict.fromkeys(samples, 0)
            # the server's CPU time per target: what each costs, whatever the load of the machine
            server_cpu = dict.fromkeys(samples, 0.0)
            answered = dict.fromkeys(samples, 0)
            turn = args.seconds / args.rounds
            for _ in range(args.rounds):
                for name, (path, body) in targets().items():
                    url = f"https://127.0.0.1:{port}{path}"
                    if args.rate:
                        run = open_loop(url, body, turn, args.rate, args.connections, context, child.pid)
                    else:
                        run = closed_loop(url, body, turn, args.concurrency, context, child.pid)
                    latencies, failed, cpu = asyncio.run(run)
                    server_cpu[name] += cpu
                    answered[name] += len(latencies) + failed
                    samples[name] += latencies
                    round_p99[name].append(percentile(latencies, 99))
                    errors[name] += failed
        finally:
            child.terminate()
            child.wait(timeout=10)

    results = {}
    for name, latencies in samples.items():
        results[name] = {
            "requests": len(latencies),
            "errors": errors[name],
            "rps": round(len(latencies) / args.seconds, 1),
            "p50_ms": round(1000 * percentile(latencies, 50), 3),
            "p99_ms": round(1000 * percentile(latencies, 99), 3),
            # the machine's stalls land in one round or another: the median
            # round shows the tail without them (the goal uses p99_ms)
            "p99_median_round_ms": round(1000 * statistics.median(round_p99[name]), 3),
            "server_cpu_us_per_request": round(1e6 * server_cpu[name] / max(answered[name], 1), 1),
        }
    reference = results["reference"]
    for result in results.values():
        result["p50_vs_reference"] = round(result["p50_ms"] / reference["p50_ms"], 2)
        result["server_cpu_vs_reference"] = round(
            result["server_cpu_us_per_request"] / max(reference["server_cpu_us_per_request"], 0.1), 2)
        if args.rate:
            result["p99_vs_reference"] = round(result["p99_ms"] / reference["p99_ms"], 2)
            result["p99_median_round_vs_reference"] = round(
                result["p99_median_round_ms"] / reference["p99_median_round_ms"], 2)
        else:
            result["rps_vs_reference"] = round(result["rps"] / reference["rps"], 2)
    return results


def goal(results: dict, rate: float) -> dict:
    mutate = results["mutate-pod"]
    if rate:
        return {"what": f"mutate p99 <= {GOAL_P99_RATIO}x the reference's at {rate:g} req/s",
                "ratio": mutate["p99_vs_reference"], "met": mutate["p99_vs_reference"] <= GOAL_P99_RATIO}
    return {"what": f"mutate req/s >= {GOAL_RPS_RATIO}x the reference's",
            "ratio": mutate["rps_vs_reference"], "met": mutate["rps_vs_reference"] >= GOAL_RPS_RATIO}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measuring time per target (default 5)")
    parser.add_argument("--rounds", type=int, default=5, help="turns each target takes (default 5)")
    parser.add_argument("--concurrency", type=int, default=8, help="closed loop: requests in flight (default 8)")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="open loop: requests per second sent on a fixed schedule (default: closed loop)")
    parser.add_argument("--connections", type=int, default=32,
                        help="open loop: keep-alive connections to the server (default 32)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--serve", nargs=3, metavar=("PORT", "CERT", "KEY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(int(args.serve[0]), args.serve[1], args.serve[2])
        return
    if args.rate < 0 or args.seconds <= 0 or args.rounds < 1 or args.concurrency < 1 or args.connections < 1:
        parser.error("--rate must be >= 0; --seconds, --rounds, --concurrency and --connections positive")

    load_before = Path("/proc/loadavg").read_text().split()[:3]
    results = measure(args)
    load_after = Path("/proc/loadavg").read_text().split()[:3]
    report = {
        "mode": "open" if args.rate else "closed",
        "seconds": args.seconds,
        "rounds": args.rounds,
        **({"rate": args.rate, "connections": args.connections} if args.rate else {"concurrency": args.concurrency}),
        "loadavg": {"before": load_before, "after": load_after},
        "results": results,
        "goal": goal(results, args.rate),
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    if args.rate:
        print(f"webhook latency, open loop: {args.rate:g} req/s for {args.seconds:g} s per target "
              f"over {args.connections} connections, HTTPS keep-alive on 127.0.0.1")
        ratio_columns = (("p50 x ref", "p50_vs_reference"), ("p99 x ref", "p99_vs_reference"),
                         ("round p99 ms", "p99_median_round_ms"), ("x ref", "p99_median_round_vs_reference"))
    else:
        print(f"webhook latency, closed loop: {args.seconds:g} s per target, {args.concurrency} in flight, "
              "HTTPS keep-alive on 127.0.0.1")
        ratio_columns = (("p50 x ref", "p50_vs_reference"), ("req/s x ref", "rps_vs_reference"))
    ratio_columns += (("cpu us/req", "server_cpu_us_per_request"), ("x ref", "server_cpu_vs_reference"))
    print(f"{'target':<22}{'requests':>10}{'errors':>8}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}"
          + "".join(f"{title:>13}" for title, _ in ratio_columns))
    for name, r in results.items():
        print(f"{name:<22}{r['requests']:>10}{r['errors']:>8}{r['rps']:>10}{r['p50_ms']:>10}{r['p99_ms']:>10}"
              + "".join(f"{r[key]:>13}" for _, key in ratio_columns))
    print(f"goal: {report['goal']['what']}: {report['goal']['ratio']}x, "
          f"{'met' if report['goal']['met'] else 'NOT met'}")
    print(f"load average: {' '.join(load_before)} before, {' '.join(load_after)} after")


if __name__ == "__main__":
    main()
