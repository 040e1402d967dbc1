"""Steer the rollouts of a running ``modelyard serve`` over its management API.

::

    from modelyard.delivery.client import RolloutClient
    client = RolloutClient("http://127.0.0.1:8000", token="...")
    client.deploy(candidate=2, strategy="canary", steps=[5, 25, 50, 100], interval_s=30)
    client.status()["state"]      # 'progressing', 'paused', 'promoted', 'rolled_back', ...
    client.abort()

Errors the server answers come back as the same :class:`~modelyard.errors.ModelyardError`
subclass (by HTTP status), with its message and hint; an unreachable server raises
:class:`~modelyard.errors.ServiceUnavailable`.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from modelyard.errors import (
    ConflictError,
    InvalidInputError,
    ModelyardError,
    NotFoundError,
    ServiceUnavailable,
    TimeoutExceeded,
    Unauthorized,
)

__all__ = ["RolloutClient", "parse_duration_s"]

_BY_STATUS: dict[int, type[ModelyardError]] = {
    400: InvalidInputError,
    401: Unauthorized,
    404: NotFoundError,
    409: ConflictError,
    503: ServiceUnavailable,
    504: TimeoutExceeded,
}

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "": 1.0}


def parse_duration_s(text: str) -> float:
    """``"30s"``, ``"2m"``, ``"500ms"``, ``"1h"`` or ``"45"`` (seconds) -> seconds.

    Raises:
        InvalidInputError: not a positive duration.
    """
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(ms|s|m|h|)\s*", text)
    if match is None or float(match.group(1)) <= 0:
        raise InvalidInputError(
            f"interval {text!r} is not a positive duration",
            hint="e.g. --interval 30s, 2m or 500ms",
            field="interval",
        )
    return float(match.group(1)) * _UNITS[match.group(2)]


class RolloutClient:
    """The management API of one server.

    Args:
        url: the server's base URL (``http://HOST:PORT``).
        token: the admin token (``serving.admin_token``) when the server requires one.
        timeout_s: per call; a deploy waits for the load test, so keep it above
            ``delivery.load_test_s``.
        model: the model meant; the server refuses a steering call for another model (a wrong
            ``url``), and :meth:`status` of another model raises ``NotFoundError``.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        timeout_s: float = 120.0,
        model: str | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s
        self.model = model

    def status(self) -> dict[str, Any]:
        """The model's active (else latest) rollout with its events."""
        doc = self._call("GET", "/v1/admin/rollout")
        if self.model is not None and doc.get("model") != self.model:
            raise NotFoundError(
                f"the server at {self.url} serves {doc.get('model')!r}, not {self.model!r}",
                hint="pass the --url of the server that serves it",
            )
        return doc

    def deploy(
        self,
        *,
        candidate: int,
        strategy: str | None = None,
        steps: list[float] | None = None,
        interval_s: float | None = None,
        manual: bool | None = None,
    ) -> dict[str, Any]:
        """Start a rollout of version ``candidate``; returns it after its load test."""
        body = {
            "candidate": candidate,
            "strategy": strategy,
            "steps": steps,
            "interval_s": interval_s,
            "manual": manual,
        }
        return self._call(
            "POST", "/v1/admin/rollout", {k: v for k, v in body.items() if v is not None}
        )

    def promote(self) -> dict[str, Any]:
        """Approve the current step (or promote a paused rollout's next step)."""
        return self._call("POST", "/v1/admin/rollout/promote", {})

    def abort(self) -> dict[str, Any]:
        """Roll back: stable gets all traffic, the candidate stops. Idempotent."""
        return self._call("POST", "/v1/admin/rollout/abort", {})

    def pause(self) -> dict[str, Any]:
        """Stop advancing (the traffic split stays as it is)."""
        return self._call("POST", "/v1/admin/rollout/pause", {})

    def resume(self) -> dict[str, Any]:
        """Go on after a pause."""
        return self._call("POST", "/v1/admin/rollout/resume", {})

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        import urllib.error
        import urllib.request

        if body is not None and self.model is not None:
            body = {"model": self.model, **body}
        headers = {"content-type": "application/json"}
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        data = orjson.dumps(body) if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as resp:
                doc: dict[str, Any] = orjson.loads(resp.read())
                return doc
        except urllib.error.HTTPError as exc:
            raise _error(exc.code, exc.read()) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ServiceUnavailable(
                f"no modelyard server answered at {self.url}: {reason}",
                hint="start it with `modelyard serve NAME@production`, or pass --url",
                url=self.url,
            ) from exc


def _error(status: int, raw: bytes) -> ModelyardError:
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        doc = {"message": raw.decode("utf-8", "replace")[:500]}
    cls = _BY_STATUS.get(status, ModelyardError)
    if status == 422:
        from modelyard.errors import ValidationFailed

        cls = ValidationFailed
    return cls(str(doc.get("message", "")), hint=doc.get("hint"), status=status)
