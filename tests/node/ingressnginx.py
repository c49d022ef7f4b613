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
matter here). ingress-nginx escapes the request URI in ``rd`` with a Lua
helper that Debian's nginx lacks; the tests' paths need no escaping.
"""

from __future__ import annotations

AUTH_URL = "nginx.ingress.kubernetes.io/auth-url"
AUTH_SIGNIN = "nginx.ingress.kubernetes.io/auth-signin"
LISTEN_PORT = 8080


def nginx_conf(ingresses: list[dict], cluster_domain: str = "cluster.local") -> str:
    """The nginx.conf serving ``ingresses`` (Ingress objects as the API server has them)."""
    servers = []
    for ingress in ingresses:
        namespace = ingress["metadata"]["namespace"]
        annotations = ingress["metadata"].get("annotations") or {}
        auth_url, signin = annotations.get(AUTH_URL), annotations.get(AUTH_SIGNIN)
        for n, rule in enumerate(ingress["spec"].get("rules") or []):
            locations = []
            for m, path in enumerate(rule["http"]["paths"]):
                backend = path["backend"]["service"]
                port = backend["port"].get("number") or backend["port"]["name"]
                upstream = f"http://{backend['name']}.{namespace}.svc.{cluster_domain}:{port}"
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
                match = "" if path.get("pathType") in (None, "Prefix", "ImplementationSpecific") else "= "
                body = "\n            ".join(lines + ["proxy_set_header Host $http_host;", f"proxy_pass {upstream};"])
                locations.append(f"""
        location {match}{path.get('path') or '/'} {{
            {body}
        }}""")
            servers.append(f"""
    server {{
        listen {LISTEN_PORT};
        server_name {rule['host']};
{''.join(locations)}
    }}""")
    return f"""worker_processes 1;
pid /tmp/nginx.pid;
error_log /dev/stderr info;
events {{ worker_connections 64; }}
http {{
    access_log /dev/stdout;
    client_body_temp_path /tmp/client_body;
    proxy_temp_path /tmp/proxy;
    # a Host no Ingress names
    server {{
        listen {LISTEN_PORT} default_server;
        return 404;
    }}
{''.join(servers)}
}}
"""
