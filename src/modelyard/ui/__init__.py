"""``modelyard ui``: web pages over the project's stores (runs, models, pipelines).

Read-only unless the UI is started with an admin token; actions (promote, roll back, tag) then
need it and are recorded with who and why. Starlette, Jinja2 and uvicorn come with
``pip install 'modelyard[ui]'``; htmx and uPlot ship as static files in the package, so the pages
work offline.

Example::

    from modelyard import Workspace, load_settings
    from modelyard.ui import create_app

    app = create_app(Workspace.open(load_settings()))   # an ASGI app: uvicorn.run(app)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from modelyard.workspace import Workspace

__all__ = ["create_app"]


def create_app(workspace: Workspace) -> Starlette:
    """The UI as an ASGI application over a workspace's stores.

    Args:
        workspace: the project's :class:`~modelyard.workspace.Workspace`; its
            ``settings.ui`` holds the admin token, page size, refresh interval and chart
            resolution.

    Raises:
        MissingExtraError: Starlette or Jinja2 is not installed (``pip install 'modelyard[ui]'``).
    """
    from modelyard.errors import require_extra

    require_extra("starlette", "ui")
    require_extra("jinja2", "ui")
    from modelyard.ui._app import build_app

    return build_app(workspace, workspace.settings.ui)
