"""The same MLP behind a plain FastAPI endpoint (uvicorn): run inside benchmarks/.peers/fastapi."""

from __future__ import annotations

import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch
from fastapi import FastAPI
from mlp import build
from pydantic import BaseModel

app = FastAPI()
net = build()


class Body(BaseModel):
    instances: list[list[float]]


@app.post("/predict")
def predict(body: Body) -> dict[str, Any]:
    x = torch.tensor(body.instances, dtype=torch.float32)
    with torch.inference_mode():
        y = net(x)
    return {"predictions": y.tolist()}


@app.get("/health")
def health() -> dict[str, bool]:
    return {"ok": True}
