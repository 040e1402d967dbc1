"""The serving benchmark's MLP as a registrable model (python flavor) for the delivery benchmark.

The weights come from a fixed seed (``benchmarks/serving/mlp.py``), so ``save`` writes only the
options; ``fail_when`` names a file whose existence makes every prediction fail (a candidate that
breaks in production).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


class MLPPackage:
    def __init__(self, fail_when: str | None = None) -> None:
        self.fail_when = fail_when
        self.net: Any = None

    def save(self, path: Path) -> None:
        (path / "options.json").write_text(json.dumps({"fail_when": self.fail_when}))

    @classmethod
    def load(cls, path: Path) -> MLPPackage:
        from mlp import build  # benchmarks/serving on the path

        model = cls(json.loads((path / "options.json").read_text())["fail_when"])
        model.net = build()
        return model

    def predict(self, batch: Any) -> Any:
        import numpy as np
        import torch

        if self.fail_when is not None and os.path.exists(self.fail_when):
            raise RuntimeError("this candidate is broken")
        if self.net is None:
            from mlp import build  # benchmarks/serving on the path

            self.net = build()
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
            return self.net(x).numpy()
