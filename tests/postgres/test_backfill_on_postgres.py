"""Backfill (fake runtime) on PostgreSQL: the SQLite tier's tests collected again."""

from __future__ import annotations

import pytest

from tests.unit.services.test_backfill import *  # noqa: F403 - re-collected here

pytestmark = [pytest.mark.postgres, pytest.mark.docker]
