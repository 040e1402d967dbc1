"""The Starlette application: one handler per page, Jinja2 templates, static files in the wheel.

Pages are rendered on the server (htmx swaps the body on navigation and reloads pages that
change); every page has a stable URL. Errors become pages: a :class:`NotFoundError` is a 404 page,
a refused action a 401 page, bad input a 400 page naming what was wrong.
"""

from __future__ import annotations

import hmac
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from modelyard.errors import InvalidInputError, ModelyardError, NotFoundError, Unauthorized
from modelyard.logs import get_logger
from modelyard.ui import _data

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from modelyard.config import UISettings
    from modelyard.workspace import Workspace

__all__ = ["build_app"]

_HERE = Path(__file__).resolve().parent
_log = get_logger("ui")
_MAX_FORM_BYTES = 64 * 1024
_RUN_PAGE_TRIALS = 10  # a study's run page shows its best trials; /studies/<id> pages them all


class _ServerTiming:
    """Adds ``Server-Timing: app;dur=<ms>`` to every response (what the benchmark reads)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                dur_ms = (time.perf_counter() - start) * 1000.0
                headers = list(message.get("headers", []))
                headers.append((b"server-timing", f"app;dur={dur_ms:.2f}".encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, timed_send)


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _duration(start: float | None, end: float | None) -> str:
    if start is None or end is None:
        return "-"
    d = end - start
    if d < 60:
        return f"{d:.1f}s"
    if d < 3600:
        return f"{d / 60:.1f}m"
    return f"{d / 3600:.1f}h"


def _number(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


class _Pages:
    """The handlers; they share the workspace, the settings and the template environment."""

    def __init__(self, workspace: Workspace, settings: UISettings) -> None:
        self.workspace = workspace
        self.settings = settings
        self.env = Environment(
            loader=FileSystemLoader(str(_HERE / "templates")),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["when"] = _when
        self.env.filters["number"] = _number
        self.env.globals["duration"] = _duration
        self.env.globals["refresh_s"] = settings.refresh_s
        self.env.globals["read_only"] = settings.admin_token is None

    def render(
        self, request: Request, template: str, status_code: int = 200, **ctx: Any
    ) -> Response:
        html = self.env.get_template(template).render(request=request, **ctx)
        return HTMLResponse(html, status_code=status_code)

    # ------------------------------------------------------------------ runs
    def index(self, request: Request) -> Response:
        return RedirectResponse("/runs", status_code=302)

    def runs(self, request: Request) -> Response:
        q = request.query_params
        experiment = q.get("experiment") or None
        filter_text = q.get("filter") or None
        order = q.get("order") or None
        columns = q.get("columns") or None
        page = _data.runs_page(
            self.workspace.tracking,
            experiment=experiment,
            filter=filter_text,
            order_by=order,
            columns=columns,
            page_size=self.settings.page_size,
            page_token=q.get("page") or None,
        )
        base = {
            k: v
            for k, v in (
                ("experiment", experiment),
                ("filter", filter_text),
                ("order", order),
                ("columns", columns),
            )
            if v
        }

        def url(**changes: str | None) -> str:
            params = {**base, **changes}
            return "/runs?" + urlencode({k: v for k, v in params.items() if v})

        def sort_url(key: str) -> str:
            desc = f"{key} DESC"
            return url(order=key if order == desc else desc, page=None)

        def sort_mark(key: str) -> str:
            if order == f"{key} DESC":
                return "\u25bc"
            if order in (key, f"{key} ASC"):
                return "\u25b2"
            return ""

        return self.render(
            request,
            "runs.html",
            status_code=400 if page.error else 200,
            page=page,
            experiment=experiment,
            filter=filter_text or "",
            order=order or "",
            columns=columns or "",
            url=url,
            sort_url=sort_url,
            sort_mark=sort_mark,
        )

    def run(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        tracking = self.workspace.tracking
        info = tracking.get_run(run_id)
        series = _data.metric_series(tracking, info, self.settings.chart_points)
        parent = tracking.get_run(info.parent_run_id) if info.parent_run_id else None
        steps = _data.pipeline_steps(tracking, info) if info.kind == "pipeline" else []
        versions = [v for v in self.workspace.registry.all_versions() if v.run_id == run_id]
        trials = None
        if "sweep.study" in info.tags:  # a study's run: its best trials, the rest a link away
            from modelyard.sweep.trials import trials_page

            trials = trials_page(self.workspace, run_id, limit=_RUN_PAGE_TRIALS)
        return self.render(
            request,
            "run.html",
            run=info,
            series=series,
            parent=parent,
            steps=steps,
            versions=versions,
            t=trials,
            live=info.status == "RUNNING",
        )

    def study(self, request: Request) -> Response:
        """A sweep's study: its trials, best first, a page at a time (``?page=N``)."""
        from modelyard.sweep.trials import trials_page

        run_id = request.path_params["run_id"]
        raw = request.query_params.get("page") or "1"
        if not raw.isdigit() or int(raw) < 1 or len(raw) > 9:
            raise InvalidInputError(
                f"page must be a whole number from 1, got {raw!r}", hint="?page=2", page=raw
            )
        page = int(raw)
        size = self.settings.page_size
        trials = trials_page(self.workspace, run_id, offset=(page - 1) * size, limit=size)

        def page_url(n: int) -> str:
            return f"/studies/{run_id}" + ("" if n <= 1 else f"?page={n}")

        return self.render(
            request,
            "study.html",
            t=trials,
            page=page,
            page_url=page_url,
            live=trials.study.status == "RUNNING",
        )

    def artifact(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        path = request.path_params["path"]
        info = self.workspace.tracking.get_run(run_id)
        entry = info.artifacts.get(path)
        if entry is None:
            raise NotFoundError(f"run {run_id} has no artifact {path!r}", path=path)
        data = self.workspace.artifact_store.get_bytes(entry["sha256"])
        filename = path.rsplit("/", 1)[-1].replace('"', "")
        return Response(
            data,
            media_type="application/octet-stream",
            headers={"content-disposition": f'attachment; filename="{filename}"'},
        )

    def compare(self, request: Request) -> Response:
        ids = [i for i in request.query_params.getlist("run") if i]
        if len(ids) < 2:
            raise InvalidInputError(
                "compare needs at least two runs",
                hint="tick two or more runs in the runs table and press Compare",
            )
        if len(ids) > 20:
            raise InvalidInputError(f"compare takes at most 20 runs, got {len(ids)}")
        tracking = self.workspace.tracking
        runs = [tracking.get_run(i) for i in ids]
        params, metrics = _data.compare_rows(runs)
        series = {
            r.id: _data.metric_series(tracking, r, self.settings.chart_points // 2) for r in runs
        }
        keys = sorted({k for r in runs for k in r.metrics})
        overlay = {
            key: {r.name or r.id[:8]: series[r.id][key] for r in runs if key in series[r.id]}
            for key in keys
        }
        return self.render(
            request, "compare.html", runs=runs, params=params, metrics=metrics, overlay=overlay
        )

    # ------------------------------------------------------------------ pipelines
    def pipelines(self, request: Request) -> Response:
        page = _data.runs_page(
            self.workspace.tracking,
            experiment=None,
            filter="kind = 'pipeline'",
            order_by=None,
            columns="",
            page_size=self.settings.page_size,
            page_token=request.query_params.get("page") or None,
        )
        return self.render(request, "pipelines.html", page=page)

    def pipeline(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        info = self.workspace.tracking.get_run(run_id)
        if info.kind != "pipeline":
            raise NotFoundError(f"run {run_id} is not a pipeline run (it is a {info.kind})")
        steps = _data.pipeline_steps(self.workspace.tracking, info)
        return self.render(
            request, "pipeline.html", run=info, steps=steps, live=info.status == "RUNNING"
        )

    # ------------------------------------------------------------------ models
    def models(self, request: Request) -> Response:
        return self.render(request, "models.html", models=self.workspace.registry.list_models())

    def model(self, request: Request) -> Response:
        name = request.path_params["name"]
        reg = self.workspace.registry
        model = reg.get_model(name)
        versions = reg.list_versions(name)
        history = reg.alias_history(name)
        from modelyard.delivery.store import RolloutStore

        rollout = RolloutStore(self.workspace.metadata_store).latest(name)
        return self.render(
            request,
            "model.html",
            rollout=rollout,
            model=model,
            versions=list(reversed(versions)),
            history=list(reversed(history)),
        )

    def version(self, request: Request) -> Response:
        name = request.path_params["name"]
        number = request.path_params["version"]
        reg = self.workspace.registry
        v = reg.get_version(name, number)
        contract = _data.contract_text(v, self.workspace.artifact_store)
        profile = _data.profile_text(v, self.workspace.artifact_store)

        return self.render(
            request,
            "version.html",
            v=v,
            gate=_data.gate_rules(v.extra),
            contract=contract,
            profile=profile,
        )

    # ------------------------------------------------------------------ delivery, monitoring
    def rollout(self, request: Request) -> Response:
        from modelyard.delivery.store import RolloutStore

        rollouts = RolloutStore(self.workspace.metadata_store)
        r = rollouts.get(request.path_params["rollout_id"])
        events = list(reversed(rollouts.events(r.id)))
        return self.render(request, "rollout.html", r=r, events=events[:500], live=r.active)

    def monitoring(self, request: Request) -> Response:
        from modelyard.monitoring import MonitorStore

        name = request.path_params["name"]
        self.workspace.registry.get_model(name)  # 404 for an unknown model
        monitor = MonitorStore(self.workspace.metadata_store)
        results = monitor.history(name, limit=500)
        by_version: dict[str, list[list[float]]] = {}
        for res in results:
            if res.drift_score is not None:
                xs, ys = by_version.setdefault(f"v{res.version}", [[], []])
                xs.append(res.window_end)
                ys.append(res.drift_score)
        return self.render(
            request,
            "monitoring.html",
            name=name,
            results=list(reversed(results)),
            drift=by_version,
            triggers=monitor.triggers(name, limit=50),
        )

    def monitoring_report(self, request: Request) -> Response:
        """A stored window's HTML report, read-only, from the artifact store.

        The URL names the stored window by id, never a path; the name recorded with it must be
        a report of this model under ``monitor-reports/`` (the artifact store also refuses
        ``..`` and absolute names), so no URL reaches another file. The report has no script;
        the headers forbid any (and any request out of the page) all the same.
        """
        from modelyard.monitoring import REPORTS_PREFIX, MonitorStore

        name = request.path_params["name"]
        result_id = request.path_params["result_id"]
        stored = MonitorStore(self.workspace.metadata_store).get(result_id)
        report = stored.report
        prefix = f"{REPORTS_PREFIX}/{name}/"
        if stored.model != name or report is None:
            raise NotFoundError(f"model {name!r} has no report for monitoring result {result_id}")
        if not report.startswith(prefix) or ".." in report or not report.endswith(".html"):
            _log.warning("report name refused", extra={"result": result_id, "report": report})
            raise NotFoundError(f"monitoring result {result_id} has no readable report")
        data = self.workspace.artifact_store.read_named(report)
        return Response(
            data,
            media_type="text/html; charset=utf-8",
            headers={
                "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; "
                "img-src data:; sandbox",
                "x-content-type-options": "nosniff",
            },
        )

    # ------------------------------------------------------------------ actions
    async def _form(self, request: Request) -> dict[str, str]:
        body = await request.body()
        if len(body) > _MAX_FORM_BYTES:
            raise InvalidInputError(f"form of {len(body)} bytes is over {_MAX_FORM_BYTES}")
        parsed = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
        return {k: v[-1] for k, v in parsed.items()}

    def _authorise(self, form: dict[str, str], action: str) -> tuple[str, str | None]:
        """The actor and reason of an action whose token is right; else :class:`Unauthorized`."""
        expected = self.settings.admin_token
        if expected is None:
            raise Unauthorized(
                f"{action} refused: this UI is read-only",
                hint="start it with an admin token (MODELYARD_UI__ADMIN_TOKEN or "
                "[tool.modelyard.ui] admin_token) to allow actions",
            )
        given = form.get("token", "")
        if not hmac.compare_digest(given.encode(), expected.get_secret_value().encode()):
            _log.warning("ui action refused", extra={"action": action})
            raise Unauthorized(
                f"{action} refused: the admin token is missing or wrong",
                hint="enter the admin token the UI was started with",
            )
        actor = form.get("actor", "").strip()
        if not actor:
            raise InvalidInputError(
                f"{action} needs who is acting", hint="fill in 'who'", field="actor"
            )
        return actor, (form.get("reason") or "").strip() or None

    def _registry_as(self, actor: str) -> Any:
        from modelyard.registry.registry import Registry

        reg = self.workspace.registry
        return Registry(
            reg.metadata_store,
            reg.artifact_store,
            user=actor,
            git_tags=reg.git_tags,
            project_root=reg.project_root,
        )

    async def promote(self, request: Request) -> Response:
        name = request.path_params["name"]
        form = await self._form(request)
        actor, reason = self._authorise(form, "promote")
        alias = form.get("alias", "").strip() or "production"
        version = form.get("version", "").strip()
        target = await run_in_threadpool(
            self._registry_as(actor).set_alias, name, alias, version, reason=reason
        )
        _log.info(
            "ui alias set",
            extra={"model": name, "alias": alias, "version": target.version, "actor": actor},
        )
        return RedirectResponse(f"/models/{name}", status_code=303)

    async def rollback(self, request: Request) -> Response:
        name = request.path_params["name"]
        form = await self._form(request)
        actor, reason = self._authorise(form, "rollback")
        alias = form.get("alias", "").strip() or "production"
        target = await run_in_threadpool(
            self._registry_as(actor).rollback, name, alias=alias, reason=reason
        )
        _log.info(
            "ui alias rolled back",
            extra={"model": name, "alias": alias, "version": target.version, "actor": actor},
        )
        return RedirectResponse(f"/models/{name}", status_code=303)

    async def tag(self, request: Request) -> Response:
        name = request.path_params["name"]
        form = await self._form(request)
        actor, _reason = self._authorise(form, "tag")
        key = form.get("key", "").strip()
        value = form.get("value", "")
        version = form.get("version", "").strip()
        reg = self._registry_as(actor)
        if version:
            await run_in_threadpool(reg.set_version_tag, name, version, key, value)
        else:
            await run_in_threadpool(reg.set_model_tag, name, key, value)
        _log.info("ui tag set", extra={"model": name, "version": version or None, "actor": actor})
        return RedirectResponse(f"/models/{name}", status_code=303)

    async def rollout_command(self, request: Request) -> Response:
        from modelyard.delivery.store import RolloutStore

        rollout_id = request.path_params["rollout_id"]
        command = request.path_params["command"]
        if command not in ("promote", "abort"):
            raise NotFoundError(f"no rollout action {command!r}: use promote or abort")
        form = await self._form(request)
        actor, _reason = self._authorise(form, f"rollout {command}")
        rollouts = RolloutStore(self.workspace.metadata_store, actor=actor)
        r = await run_in_threadpool(rollouts.get, rollout_id)
        if not r.active:
            raise InvalidInputError(
                f"rollout {rollout_id} is {r.state}: nothing to {command}",
                rollout_id=rollout_id,
            )
        await run_in_threadpool(rollouts.request, rollout_id, command, actor=actor)
        _log.info("ui rollout command", extra={"rollout_id": rollout_id, "actor": actor})
        return RedirectResponse(f"/rollouts/{rollout_id}", status_code=303)

    # ------------------------------------------------------------------ errors
    def error(self, request: Request, exc: Exception) -> Response:
        if isinstance(exc, ModelyardError):
            status = exc.http_status
            message, hint = str(exc), exc.hint
        elif isinstance(exc, HTTPException):
            status = exc.status_code
            message = "page not found" if status == 404 else str(exc.detail)
            hint = None
        else:  # pragma: no cover - reached only on a bug
            _log.exception("ui error", exc_info=exc)
            status, message, hint = 500, "internal error", None
        return self.render(
            request, "error.html", status_code=status, status=status, message=message, hint=hint
        )


def build_app(workspace: Workspace, settings: UISettings) -> Starlette:
    """The ASGI application over ``workspace`` (see :func:`modelyard.ui.create_app`)."""
    pages = _Pages(workspace, settings)
    routes = [
        Route("/", pages.index),
        Route("/runs", pages.runs),
        Route("/runs/{run_id:str}", pages.run),
        Route("/runs/{run_id:str}/artifacts/{path:path}", pages.artifact),
        Route("/studies/{run_id:str}", pages.study),
        Route("/compare", pages.compare),
        Route("/pipelines", pages.pipelines),
        Route("/pipelines/{run_id:str}", pages.pipeline),
        Route("/models", pages.models),
        Route("/models/{name:str}", pages.model),
        Route("/models/{name:str}/versions/{version:int}", pages.version),
        Route("/models/{name:str}/promote", pages.promote, methods=["POST"]),
        Route("/models/{name:str}/rollback", pages.rollback, methods=["POST"]),
        Route("/models/{name:str}/tags", pages.tag, methods=["POST"]),
        Route("/models/{name:str}/monitoring", pages.monitoring),
        Route("/models/{name:str}/monitoring/reports/{result_id:int}", pages.monitoring_report),
        Route("/rollouts/{rollout_id:str}", pages.rollout),
        Route(
            "/rollouts/{rollout_id:str}/{command:str}",
            pages.rollout_command,
            methods=["POST"],
        ),
        Mount("/static", StaticFiles(directory=str(_HERE / "static")), name="static"),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(_ServerTiming)],
        exception_handlers={ModelyardError: pages.error, HTTPException: pages.error},
    )
