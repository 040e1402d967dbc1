"""The same MLP served by mosec (max batch 64, max wait 2 ms): run inside benchmarks/.peers/mosec."""

from __future__ import annotations

import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from mlp import build
from mosec import Server, Worker


class Inference(Worker):
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


if __name__ == "__main__":
    server = Server()
    server.append_worker(
        Inference, num=int(os.environ.get("MOSEC_WORKERS", "1")), max_batch_size=64, max_wait_time=2
    )
    server.run()
