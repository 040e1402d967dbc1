"""Many processes registering at once, and processes killed mid-registration.

Real processes on the real stores: version numbers must stay gap-free and unique, and no version
may ever point at bytes the artifact store does not hold.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from modelyard.registry.registry import Registry
from modelyard.store import schema
from modelyard.store.artifacts import ArtifactStore
from modelyard.store.db import MetadataStore

_TIMEOUT_S = 120.0

_REGISTER_CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from modelyard.registry.registry import Registry
    from modelyard.store.artifacts import ArtifactStore
    from modelyard.store.db import MetadataStore

    db_url, art_url, count, signals, idx = sys.argv[1:]
    st = ArtifactStore.open(art_url)
    reg = Registry(MetadataStore.open(db_url), st, user=f"proc{idx}")
    Path(signals, f"ready-{idx}").touch()
    deadline = time.monotonic() + 60
    while not Path(signals, "go").exists():  # start together, to collide
        if time.monotonic() > deadline:
            sys.exit("never got the start signal")
        time.sleep(0.002)
    for i in range(int(count)):
        payload = f"proc{idx}-item{i}".encode()
        v = reg.register_version("shared", {"model.bin": st.put_bytes(payload)})
        print(v.version, v.manifest_sha256, flush=True)
    """
)

_LOOP_CHILD = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from modelyard.registry.registry import Registry
    from modelyard.store.artifacts import ArtifactStore
    from modelyard.store.db import MetadataStore

    db_url, art_url, work = sys.argv[1:]
    reg = Registry(MetadataStore.open(db_url), ArtifactStore.open(art_url), user="looper")
    i = 0
    while True:
        pkg = Path(work, f"pkg-{os.getpid()}-{i}")
        pkg.mkdir(parents=True)
        for name in ("modelyard.json", "model.bin", "extra/vocab.bin"):
            (pkg / name).parent.mkdir(parents=True, exist_ok=True)
            (pkg / name).write_bytes(os.urandom(64 * 1024))
        reg.register_version("crashy", pkg, tags={"i": str(i)}, aliases=["candidate"])
        i += 1
    """
)


def _wait_for(predicate: object, what: str, timeout_s: float = _TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _versions(store: MetadataStore, model: str) -> tuple[list[int], int]:
    with store.read() as conn:
        model_id, last = conn.execute(
            sa.select(schema.models.c.id, schema.models.c.last_version).where(
                schema.models.c.name == model
            )
        ).one()
        numbers = (
            conn.execute(
                sa.select(schema.model_versions.c.version)
                .where(schema.model_versions.c.model_id == model_id)
                .order_by(schema.model_versions.c.version)
            )
            .scalars()
            .all()
        )
    return list(numbers), int(last)


@pytest.mark.slow
def test_eight_processes_register_gap_free_unique_versions(db_url: str, tmp_path: Path) -> None:
    procs_n, per_proc = 8, 5
    art_url = str(tmp_path / "artifacts")
    store = MetadataStore.open(db_url)  # created up front: this test is about registration
    signals = tmp_path / "signals"
    signals.mkdir()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _REGISTER_CHILD,
                db_url,
                art_url,
                str(per_proc),
                str(signals),
                str(i),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(procs_n)
    ]
    try:
        _wait_for(
            lambda: (
                len(list(signals.glob("ready-*"))) == procs_n
                or any(p.poll() is not None for p in procs)
            ),
            "children to start",
        )
        (signals / "go").touch()
        outs = [p.communicate(timeout=_TIMEOUT_S) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for proc, (_, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err
    reported = {}
    for out, _ in outs:
        for line in out.splitlines():
            number, sha = line.split()
            assert number not in reported, f"version {number} handed out twice"
            reported[number] = sha
    total = procs_n * per_proc
    assert sorted(int(n) for n in reported) == list(range(1, total + 1))
    numbers, last = _versions(store, "shared")
    assert numbers == list(range(1, total + 1))
    assert last == total
    reg = Registry(store, ArtifactStore.open(art_url))
    for number, sha in reported.items():
        assert reg.get_version("shared", number).manifest_sha256 == sha


@pytest.mark.slow
def test_a_process_killed_mid_registration_leaves_no_dangling_version(
    db_url: str, tmp_path: Path
) -> None:
    art_url = str(tmp_path / "artifacts")
    store = MetadataStore.open(db_url)
    artifacts = ArtifactStore.open(art_url)
    rng = random.Random(os.getpid())
    for _ in range(3):
        target = _last_version(store) + 2
        child = subprocess.Popen(
            [sys.executable, "-c", _LOOP_CHILD, db_url, art_url, str(tmp_path / "work")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            _wait_for(
                lambda c=child, t=target: c.poll() is not None or _last_version(store) >= t,
                "the child to register versions",
            )
            assert child.poll() is None, child.stderr.read() if child.stderr else ""
            time.sleep(rng.uniform(0.0, 0.08))  # kill at a random point of a registration
            child.send_signal(signal.SIGKILL)
        finally:
            if child.poll() is None:
                child.kill()
            child.wait(timeout=_TIMEOUT_S)
            if child.stderr:
                child.stderr.close()
        assert child.returncode == -signal.SIGKILL

    numbers, last = _versions(store, "crashy")
    assert numbers == list(range(1, last + 1)), "version numbers have a gap"
    reg = Registry(store, artifacts, user="checker")
    for v in reg.list_versions("crashy"):
        assert set(v.files) == {"modelyard.json", "model.bin", "extra/vocab.bin"}
        for sha in v.files.values():
            assert artifacts.get_bytes(sha)  # verified against its sha256; raises if missing
    # nothing is left locked: a new registration gets the next number
    pkg = tmp_path / "after"
    pkg.mkdir()
    (pkg / "model.bin").write_bytes(b"after the crash")
    assert reg.register_version("crashy", pkg).version == last + 1


def _last_version(store: MetadataStore) -> int:
    with store.read() as conn:
        found = conn.execute(
            sa.select(schema.models.c.last_version).where(schema.models.c.name == "crashy")
        ).scalar()
    return int(found or 0)
