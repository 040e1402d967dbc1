"""The one exception tree of modelyard.

Every error a user can meet derives from :class:`ModelyardError`, carries the exit code the CLI
returns for it and the HTTP status a server answers with, and says what happened, the offending
value and what to do next::

    ModelyardError                     exit 1   HTTP 500
    ├── ConfigError                    exit 2   HTTP 500   bad setting or config file
    ├── InvalidInputError              exit 2   HTTP 400   a bad argument or value
    │   ├── InvalidNameError           exit 2   HTTP 400   a name that is illegal or escapes a root
    │   ├── ValidationFailed           exit 3   HTTP 422   data failed its contract
    │   └── PayloadTooLarge            exit 2   HTTP 413
    ├── NotFoundError                  exit 4   HTTP 404   unknown run/model/version/alias/artifact
    ├── ConflictError                  exit 5   HTTP 409   already exists, immutable
    ├── IntegrityError                 exit 6   HTTP 500   tampered or missing artifact bytes
    ├── SchemaOutdatedError            exit 7   HTTP 503   run `modelyard db upgrade`
    ├── MissingExtraError              exit 8   HTTP 500   an optional dependency is not installed
    ├── PipelineError                  exit 9   HTTP 500   a graph or a step failed
    │   └── GateFailed                 exit 10  HTTP 500   a candidate did not earn registration
    ├── UnsafeArtifactError            exit 11  HTTP 500   pickle without trust
    ├── ServiceUnavailable             exit 12  HTTP 503   shutting down or not ready
    │   └── Overloaded                 exit 12  HTTP 503   a queue or memory budget is full
    ├── TimeoutExceeded                exit 13  HTTP 504
    └── Unauthorized                   exit 2   HTTP 401   a token is needed or wrong
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "ConfigError",
    "ConflictError",
    "GateFailed",
    "IntegrityError",
    "InvalidInputError",
    "InvalidNameError",
    "MissingExtraError",
    "ModelyardError",
    "NotFoundError",
    "Overloaded",
    "PayloadTooLarge",
    "PipelineError",
    "SchemaOutdatedError",
    "ServiceUnavailable",
    "TimeoutExceeded",
    "Unauthorized",
    "UnsafeArtifactError",
    "ValidationFailed",
    "require_extra",
]


class ModelyardError(Exception):
    """Base of every modelyard error.

    Args:
        message: what happened, naming the offending value.
        hint: what to do next, ideally an exact command.
        **details: structured context (field names, values) for logs and JSON error bodies.
    """

    exit_code: ClassVar[int] = 1
    http_status: ClassVar[int] = 500

    def __init__(self, message: str, *, hint: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\nhint: {self.hint}"
        return self.message

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able body for HTTP answers and ``--json`` output."""
        body: dict[str, Any] = {"error": type(self).__name__, "message": self.message}
        if self.hint:
            body["hint"] = self.hint
        if self.details:
            body["details"] = self.details
        return body


class ConfigError(ModelyardError):
    exit_code = 2


class InvalidInputError(ModelyardError):
    exit_code = 2
    http_status = 400


class InvalidNameError(InvalidInputError):
    pass


class ValidationFailed(InvalidInputError):
    exit_code = 3
    http_status = 422


class PayloadTooLarge(InvalidInputError):
    http_status = 413


class NotFoundError(ModelyardError):
    exit_code = 4
    http_status = 404


class ConflictError(ModelyardError):
    exit_code = 5
    http_status = 409


class IntegrityError(ModelyardError):
    exit_code = 6


class SchemaOutdatedError(ModelyardError):
    exit_code = 7
    http_status = 503


class MissingExtraError(ModelyardError):
    exit_code = 8


class PipelineError(ModelyardError):
    exit_code = 9


class GateFailed(PipelineError):
    exit_code = 10


class UnsafeArtifactError(ModelyardError):
    exit_code = 11


class ServiceUnavailable(ModelyardError):
    exit_code = 12
    http_status = 503


class Overloaded(ServiceUnavailable):
    """Refused for lack of room (a full queue, the request-body memory budget): retry shortly.

    A server counts these as overload rejections; other 503s (not ready, shutting down) are not.
    """


class TimeoutExceeded(ModelyardError):
    exit_code = 13
    http_status = 504


class Unauthorized(ModelyardError):
    """A request to an endpoint that needs a bearer token came without it, or with a wrong one."""

    exit_code = 2
    http_status = 401


def require_extra(module: str, extra: str) -> Any:
    """Import ``module`` or raise :class:`MissingExtraError` naming the pip extra to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{module!r} is not installed but this feature needs it",
            hint=f"pip install 'modelyard[{extra}]'",
            module=module,
        ) from exc
