"""The REST API, version 1 (mounted under `/api/v1`)."""

from fastapi import APIRouter

from orchestrator.web.api import admin, dags, runs, secrets, tasks

router = APIRouter()
for module in (dags, runs, tasks, admin, secrets):
    router.include_router(module.router)

__all__ = ["router"]
