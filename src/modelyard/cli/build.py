"""`modelyard build` (the serving image's Dockerfile, or a model image) and `modelyard fetch`
(a registered version's files into a folder: what the pods' init container runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("build")(build)
    app.command("fetch")(fetch)


def build(
    model: Annotated[
        str | None,
        typer.Option("--model", help="NAME:VERSION: a model image with only that version's files"),
    ] = None,
    gpu: Annotated[
        bool | None, typer.Option("--gpu/--no-gpu", help="CUDA runtime base image")
    ] = None,
    image: Annotated[
        str | None, typer.Option("--image", help="also build the image with this tag")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="folder of the model image (default model-image)")
    ] = None,
    builder: Annotated[
        str | None, typer.Option("--builder", help="docker, podman or buildah (default: found)")
    ] = None,
) -> None:
    """Write the serving image's Dockerfile, .dockerignore and requirements.lock (or, with
    --model, a model image's folder); with --image, build it with the local builder."""
    from modelyard.cli.state import state
    from modelyard.packaging._files import write_file, write_folder
    from modelyard.packaging._project import require_project
    from modelyard.packaging.dockerfile import image_files, model_image_files

    settings = state.settings()
    require_project(settings, "build")
    root = settings.project_root
    if model is not None:
        from modelyard.registry.registry import Registry

        registry = Registry.from_settings(settings)
        version = registry.resolve(model)
        folder = out if out is not None else root / "model-image"

        def fetch_files(staging: Path) -> None:
            registry.download(version, staging / "model")

        files = model_image_files(version.name, version.version)
        context = write_folder(folder, files, replace_own=True, fill=fetch_files)
        typer.echo(f"wrote the model image of {version.name}:{version.version} to {context}")
    else:
        use_gpu = settings.packaging.gpu if gpu is None else gpu
        for name, text in image_files(settings, gpu=use_gpu).items():
            changed = write_file(root / name, text)
            typer.echo(f"{'wrote' if changed else 'unchanged'} {name}")
        context = root
    if image is not None:
        _build_image(context, image, builder)


def _build_image(context: Path, tag: str, builder: str | None) -> None:
    import shutil
    import subprocess

    from modelyard.errors import ModelyardError, NotFoundError

    names = [builder] if builder else ["docker", "podman", "buildah"]
    found = next((shutil.which(n) for n in names if shutil.which(n)), None)
    if found is None:
        raise NotFoundError(
            f"no image builder found (looked for {', '.join(names)})",
            hint="install docker, podman or buildah, or build the Dockerfile elsewhere",
        )
    typer.echo(f"building {tag} with {found}")
    done = subprocess.run([found, "build", "-t", tag, str(context)], check=False)
    if done.returncode != 0:
        raise ModelyardError(
            f"{Path(found).name} build of {tag} failed (exit {done.returncode})",
            hint="its output above says why",
        )


def fetch(
    model: Annotated[str, typer.Argument(help="NAME@alias or NAME:version")],
    out: Annotated[Path, typer.Option("--out", help="the folder to write the package into")],
) -> None:
    """Write a registered version's package files into a folder, each checked by its hash."""
    from modelyard.cli.state import state
    from modelyard.packaging._files import write_folder
    from modelyard.registry.registry import Registry

    registry = Registry.from_settings(state.settings())
    version = registry.resolve(model)
    write_folder(out, {}, fill=lambda staging: registry.download(version, staging))
    typer.echo(f"fetched {version.name}:{version.version} into {out}")
