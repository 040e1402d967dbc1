"""JSON log lines: fields, masking, one object per line."""

from __future__ import annotations

import io
import json
import logging

from modelyard.logs import JsonFormatter, configure_logging, get_logger


def test_records_are_json_lines_with_fields_and_masked_secrets() -> None:
    stream = io.StringIO()
    configure_logging("DEBUG", stream=stream, static={"process": "front"}, force=True)
    log = get_logger("test")
    log.info("run started", extra={"run_id": "abc", "api_token": "s3cret"})
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("step failed", extra={"step": "train"})
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["msg"] == "run started"
    assert first["level"] == "info"
    assert first["logger"] == "modelyard.test"
    assert first["run_id"] == "abc"
    assert first["process"] == "front"
    assert first["api_token"] == "***"
    assert first["ts"].endswith("Z")
    assert "s3cret" not in stream.getvalue()
    assert second["step"] == "train"
    assert "ValueError: boom" in second["exc"]
    configure_logging("INFO", force=True)


def test_formatter_handles_unserialisable_values() -> None:
    record = logging.LogRecord("modelyard.x", logging.INFO, __file__, 1, "m", None, None)
    record.obj = object()
    body = json.loads(JsonFormatter().format(record))
    assert body["obj"].startswith("<object object")
