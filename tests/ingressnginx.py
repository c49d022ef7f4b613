"""What ingress-nginx makes of an Ingress with ``auth-url`` and
``auth-signin``, as a plain nginx configuration (Debian's nginx, which has
the auth_request module ingress-nginx's external auth is built on).

It follows ingress-nginx's nginx.tmpl for those two annotations: every
request of a path is first sent, without its body, to an internal location
that proxies to ``auth-url`` with the request's headers (its cookies
included) and ``X-Original-URL``; 2xx lets it through to the backend, 401
becomes a 302 to ``auth-signin`` with ``rd=<the original URL>`` (the
``auth-signin-redirect-param`` default), and anything else (403) is
answered as it is. Backends are reached through their Service's cluster DNS
name (ingress-nginx picks the endpoints itself; the difference does not
matter here), or where ``upstream`` says (a benchmark on one machine
sends each Service to a loopback port). ingress-nginx escapes the request
URI in ``rd`` with a Lua helper that Debian's nginx lacks; the tests'
paths need no escaping.

As ingress-nginx does, the Ingresses of one host make one server, a Prefix
path matches whole path elements, and the annotations of body size,
buffering and timeouts apply to their Ingress's paths, with ingress-nginx's
defaults elsewhere (a 1 MiB body, request bodies buffered).
"""

from __future__ import annotations

AUTH_URL = "nginx.ingress.kubernetes.io/auth-url"
AUTH_SIGNIN = "nginx.ingress.kubernetes.io/auth-signin"
# annotations of a location and the nginx directive each one sets
LOCATION_ANNOTATIONS = {
    "nginx.ingress.kubernetes.io/proxy-body-size": "client_max_body_size",
    "nginx.ingress.kubernetes.io/proxy-read-timeout": "proxy_read_timeout",
    "nginx.ingress.kubernetes.io/proxy-send-timeout": "proxy_send_timeout",
    "nginx.ingress.kubernetes.io/proxy-buffering": "proxy_buffering",
    "nginx.ingress.kubernetes.io/proxy-request-buffering": "proxy_request_buffering",
    "nginx.ingress.kubernetes.io/proxy-buffer-size": "proxy_buffer_size",
    "nginx.ingress.kubernetes.io/client-body-buffer-size": "client_body_buffer_size",
}
# ingress-nginx's defaults for what those annotations leave unsaid (its ConfigMap's)
LOCATION_DEFAULTS = {"client_max_body_size": "1m", "proxy_read_timeout": "60", "proxy_send_timeout": "60",
                     "proxy_buffering": "off", "proxy_request_buffering": "on", "proxy_buffer_size": "4k",
                     "client_body_buffer_size": "8k"}
PROXY_BUFFERS_NUMBER = 4
LISTEN_PORT = 8080


def cluster_dns(cluster_domain: str = "cluster.local"):
    """Backends by their Services' cluster DNS names, as a pod reaches them."""
    return lambda namespace, name, port: f"{name}.{namespace}.svc.{cluster_domain}:{port}"


