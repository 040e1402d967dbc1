"""A front hosting several versions of Linear behind a header-driven router (see test_versions).

Run as ``python two_versions.py FD``: serves on the listening socket FD; version 7 is stable,
version 8 is added once 7 is ready; ``POST /test/versions`` adds or removes a version at run
time, and ``{"op": "share"}`` shares stable's batches with another version, as a delivery
controller would.
"""

from __future__ import annotations

import sys
from pathlib import Path

import orjson

from modelyard.config import ServingSettings
from modelyard.serving import Front, ModelSpec, Route, Server
from modelyard.serving.http import Request

HERE = str(Path(__file__).resolve().parent)


class HeaderRouter:
    """``x-arm: to:V`` answers from V; ``mirror:V`` mirrors to V; ``try:V`` falls back;
    ``share`` goes to stable, which may lend it to the version it shares its batches with."""

    def route(self, request: Request, stable: str) -> Route:
        arm = request.headers.get(b"x-arm")
        if arm is None:
            return Route(stable)
        kind, _, version = arm.decode().partition(":")
        if kind == "to":
            return Route(version)
        if kind == "mirror":
            return Route(stable, mirror=version)
        if kind == "share":
            return Route(stable, shared=True)
        return Route(version, fallback=stable)


def spec(cls: str) -> ModelSpec:
    return ModelSpec.for_class(f"models:{cls}", (HERE,))


async def add_v8(front: Front) -> None:
    await front.add_version(spec("LinearV8"), workers=1)

    async def versions(req: Request) -> None:
        doc = orjson.loads(req.body)
        if doc["op"] == "share":
            shared = front.share_batches(
                doc["version"], doc["share"], mirror=doc.get("mirror", False)
            )
            front.answer(req, 200, orjson.dumps({"shared": shared}), "/test/versions")
        elif doc["op"] == "add":
            pool = await front.add_version(spec(doc["class"]), workers=1)
            front.answer(req, 200, orjson.dumps({"added": pool.version}), "/test/versions")
        else:
            await front.remove_version(doc["version"])
            front.answer(req, 200, orjson.dumps({"removed": doc["version"]}), "/test/versions")

    front.add_async_route("/test/versions", versions)


if __name__ == "__main__":
    import socket

    from modelyard.logs import configure_logging

    configure_logging("INFO")
    server = Server(
        spec("Linear"),
        ServingSettings(workers=1),
        router=HeaderRouter(),
        on_ready=[add_v8],
    )
    sys.exit(server.run(socket.socket(fileno=int(sys.argv[1]))))
