"""An in-memory :class:`~modelyard.monitoring.Deployer` for tests of the retraining loop.

:class:`RecordingDeployer` answers each rollout as a server would (``id``, ``state``,
``strategy``, ``candidate_version``) and keeps the calls, or raises the error it is given (a
server that refuses, or is not there), so a test of a monitoring policy can check what the loop
sent out without starting a server::

    deployer = RecordingDeployer()
    monitor = Monitor.from_workspace(ws, deployer=deployer, deploy_strategy="canary")
    trigger = monitor.act(result)
    assert deployer.calls == [("churn", trigger.new_version, "canary")]
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["RecordingDeployer"]


@dataclass
class RecordingDeployer:
    """Records each ``(model, candidate, strategy)`` and answers a started rollout.

    Attributes:
        calls: what was asked, in order.
        state: the state of the rollouts it answers (``progressing`` by default).
        error: raised instead of answering, when set (e.g. ``ServiceUnavailable(...)``).
    """

    calls: list[tuple[str, int, str]] = field(default_factory=list)
    state: str = "progressing"
    error: Exception | None = None

    def __call__(self, model: str, candidate: int, strategy: str) -> Mapping[str, Any]:
        self.calls.append((model, candidate, strategy))
        if self.error is not None:
            raise self.error
        return {
            "id": uuid.uuid4().hex[:16],
            "model": model,
            "candidate_version": candidate,
            "strategy": strategy,
            "state": self.state,
        }