def nginx_conf(ingresses: list[dict], cluster_domain: str = "cluster.local",
               services: list[dict] = (), *, upstream=None, listen: str = str(LISTEN_PORT),
               state: str = "/tmp", access_log: str = "/dev/stdout") -> str:
    """The nginx.conf serving ``ingresses`` (Ingress objects as the API server
    has them); ``services``: the Services their backends name a port of by
    name. As ingress-nginx does, the rules of every Ingress for one host
    make one server, with the longest path first, and a path two Ingresses
    name goes to the first. ``upstream(namespace, service, port)`` is the
    address a backend is reached at (``cluster_dns`` by default); nginx
    listens on ``listen``, keeps its pid and buffered bodies in ``state`` and
    logs requests to ``access_log`` (``off``: not at all)."""
    upstream = upstream or cluster_dns(cluster_domain)
    named_ports = {(service["metadata"]["namespace"], service["metadata"]["name"], port["name"]): port["port"]
                   for service in services for port in service["spec"]["ports"] if port.get("name")}
    hosts: dict[str, list[tuple[dict, dict]]] = {}
    for ingress in ingresses:
        for rule in ingress["spec"].get("rules") or []:
            hosts.setdefault(rule["host"], []).extend((ingress, path) for path in rule["http"]["paths"])
    servers = []
    for n, (host, paths) in enumerate(hosts.items()):
        locations, seen = [], set()
        for m, (ingress, path) in enumerate(sorted(paths, key=lambda item: -len(item[1].get("path") or "/"))):
            where = path.get("path") or "/"
            if path.get("pathType") == "Exact":
                places = [f"= {where}"]
            elif where.endswith("/"):
                places = [where]
            else:  # Prefix matches whole path elements: /a is /a and /a/..., not /ab
                places = [f"= {where}", f"{where}/"]
            places = [place for place in places if place not in seen]
            if not places:
                continue
            seen.update(places)
            namespace = ingress["metadata"]["namespace"]
            annotations = ingress["metadata"].get("annotations") or {}
            auth_url, signin = annotations.get(AUTH_URL), annotations.get(AUTH_SIGNIN)
            backend = path["backend"]["service"]
            port = backend["port"].get("number") or named_ports[namespace, backend["name"], backend["port"]["name"]]
            address = f"http://{upstream(namespace, backend['name'], port)}"
            auth = f"/_external-auth-{n}-{m}"
            lines = []
            if auth_url:
                locations.append(f"""
        location = {auth} {{
            internal;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Forwarded-Proto "";
            proxy_set_header X-Original-URL $scheme://$http_host$request_uri;
            proxy_set_header X-Original-Method $request_method;
            proxy_set_header X-Sent-From "nginx-ingress-controller";
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Auth-Request-Redirect $request_uri;
            proxy_http_version 1.1;
            proxy_pass_request_headers on;
            proxy_pass {auth_url};
        }}""")
                lines.append(f"auth_request {auth};")
                if signin:
                    separator = "&" if "?" in signin else "?"
                    locations.append(f"""
        location @signin-{n}-{m} {{
            internal;
            return 302 {signin}{separator}rd=$scheme://$http_host$request_uri;
        }}""")
                    lines.append(f"error_page 401 = @signin-{n}-{m};")
            directives = dict(LOCATION_DEFAULTS)
            for annotation, directive in LOCATION_ANNOTATIONS.items():
                if annotation in annotations:
                    directives[directive] = annotations[annotation]
            lines += [f"{directive} {value};" for directive, value in directives.items()]
            # ingress-nginx's buffers are proxy-buffers-number (4) of proxy-buffer-size
            lines.append(f"proxy_buffers {PROXY_BUFFERS_NUMBER} {directives['proxy_buffer_size']};")
            lines += ["proxy_http_version 1.1;", "proxy_set_header Host $http_host;",
                      "proxy_set_header X-Forwarded-For $remote_addr;", f"proxy_pass {address};"]
            body = "\n            ".join(lines)
            locations += [f"""
        location {place} {{
            {body}
        }}""" for place in places]
        servers.append(f"""
    server {{
        listen {listen};
        server_name {host};
{''.join(locations)}
    }}""")
    # ingress-nginx's worker-processes (one per core) and max-worker-connections
    return f"""worker_processes auto;
pid {state}/nginx.pid;
error_log /dev/stderr info;
events {{ worker_connections 16384; }}
http {{
    access_log {access_log};
    client_body_temp_path {state}/client_body;
    proxy_temp_path {state}/proxy;
    # (nginx makes these at start even unused; the built-in ones are
    # under /var/lib/nginx, which only an installed nginx has)
    fastcgi_temp_path {state}/fastcgi;
    uwsgi_temp_path {state}/uwsgi;
    scgi_temp_path {state}/scgi;
    # a Host no Ingress names
    server {{
        listen {listen} default_server;
        return 404;
    }}
{''.join(servers)}
}}
"""
