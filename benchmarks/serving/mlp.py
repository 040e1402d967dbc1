"""The benchmark model: a CPU PyTorch MLP 256 -> 1024 -> 1024 -> 10, float32, one torch thread.

``build()`` is shared by every server in the benchmark; :class:`MLP` is the class modelyard
serves (``--model mlp:MLP``). torch is imported only inside ``load``/``build`` so that the front
process never imports it.
"""

from __future__ import annotations

from typing import Any

IN, HIDDEN, OUT = 256, 1024, 10


def build() -> Any:
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(IN, HIDDEN),
        torch.nn.ReLU(),
        torch.nn.Linear(HIDDEN, HIDDEN),
        torch.nn.ReLU(),
        torch.nn.Linear(HIDDEN, OUT),
    )
    return net.eval()


class MLP:
    name = "mlp"
    version = "1"
    signature = {
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, IN]}],
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, OUT]}],
    }

    def load(self) -> None:
        import torch

        self.torch = torch
        self.net = build()

    def predict(self, batch: Any) -> Any:
        with self.torch.inference_mode():
            return self.net(self.torch.from_numpy(batch)).numpy()
