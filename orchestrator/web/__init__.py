"""The web server: REST API (`/api/v1`), server-rendered pages, `/health` and `/metrics`.

It reads serialized DAG specs from the store and never imports DAG files; every change goes
through the same services as the CLI.
"""

from orchestrator.web.app import create_app

__all__ = ["create_app"]
