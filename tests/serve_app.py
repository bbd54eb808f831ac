"""``python -m tests.serve_app --port N``: the storefront as ``create_app()`` builds it
from the environment, served by Werkzeug on loopback. One more app process, for the
tests that need several (e.g. limits counted across processes in Redis)."""

from __future__ import annotations

import argparse

from werkzeug.serving import make_server

from storefront import create_app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    server = make_server("127.0.0.1", args.port, create_app(), threaded=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
