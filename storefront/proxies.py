"""Who the client is: the address the load balancer saw, never a header anyone can send.

With ``TRUSTED_PROXIES = 0`` (the default: the app faces the network itself) the
client is the peer of the TCP connection, and ``X-Forwarded-*`` headers are ignored.
With ``N`` proxies in front (a load balancer, maybe a CDN before it), Werkzeug's
``ProxyFix`` takes the client's address from the N-th ``X-Forwarded-For`` entry from
the right (each proxy appends the address it saw, so the ones to the left of that
are whatever the client chose to send) and the scheme from ``X-Forwarded-Proto`` the
same way. ``X-Forwarded-Host`` is not taken: absolute links come from
``PUBLIC_BASE_URL``, and a proxy that passes the client's own header through would
let it choose the host.
"""

from __future__ import annotations

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix


def init_app(app: Flask) -> None:
    trusted = app.config["TRUSTED_PROXIES"]
    if not 0 <= trusted <= 10:
        raise RuntimeError(f"TRUSTED_PROXIES must be the number of proxies in front of the app (0-10), got {trusted}")
    if trusted:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=trusted, x_proto=trusted, x_host=0, x_port=0, x_prefix=0)
