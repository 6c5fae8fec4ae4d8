"""Scheduled runs, catch-up, run limits and pausing (fake runtime) on PostgreSQL: the SQLite
tier's tests collected again, in a module of their own (their `make` fixture is their own)."""

from __future__ import annotations

import pytest

from tests.unit.services.test_scheduled_runs import *  # noqa: F403 - re-collected here

pytestmark = [pytest.mark.postgres, pytest.mark.docker]
