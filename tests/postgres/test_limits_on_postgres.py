"""Slot limits and pools (fake runtime) on PostgreSQL: the SQLite tier's tests collected again.

A module of their own: their `make` fixture differs from the scheduler tests' one.
"""

from __future__ import annotations

import pytest

from tests.unit.services.test_scheduler_limits import *  # noqa: F403 - re-collected here

pytestmark = [pytest.mark.postgres, pytest.mark.docker]
