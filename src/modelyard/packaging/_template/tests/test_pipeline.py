"""The project's own tests: the data meets its contract, and the pipeline trains, passes the
gate and registers a model that answers. Run them with ``python -m pytest``."""

from __future__ import annotations

from pathlib import Path

from pipeline import CONTRACT_FILE, load, training

from modelyard.config import load_settings
from modelyard.data.contract import Contract
from modelyard.registry.registry import Registry

PROJECT = Path(__file__).resolve().parents[1]


def test_the_data_meets_its_contract() -> None:
    frame = load()
    report = Contract.from_file(CONTRACT_FILE).validate(frame)
    assert report.ok, report.to_text()


def test_the_contract_rejects_broken_data() -> None:
    frame = load()
    frame.loc[0, "mean_radius"] = -1.0
    report = Contract.from_file(CONTRACT_FILE).validate(frame)
    assert not report.ok


def test_the_pipeline_registers_a_production_model(tmp_path: Path) -> None:
    settings = load_settings(start=PROJECT, home=str(tmp_path))
    training.run(settings=settings, model_name="smoke")
    version = Registry.from_settings(settings).resolve("smoke@production")
    assert version.version == 1
    assert version.extra["metrics"]["roc_auc"] > 0.95
