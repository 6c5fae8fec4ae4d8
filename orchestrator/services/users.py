"""Web users: roles, password hashing, API tokens.

Decisions:
- Passwords are hashed with scrypt from the standard library (n=2**14, r=8, p=1, a random
  16-byte salt), stored as `scrypt$n$r$p$salt$hash` (base64), so parameters can change later
  without invalidating stored hashes.
- API tokens are 32 random bytes (URL-safe base64) shown once when issued; only their SHA-256
  digest is stored (a random token needs no slow hash). A user may hold several; deleting the
  user revokes them.
- `orchestrator standalone` (local use) creates user `admin` with a random password when
  there are no users, and keeps that password in `<home>/standalone-admin-password` (mode
  600) so a later start can print it again, as Airflow's standalone mode does.
- Roles are ordered: `viewer` reads everything; `operator` also triggers, clears, marks and
  pauses; `admin` also manages users, pools, connections and variables.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path

from sqlalchemy.orm import Session

from orchestrator.errors import AccountError, UserNotFound
from orchestrator.store import users as user_store
from orchestrator.store.tables import UserRow

_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
_USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{1,250}$")


class Role(StrEnum):
    """What a user may do; each role may do everything the ones before it may."""

    VIEWER = "viewer"  # read DAGs, runs, task instances, logs, pools, import errors
    OPERATOR = "operator"  # also trigger, clear, mark and pause
    ADMIN = "admin"  # also manage users, pools, connections and variables

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


def parse_role(text: str) -> Role:
    try:
        return Role(text)
    except ValueError:
        raise AccountError(
            f"unknown role {text!r}; roles are {', '.join(r.value for r in Role)}"
        ) from None


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    encoded = [base64.b64encode(value).decode() for value in (salt, digest)]
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${encoded[0]}${encoded[1]}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
        )
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_user(
    session: Session, username: str, password: str, role: Role, now: datetime
) -> UserRow:
    if not _USERNAME.match(username):
        raise AccountError(
            f"username {username!r} may hold only letters, digits and _ . @ - (1-250 of them)"
        )
    if not password:
        raise AccountError("the password must not be empty")
    if user_store.get_user(session, username) is not None:
        raise AccountError(f"user {username!r} exists already; delete it first to replace it")
    return user_store.add_user(session, username, hash_password(password), role.value, now)


def get_user(session: Session, username: str) -> UserRow:
    row = user_store.get_user(session, username)
    if row is None:
        raise UserNotFound(f"no user {username!r}; see `orchestrator users list`")
    return row


def delete_user(session: Session, username: str) -> None:
    user_store.delete_user(session, get_user(session, username))


def issue_token(session: Session, username: str, now: datetime) -> str:
    """A new API token for the user; shown once, only its digest is kept."""
    user = get_user(session, username)
    token = secrets.token_urlsafe(32)
    user_store.add_token(session, user, token_digest(token), now)
    return token


def authenticate(session: Session, username: str, password: str) -> UserRow | None:
    """The user if the password is theirs, else None."""
    row = user_store.get_user(session, username)
    if row is None:
        hash_password(password)  # take as long as for a known user
        return None
    return row if verify_password(password, row.password_hash) else None


def user_for_token(session: Session, token: str) -> UserRow | None:
    return user_store.user_by_token(session, token_digest(token))


STANDALONE_ADMIN = "admin"
STANDALONE_PASSWORD_FILE = "standalone-admin-password"


@dataclass(frozen=True)
class StandaloneAdmin:
    """Who signs in to a standalone installation, and with what."""

    username: str
    password: str
    created: bool  # made by this start (else made by an earlier one)
    password_file: Path


def standalone_admin(session: Session, home: Path, now: datetime) -> StandaloneAdmin | None:
    """With no users at all: create `admin` (role admin) with a random password, kept in
    `<home>/standalone-admin-password`. With users: the admin an earlier start made, if its
    password is still the one kept; else None (the users were made some other way)."""
    path = home / STANDALONE_PASSWORD_FILE
    if not user_store.list_users(session):
        password = secrets.token_urlsafe(12)
        create_user(session, STANDALONE_ADMIN, password, Role.ADMIN, now)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(password + "\n")
        return StandaloneAdmin(STANDALONE_ADMIN, password, True, path)
    try:
        kept = path.read_text().strip()
    except OSError:
        return None
    if kept and authenticate(session, STANDALONE_ADMIN, kept) is not None:
        return StandaloneAdmin(STANDALONE_ADMIN, kept, False, path)
    return None
