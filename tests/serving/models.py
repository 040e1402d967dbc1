"""Model classes served by the tests (imported by worker processes from this folder)."""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np


class Linear:
    """y = x @ W for 4 features and 2 outputs; a tensor signature with bounds."""

    name = "linear"
    version = "7"
    signature = {
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4], "min": -1000, "max": 1000}],
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 2]}],
    }

    def load(self) -> None:
        self.w = np.array([[1, 0], [0, 1], [1, 1], [2, -1]], dtype=np.float32)

    def predict(self, batch: Any) -> Any:
        assert isinstance(batch, np.ndarray)
        assert batch.dtype == np.float32
        return batch @ self.w


class BatchProbe:
    """Answers each row with [batch size, first value, worker pid]; sleeps SLEEP_MS per batch."""

    name = "probe"
    signature = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [-1, 1]}]}

    def load(self) -> None:
        self.sleep_s = float(os.environ.get("PROBE_SLEEP_MS", "0")) / 1000.0

    def predict(self, batch: Any) -> Any:
        if self.sleep_s:
            time.sleep(self.sleep_s)
        n = len(batch)
        pid = os.getpid()
        return np.array([[n, float(row[0]), pid] for row in batch], dtype=np.float64)


class Words:
    """No signature: instances are any JSON; answers the length of each string."""

    name = "words"

    def load(self) -> None:
        pass

    def predict(self, batch: Any) -> Any:
        assert isinstance(batch, list)
        return [{"length": len(x)} for x in batch]


class Picky:
    """Raises for the value 13; other rows answer value * 2."""

    name = "picky"

    def load(self) -> None:
        pass

    def predict(self, batch: Any) -> Any:
        if (np.asarray(batch) == 13).any():
            raise ValueError("13 is unlucky")
        return np.asarray(batch) * 2


class Prices:
    """JSON-object instances checked against fields; pre/postprocess run in the front."""

    name = "prices"
    signature = {
        "fields": [
            {"name": "rooms", "type": "integer", "min": 1, "max": 20},
            {"name": "city", "type": "string", "categories": ["paris", "lyon"]},
        ]
    }

    def load(self) -> None:
        self.front_pid = None

    def preprocess(self, instance: Any) -> Any:
        if isinstance(instance, dict) and isinstance(instance.get("city"), str):
            return {**instance, "city": instance["city"].lower()}
        return instance

    def predict(self, batch: Any) -> Any:
        return [r["rooms"] * (100 if r["city"] == "paris" else 50) for r in batch]

    def postprocess(self, output: Any) -> Any:
        return {"price": output, "front_pid": os.getpid()}


class BrokenLoad:
    name = "broken"

    def load(self) -> None:
        raise RuntimeError("weights file is missing")

    def predict(self, batch: Any) -> Any:  # pragma: no cover - never loaded
        return batch


class SlowLoad:
    """Loads in 1.5 s after its first load: a restarted worker keeps readiness false a while."""

    name = "slowload"
    signature = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [-1, 1]}]}
    _loads = 0

    def load(self) -> None:
        marker = os.path.join(os.getcwd(), "slowload.loaded")
        if os.path.exists(marker):
            time.sleep(1.5)
        with open(marker, "w") as fh:
            fh.write("1")

    def predict(self, batch: Any) -> Any:
        return batch


class TinyTorch:
    """A torch model (sum of the inputs); torch is imported in the worker only."""

    name = "tinytorch"
    signature = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 2]}]}

    def load(self) -> None:
        import torch

        torch.set_num_threads(1)
        self.torch = torch
        self.net = torch.nn.Linear(2, 1, bias=False)
        with torch.no_grad():
            self.net.weight.fill_(1.0)

    def predict(self, batch: Any) -> Any:
        with self.torch.inference_mode():
            return self.net(self.torch.from_numpy(batch))


class Orphaner(Linear):
    """Linear, whose load leaves an orphan behind: a background ``sleep`` of an exited shell."""

    name = "orphaner"

    def load(self) -> None:
        import subprocess

        subprocess.run(["sh", "-c", "sleep 0.3 &"], check=True)  # the sleep outlives its parent
        super().load()


class LinearV8(Linear):
    """Version 8 of Linear: the same contract, the second output negated."""

    version = "8"

    def load(self) -> None:
        super().load()
        self.w = self.w * np.array([1, -1], dtype=np.float32)


class LinearWide(Linear):
    """Version 10 of Linear with a fifth feature: requests decode otherwise."""

    version = "10"
    signature = {
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 5]}],
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 2]}],
    }

    def load(self) -> None:
        self.w = np.ones((5, 2), dtype=np.float32)


class LinearBroken(Linear):
    """A bad candidate of Linear: every predict fails."""

    version = "9"

    def predict(self, batch: Any) -> Any:
        raise RuntimeError("the candidate is broken")
