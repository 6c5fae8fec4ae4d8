"""The key signing session cookies: `ORCH_WEB_SECRET_KEY`, or one kept in ORCH_HOME."""

from __future__ import annotations

import os
import secrets

from orchestrator.settings import Settings

SECRET_KEY_FILE = "web-secret-key"


def session_secret_key(settings: Settings) -> str:
    """The configured key, else the one in `<home>/web-secret-key` (made on first use,
    readable by its owner only), so sessions survive restarts."""
    if settings.web_secret_key is not None:
        return settings.web_secret_key.get_secret_value()
    path = settings.home / SECRET_KEY_FILE
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(key + "\n")
    return key
