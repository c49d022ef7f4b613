"""Latency and throughput of the admission webhook, against a reference.

    .venv/bin/python bench/webhook_latency.py [--seconds 5] [--rounds 5] [--concurrency 8] [--json]

Starts the webhook's HTTPS server (the same Tornado app, TLS context and
handlers as ``karvdash-webhook``) in a child process on 127.0.0.1 and sends
AdmissionReviews from this process over keep-alive connections, as the
kube-apiserver does. Every run measures, one after another:

- ``reference``: an allow-all decision behind the same handler (parses the
  review, answers allowed): the cost of the server stack itself;
- ``validate-pod``: a pod without host paths (no cluster lookup needed);
- ``validate-deployment``: a Deployment mounting the owner's private folder
  (owner lookup, answered from the cache after the first request);
- ``mutate-pod``: the JSONPatch of file domains, API settings and a dataset.

The cluster lookups are answered from a table in the server process (the
owner lookup is cached in production too; a live API server's latency is not
the webhook's). Prints requests per second and p50/p99 per target, and the
overhead of each over the reference.
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


# --- the server side (child process) -------------------------------------------------


class TableLookup:
    async def owner(self, namespace):
        return "alice"

    async def datasets(self, namespace):
        return ["mnist"]


def serve(port: int, cert: str, key: str) -> None:
    from tornado import httpserver
    from traitlets.config import Config

    from karvdash_hub.admission.rules import review_response
    from karvdash_hub.core.settings import load_settings
    from karvdash_hub.webhook.reviews import Reviewer
    from karvdash_hub.webhook.server import AdmissionHandler, ServingCertificate, make_app

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


async def load(url: str, body: bytes, seconds: float, concurrency: int, context: ssl.SSLContext) -> list[float]:
    import aiohttp

    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=concurrency, ssl=context)
    async with aiohttp.ClientSession(connector=connector, headers={"Content-Type": "application/json"}) as session:
        async def one():
            async with session.post(url, data=body) as response:
                answer = await response.json()
                if response.status != 200 or not answer["response"]["allowed"]:
                    raise RuntimeError(f"{url}: {response.status} {answer}")

        for _ in range(concurrency * 5):  # warm-up: connections, caches
            await one()

        deadline = time.perf_counter() + seconds

        async def worker():
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                await one()
                latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    from tests.kube.pki import CertificateAuthority

    ca = CertificateAuthority("webhook benchmark CA")
    cert, key = ca.issue("webhook", ip_addresses=("127.0.0.1",), server=True).write(directory, "webhook")
    ca_file = directory / "ca.crt"
    ca_file.write_bytes(ca.cert_pem)
    return cert, key, ca_file


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measuring time per target (default 5)")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight (default 8)")
    parser.add_argument("--rounds", type=int, default=5, help="turns each target takes (default 5)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--serve", nargs=3, metavar=("PORT", "CERT", "KEY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(int(args.serve[0]), args.serve[1], args.serve[2])
        return

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
            # targets take turns in short rounds, so a change in the machine's
            # load during the run affects them alike
            samples: dict[str, list[float]] = {name: [] for name in targets()}
            for _ in range(args.rounds):
                for name, (path, body) in targets().items():
                    samples[name] += asyncio.run(load(f"https://127.0.0.1:{port}{path}", body,
                                                      args.seconds / args.rounds, args.concurrency, context))
            results = {}
            for name, latencies in samples.items():
                results[name] = {
                    "requests": len(latencies),
                    "rps": round(len(latencies) / args.seconds, 1),
                    "p50_ms": round(1000 * percentile(latencies, 50), 3),
                    "p99_ms": round(1000 * percentile(latencies, 99), 3),
                }
        finally:
            child.terminate()
            child.wait(timeout=10)

    reference = results["reference"]
    for name, result in results.items():
        result["p50_vs_reference"] = round(result["p50_ms"] / reference["p50_ms"], 2)
        result["rps_vs_reference"] = round(result["rps"] / reference["rps"], 2)
    if args.json:
        print(json.dumps({"seconds": args.seconds, "concurrency": args.concurrency, "results": results}, indent=2))
        return
    print(f"webhook latency, {args.seconds:g} s per target, {args.concurrency} in flight, HTTPS keep-alive on 127.0.0.1")
    print(f"{'target':<22}{'requests':>10}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'p50 x ref':>11}{'req/s x ref':>13}")
    for name, r in results.items():
        print(f"{name:<22}{r['requests']:>10}{r['rps']:>10}{r['p50_ms']:>10}{r['p99_ms']:>10}"
              f"{r['p50_vs_reference']:>11}{r['rps_vs_reference']:>13}")


if __name__ == "__main__":
    main()
