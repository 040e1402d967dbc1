"""`modelyard k8s`: Kubernetes manifests (Deployment, Service, HPA, PDB, Ingress or HTTPRoute,
Argo Rollouts Rollout and AnalysisTemplate) for a registered model version."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

_HELP = """Write the Kubernetes manifests that serve MODEL (NAME@alias or NAME:version).

The alias is resolved now, so the pods fetch that exact version. Without --out the objects go
to stdout as one YAML stream (`modelyard k8s churn@production | kubectl apply -f -`).
Settings: [tool.modelyard.packaging] (replicas, resources, route, host), serving (port, body
limit, drain and grace) and delivery (canary steps and interval).
"""


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("k8s", help=_HELP)(k8s)


def k8s(  # noqa: PLR0917  (a Typer command: one parameter per flag)
    model: Annotated[str, typer.Argument(help="NAME@alias or NAME:version")],
    out: Annotated[
        Path | None, typer.Option("--out", help="write one file per object into this folder")
    ] = None,
    image: Annotated[
        str | None, typer.Option("--image", help="serving image (default: project name:version)")
    ] = None,
    gpu: Annotated[
        bool | None, typer.Option("--gpu/--no-gpu", help="one nvidia.com/gpu per pod")
    ] = None,
    model_image: Annotated[
        str | None,
        typer.Option("--model-image", help="mount this model image (Kubernetes 1.33+) instead"),
    ] = None,
    rollout: Annotated[
        bool, typer.Option("--rollout/--no-rollout", help="Argo Rollouts canary and analysis")
    ] = True,
) -> None:
    from modelyard.cli.state import state
    from modelyard.packaging._files import write_folder
    from modelyard.packaging._project import project_image, require_project
    from modelyard.packaging.k8s import kubernetes_manifests, manifest_files, to_yaml
    from modelyard.registry.registry import Registry

    settings = state.settings()
    require_project(settings, "k8s")
    version = Registry.from_settings(settings).resolve(model)
    objects = kubernetes_manifests(
        version.name,
        version.version,
        image=project_image(settings, image),
        settings=settings,
        gpu=gpu,
        rollout=rollout,
        model_image=model_image,
    )
    if out is None:
        typer.echo(to_yaml(objects), nl=False)
        return
    folder = write_folder(out, manifest_files(objects), replace_own=True)
    typer.echo(f"wrote {len(objects)} objects for {version.name}:{version.version} to {folder}")
