"""The same MLP served by mosec (max batch 64, max wait 2 ms): run inside benchmarks/.peers/mosec.

``--variant tuned`` (the default) is mosec written as its documentation recommends for speed:
the request body decoded with orjson (mosec's docs point to orjson/msgspec mixins instead of
the stdlib json of the base ``Worker``), the batch built with ``np.asarray`` and handed to torch
with ``torch.from_numpy`` (no copy), the answer encoded with orjson straight from numpy.
``--variant naive`` keeps mosec's default JSON and ``torch.tensor(list of lists)``.
"""

from __future__ import annotations

import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from mlp import build
from mosec import Server, Worker

VARIANT = os.environ.get("PEER_VARIANT", "tuned")


class Naive(Worker):
    def __init__(self) -> None:
        super().__init__()
        import torch

        self.torch = torch
        self.net = build()

    def forward(self, data: list[Any]) -> list[Any]:
        x = self.torch.tensor([d["instances"][0] for d in data], dtype=self.torch.float32)
        with self.torch.inference_mode():
            y = self.net(x)
        return [{"predictions": [row]} for row in y.tolist()]


class Tuned(Worker):
    def __init__(self) -> None:
        super().__init__()
        import numpy as np
        import orjson
        import torch

        self.np = np
        self.orjson = orjson
        self.torch = torch
        self.net = build()

    def deserialize(self, data: bytes) -> Any:
        return self.orjson.loads(data)

    def serialize(self, data: Any) -> bytes:
        out: bytes = self.orjson.dumps(data, option=self.orjson.OPT_SERIALIZE_NUMPY)
        return out

    def forward(self, data: list[Any]) -> list[Any]:
        x = self.np.asarray([d["instances"][0] for d in data], dtype=self.np.float32)
        with self.torch.inference_mode():
            y = self.net(self.torch.from_numpy(x)).numpy()
        return [{"predictions": y[i : i + 1]} for i in range(len(data))]


if __name__ == "__main__":
    server = Server()
    server.append_worker(
        Tuned if VARIANT == "tuned" else Naive,
        num=int(os.environ.get("MOSEC_WORKERS", "1")),
        max_batch_size=64,
        max_wait_time=2,  # ms
    )
    server.run()
