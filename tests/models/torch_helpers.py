"""An importable torch module for the package tests (imports torch: keep it separate)."""

from __future__ import annotations

import torch


class MLP(torch.nn.Module):
    """Saved as state_dict + ``tests.models.torch_helpers:MLP`` + init kwargs."""

    def __init__(self, n_in: int, hidden: int, n_out: int) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(n_in, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, n_out)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def make_mlp(n_in: int = 4, hidden: int = 8, n_out: int = 3) -> MLP:
    torch.manual_seed(0)
    return MLP(n_in=n_in, hidden=hidden, n_out=n_out).eval()


class Embedder(torch.nn.Module):
    """Takes int64 token ids: the package must keep that input dtype."""

    def __init__(self, vocab: int, dim: int) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(vocab, dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.emb(tokens).mean(dim=1)
