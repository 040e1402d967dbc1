"""The same MLP behind FastAPI (uvicorn): run inside benchmarks/.peers/fastapi.

``app`` is FastAPI written for speed as its docs suggest: an ``async`` endpoint reading the raw
body (no per-request pydantic model), orjson both ways, ``np.asarray`` + ``torch.from_numpy``,
and the answer as a prepared ``Response``. ``naive_app`` is the textbook version: a sync
endpoint validating a pydantic model and returning a dict (run in the threadpool).
"""

from __future__ import annotations

import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np
import orjson
import torch
from fastapi import FastAPI, Request, Response
from mlp import build
from pydantic import BaseModel

net = build()
app = FastAPI()
naive_app = FastAPI()


@app.post("/predict")
async def predict(request: Request) -> Response:
    doc = orjson.loads(await request.body())
    x = torch.from_numpy(np.asarray(doc["instances"], dtype=np.float32))
    with torch.inference_mode():
        y = net(x).numpy()
    body = orjson.dumps({"predictions": y}, option=orjson.OPT_SERIALIZE_NUMPY)
    return Response(body, media_type="application/json")


class Body(BaseModel):
    instances: list[list[float]]


@naive_app.post("/predict")
def predict_naive(body: Body) -> dict[str, Any]:
    x = torch.tensor(body.instances, dtype=torch.float32)
    with torch.inference_mode():
        y = net(x)
    return {"predictions": y.tolist()}


@app.get("/health")
@naive_app.get("/health")
async def health() -> dict[str, bool]:
    return {"ok": True}
