"""The exception tree: codes, statuses and JSON bodies."""

from __future__ import annotations

import pytest

from modelyard import errors


def test_every_error_derives_from_the_root_and_has_distinct_exit_codes() -> None:
    classes = [getattr(errors, n) for n in errors.__all__ if n[0].isupper()]
    for cls in classes:
        assert issubclass(cls, errors.ModelyardError)
        assert 100 <= cls.http_status < 600
    assert errors.NotFoundError.exit_code != errors.ConflictError.exit_code
    assert errors.PayloadTooLarge.http_status == 413
    assert errors.ValidationFailed.http_status == 422


def test_message_hint_and_body() -> None:
    exc = errors.NotFoundError("model 'x' not found", hint="modelyard models list", model="x")
    assert str(exc) == "model 'x' not found\nhint: modelyard models list"
    assert exc.to_dict() == {
        "error": "NotFoundError",
        "message": "model 'x' not found",
        "hint": "modelyard models list",
        "details": {"model": "x"},
    }


def test_require_extra_names_the_extra() -> None:
    with pytest.raises(errors.MissingExtraError) as info:
        errors.require_extra("modelyard_no_such_module", "serve")
    assert "pip install 'modelyard[serve]'" in (info.value.hint or "")
