"""Container runtimes: the interface, the Docker adapter and an in-memory fake.

Adapters are imported from their modules (`orchestrator.runtime.docker`,
`orchestrator.runtime.fake`) so that using the fake never imports the docker SDK.
"""

from orchestrator.runtime.base import ContainerRuntime, ExitCallback, LogSink, Subscription

__all__ = ["ContainerRuntime", "ExitCallback", "LogSink", "Subscription"]
