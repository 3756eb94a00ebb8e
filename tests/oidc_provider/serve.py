"""Run the test OpenID provider: migrate its SQLite database, make its signing key and client, serve on 127.0.0.1.

    OIDC_TEST_STATE=/tmp/x/state.json python -m tests.oidc_provider.serve

Prints `listening on http://127.0.0.1:PORT` once it accepts connections (port 0: the system picks one).
"""

from __future__ import annotations

import os
import sys

os.environ["DJANGO_SETTINGS_MODULE"] = "tests.oidc_provider.settings"


def main() -> None:
    import django
    from django.conf import settings
    from django.core.management import call_command
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler

    django.setup()
    from django.core.wsgi import get_wsgi_application
    from oidc_provider.models import Client, ResponseType, RSAKey

    from tests.oidc_provider import state

    call_command("migrate", verbosity=0)
    if not RSAKey.objects.exists():
        call_command("creatersakey")
    current = state.read()
    client, _ = Client.objects.get_or_create(
        client_id=current.get("client_id", "portal"),
        defaults={"name": "Hybrid AI portal", "client_type": "confidential", "jwt_alg": "RS256",
                  "require_consent": False, "reuse_consent": True},
    )  # fmt: skip
    client.client_secret = current.get("client_secret", "portal-secret")
    client.save()
    code, _ = ResponseType.objects.get_or_create(value="code", defaults={"description": "code"})
    client.response_types.add(code)

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            sys.stderr.write("provider: " + (format % args) + "\n")

    port = int(os.environ.get("OIDC_TEST_PORT", "0"))
    server = ThreadedWSGIServer(("127.0.0.1", port), QuietHandler)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    settings.SITE_URL = url  # the issuer: http://127.0.0.1:PORT/openid
    server.set_app(get_wsgi_application())
    print(f"listening on {url}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
