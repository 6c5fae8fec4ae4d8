"""Container runtimes: the interface, the Docker adapter and an in-memory fake."""

from orchestrator.runtime.base import ContainerRuntime, ExitCallback, LogSink, Subscription

__all__ = ["ContainerRuntime", "ExitCallback", "LogSink", "Subscription"]
