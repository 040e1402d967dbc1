"""Pipeline overhead: modelyard against Metaflow, whole-process wall time.

Run from the repository root::

    python benchmarks/pipeline.py              # 7 repeats per workload
    python benchmarks/pipeline.py --quick      # 3 repeats
    python benchmarks/pipeline.py --skip-peer  # modelyard only

Workloads: a linear pipeline of 3 and of 10 trivial steps (each adds 1 to an int), in a fresh
temporary project. Every measurement is the wall time of a fresh process, from exec to exit:

* **first run**: ``modelyard run flow:pipe --force`` (the store exists, no cached result is
  used: every step runs and is stored, as on a first run) vs ``python flow.py run``;
* **first run, fresh home**: ``modelyard run`` on a home that does not exist yet (the SQLite
  store is created and migrated by this process) vs the same Metaflow run;
* **re-run, nothing changed**: ``modelyard run`` after a successful run (every step cached)
  vs ``python flow.py resume`` (Metaflow clones every task of the previous run).

Metaflow runs in its own venv (``benchmarks/.peers/metaflow``, created when missing) with a local
datastore and local metadata in a temporary folder (``METAFLOW_HOME``, ``USERNAME`` set).
Medians of the repeats; the machine is shared, so compare the ratio more than the seconds.

Bytecode: a wheel install (``pip install modelyard``) compiles the package's ``.pyc`` files, and
Metaflow's venv has them; an editable checkout under ``PYTHONDONTWRITEBYTECODE=1`` (as on our CI
machines) would recompile every modelyard module in every process. The script therefore runs
``compileall`` on the installed modelyard package first, so both sides start from bytecode.
A second table gives the CPU time (user + sys) of the same processes.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import fmt, peer_python, print_table, ratio, save_results

TARGETS_S = {"first run, 10 steps": 0.5, "re-run, 10 steps": 0.3}


def modelyard_flow(steps: int) -> str:
    lines = ["import modelyard", ""]
    for i in range(steps):
        lines += [
            "@modelyard.step",
            f"def s{i}(x: int) -> int:",
            "    return x + 1",
            "",
        ]
    lines += ["@modelyard.pipeline", "def pipe(start: int = 0):", "    x = start"]
    lines += [f"    x = s{i}(x)" for i in range(steps)]
    lines += ["    return x", ""]
    return "\n".join(lines)


def metaflow_flow(steps: int) -> str:
    names = ["start", *[f"s{i}" for i in range(1, steps - 1)], "end"]
    lines = ["from metaflow import FlowSpec, step", "", f"class Flow{steps}(FlowSpec):"]
    for i, name in enumerate(names):
        lines += ["    @step", f"    def {name}(self):"]
        lines.append("        self.x = 0" if i == 0 else "        self.x += 1")
        if name != "end":
            lines.append(f"        self.next(self.{names[i + 1]})")
        lines.append("")
    lines += ['if __name__ == "__main__":', f"    Flow{steps}()", ""]
    return "\n".join(lines)


CPU: list[float] = []  # CPU seconds (user + sys) of each timed process, in order


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    took = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
        )
    return took


def compile_modelyard() -> None:
    """Write the bytecode of the modelyard package in use, as a wheel install would have it."""
    import modelyard

    package = Path(modelyard.__file__).resolve().parent
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], check=True)


def modelyard_script() -> str:
    """The ``modelyard`` script installed beside this interpreter.

    Not the first one on PATH: a pyenv shim there is a bash script that runs ``pyenv exec``,
    which adds ~70 ms to every call and is not part of modelyard (Metaflow runs as ``python
    flow.py`` with its venv's interpreter, no shim either).
    """
    beside = Path(sys.executable).parent / "modelyard"
    if beside.is_file():
        return str(beside)
    return shutil.which("modelyard") or "modelyard"


def bench_modelyard(steps: int, repeats: int, work: Path) -> dict[str, float]:
    project = work / f"my{steps}"
    project.mkdir()
    (project / "pyproject.toml").write_text("[tool.modelyard]\n")
    (project / "flow.py").write_text(modelyard_flow(steps))
    exe = modelyard_script()
    base = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    base["CI"] = "true"
    argv = [exe, "run", "flow:pipe"]

    fresh = []
    for i in range(repeats):
        env = {**base, "MODELYARD_HOME": str(work / f"fresh{steps}-{i}")}
        fresh.append(timed(argv, project, env))
    fresh_cpu = CPU[-repeats:]
    env = {**base, "MODELYARD_HOME": str(work / f"home{steps}")}
    timed(argv, project, env)  # creates the store
    first = [timed([*argv, "--force"], project, env) for _ in range(repeats)]
    first_cpu = CPU[-repeats:]
    rerun = [timed(argv, project, env) for _ in range(repeats)]
    rerun_cpu = CPU[-repeats:]
    return _medians(first, fresh, rerun, first_cpu, fresh_cpu, rerun_cpu)


def _medians(*series: list[float]) -> dict[str, float]:
    keys = ("first", "fresh", "rerun", "first_cpu", "fresh_cpu", "rerun_cpu")
    return {k: statistics.median(v) for k, v in zip(keys, series, strict=True)}


def bench_metaflow(python: Path, steps: int, repeats: int, work: Path) -> dict[str, float]:
    project = work / f"mf{steps}"
    project.mkdir()
    (project / "flow.py").write_text(metaflow_flow(steps))
    env = {
        **os.environ,
        "METAFLOW_HOME": str(work / "mfhome"),
        "USERNAME": "bench",
        "METAFLOW_DEFAULT_DATASTORE": "local",
        "METAFLOW_DEFAULT_METADATA": "local",
        "METAFLOW_DATASTORE_SYSROOT_LOCAL": str(work / f"mfds{steps}"),
    }
    py = str(python)
    timed([py, "flow.py", "run"], project, env)  # warm-up: first-time datastore layout
    first = [timed([py, "flow.py", "run"], project, env) for _ in range(repeats)]
    first_cpu = CPU[-repeats:]
    rerun = [timed([py, "flow.py", "resume"], project, env) for _ in range(repeats)]
    rerun_cpu = CPU[-repeats:]
    fresh = []
    for i in range(repeats):
        env_fresh = {**env, "METAFLOW_DATASTORE_SYSROOT_LOCAL": str(work / f"mffresh{steps}-{i}")}
        fresh.append(timed([py, "flow.py", "run"], project, env_fresh))
    fresh_cpu = CPU[-repeats:]
    return _medians(first, fresh, rerun, first_cpu, fresh_cpu, rerun_cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 repeats instead of 7")
    parser.add_argument("--skip-peer", action="store_true", help="do not run Metaflow")
    args = parser.parse_args()
    repeats = 3 if args.quick else 7

    python = None if args.skip_peer else peer_python("metaflow", ["metaflow"])
    compile_modelyard()
    results: dict[str, dict[str, dict[str, float]]] = {"modelyard": {}, "metaflow": {}}
    with tempfile.TemporaryDirectory(prefix="modelyard-bench-pipeline-") as tmp:
        work = Path(tmp)
        for steps in (3, 10):
            print(f"modelyard, {steps} steps ...", file=sys.stderr)
            results["modelyard"][str(steps)] = bench_modelyard(steps, repeats, work)
            if python is not None:
                print(f"metaflow, {steps} steps ...", file=sys.stderr)
                results["metaflow"][str(steps)] = bench_metaflow(python, steps, repeats, work)

    rows = []
    for steps in (3, 10):
        ours = results["modelyard"][str(steps)]
        peer = results["metaflow"].get(str(steps), {})
        for key, label in (
            ("first", f"first run, {steps} steps"),
            ("fresh", f"first run, fresh home, {steps} steps"),
            ("rerun", f"re-run, nothing changed, {steps} steps (Metaflow: resume)"),
        ):
            rows.append(
                (
                    label,
                    fmt(ours[key], "s"),
                    fmt(peer.get(key), "s"),
                    ratio(ours[key], peer.get(key)),
                )
            )
    print_table(rows, "metaflow")
    print()
    print("CPU seconds (user + sys) of the same processes, medians; less sensitive to a busy host:")
    cpu_rows = []
    for steps in (3, 10):
        ours = results["modelyard"][str(steps)]
        peer = results["metaflow"].get(str(steps), {})
        for key, label in (
            ("first_cpu", f"first run, {steps} steps"),
            ("fresh_cpu", f"first run, fresh home, {steps} steps"),
            ("rerun_cpu", f"re-run, nothing changed, {steps} steps"),
        ):
            cpu_rows.append(
                (
                    label,
                    fmt(ours[key], "s"),
                    fmt(peer.get(key), "s"),
                    ratio(ours[key], peer.get(key)),
                )
            )
    print_table(cpu_rows, "metaflow")
    save_results("pipeline", {"repeats": repeats, **results, "targets_s": TARGETS_S})


if __name__ == "__main__":
    main()
