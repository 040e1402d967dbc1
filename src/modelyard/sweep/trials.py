"""A study's trials, a page at a time, best first: what the UI and ``modelyard runs trials`` show.

The order is the study's: completed trials by the objective (highest first when the study
maximises, lowest first when it minimises, the earlier trial first among equals), then the
trials that failed, were pruned or still run, by number. Each page is one SQL statement with a
``LIMIT``/``OFFSET`` over the study's nested runs and one for the page's swept parameters, so a
study of any size costs a page of rows; nothing reads every trial.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from modelyard.errors import InvalidInputError, NotFoundError

if TYPE_CHECKING:
    from modelyard.tracking.entities import RunInfo
    from modelyard.workspace import Workspace

__all__ = ["MAX_PAGE", "StudyTrial", "TrialsPage", "find_study_run", "trials_page"]

MAX_PAGE = 1000  # the most trials one page holds


@dataclass
class StudyTrial:
    """One row of a study's trials table.

    Attributes:
        number: the trial's number (tag ``sweep.trial``).
        run_id: the trial's pipeline run.
        state: ``COMPLETE``, ``FAIL``, ``PRUNED`` or ``RUNNING``.
        value: the objective metric (None unless the trial completed).
        params: the swept parameters as stored (strings).
        reason: why it ended without a value (the run's ``ended.reason`` tag), if recorded.
    """

    number: int
    run_id: str
    state: str
    value: float | None
    params: dict[str, str] = field(default_factory=dict)
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form."""
        return {
            "number": self.number,
            "run_id": self.run_id,
            "state": self.state,
            "value": self.value,
            "params": self.params,
            "reason": self.reason,
        }


@dataclass
class TrialsPage:
    """One page of a study's trials, best first.

    Attributes:
        study: the study's run.
        name: the study's name (tag ``sweep.study``).
        metric: the objective metric.
        direction: ``maximize`` or ``minimize``.
        param_names: the swept parameters (the study's space), the table's columns.
        trials: this page's trials, in order.
        total: how many trials the study has.
        offset: the position of this page's first trial (0-based).
        best_run_id: the best completed trial's run in the whole study (None when none
            completed).
    """

    study: RunInfo
    name: str
    metric: str
    direction: str
    param_names: list[str]
    trials: list[StudyTrial]
    total: int
    offset: int
    best_run_id: str | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form."""
        return {
            "study": self.name,
            "run_id": self.study.id,
            "metric": self.metric,
            "direction": self.direction,
            "params": self.param_names,
            "total": self.total,
            "offset": self.offset,
            "best_run_id": self.best_run_id,
            "trials": [t.to_dict() for t in self.trials],
        }


def _space_names(study: RunInfo) -> list[str]:
    import orjson

    try:
        space = orjson.loads(study.tags.get("sweep.space") or "{}")
    except orjson.JSONDecodeError:
        return []
    return [str(k) for k in space] if isinstance(space, dict) else []


# the study's trials: its nested pipeline runs with a sweep.trial tag; complete = FINISHED with
# the objective. Trial numbers are tags (text): ordering by length then text orders them as
# numbers without a CAST that PostgreSQL would refuse on a hand-set non-numeric tag.
_FROM = (
    "FROM runs r "
    "JOIN run_tags t ON t.run_id = r.id AND t.key = 'sweep.trial' "
    "LEFT JOIN latest_metrics m ON m.run_id = r.id AND m.key = :metric "
    "WHERE r.parent_run_id = :study AND r.kind = 'pipeline'"
)
_DONE = "CASE WHEN r.status = 'FINISHED' AND m.value IS NOT NULL THEN 0 ELSE 1 END"


def _page_sql(direction: str) -> str:
    way = "ASC" if direction == "minimize" else "DESC"
    return (
        "SELECT r.id, r.status, t.value, m.value, x.value "
        + _FROM.replace(
            "WHERE", "LEFT JOIN run_tags x ON x.run_id = r.id AND x.key = 'ended.reason' WHERE"
        )
        + f" ORDER BY {_DONE}, CASE WHEN {_DONE} = 0 THEN m.value END {way}, "
        "LENGTH(t.value), t.value, r.id LIMIT :limit OFFSET :offset"
    )


def _state(status: str, value: float | None, reason: str | None) -> str:
    if status == "FINISHED" and value is not None:
        return "COMPLETE"
    if status == "RUNNING":
        return "RUNNING"
    return "PRUNED" if (reason or "").startswith("pruned") else "FAIL"


def trials_page(
    ws: Workspace, study_run_id: str, *, offset: int = 0, limit: int = 50
) -> TrialsPage:
    """The trials of the study whose run is ``study_run_id``, ``limit`` of them from ``offset``.

    Raises:
        NotFoundError: no such run.
        InvalidInputError: the run is not a study's (no ``sweep.study`` tag), or ``offset`` /
            ``limit`` are out of range.
    """
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise InvalidInputError(f"offset must be an integer >= 0, got {offset!r}", offset=offset)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise InvalidInputError(
            f"limit must be an integer from 1 to {MAX_PAGE}, got {limit!r}", limit=limit
        )
    study = ws.tracking.get_run(study_run_id)
    name = study.tags.get("sweep.study")
    if name is None:
        raise InvalidInputError(
            f"run {study.id} is not a sweep's study (it has no sweep.study tag)",
            hint="a study's run is the parent of its trials: see the trial run's page",
            run_id=study.id,
        )
    metric = study.tags.get("sweep.metric", "")
    direction = study.tags.get("sweep.direction", "maximize")
    names = _space_names(study)
    args: dict[str, Any] = {"study": study.id, "metric": metric}
    with ws.metadata_store.query() as q:
        total = int(q.execute(f"SELECT COUNT(*) {_FROM}", args)[0][0])
        rows = q.execute(_page_sql(direction), {**args, "limit": limit, "offset": offset})
        first = (
            rows[:1]
            if offset == 0
            else q.execute(_page_sql(direction), {**args, "limit": 1, "offset": 0})
        )
        params: dict[str, dict[str, str]] = {}
        if rows and names:
            ids = {f"r{i}": row[0] for i, row in enumerate(rows)}
            keys = {f"k{i}": key for i, key in enumerate(names)}
            found = q.execute(
                "SELECT run_id, key, value FROM params "
                f"WHERE run_id IN ({', '.join(':' + k for k in ids)}) "
                f"AND key IN ({', '.join(':' + k for k in keys)})",
                {**ids, **keys},
            )
            for run_id, key, value in found:
                params.setdefault(str(run_id), {})[str(key)] = str(value)
    trials = []
    for run_id, status, number, value, reason in rows:
        val = None if value is None else float(value)
        state = _state(str(status), val, reason)
        trials.append(
            StudyTrial(
                number=int(number) if str(number).isdigit() else -1,
                run_id=str(run_id),
                state=state,
                value=val if state == "COMPLETE" else None,
                params=params.get(str(run_id), {}),
                reason=None if reason is None else str(reason),
            )
        )
    best = None
    if first and _state(str(first[0][1]), first[0][3], first[0][4]) == "COMPLETE":
        best = str(first[0][0])
    return TrialsPage(study, name, metric, direction, names, trials, total, offset, best)


def find_study_run(ws: Workspace, ref: str) -> str:
    """The run id of a study named ``ref`` (the newest of that name), else of the run whose id
    or id prefix is ``ref``.

    Raises:
        NotFoundError: no study has that name and no run id starts with it.
        InvalidInputError: no study has that name and it is not an id prefix (4+ hex
            characters), or it is a prefix of several runs' ids.
    """
    with ws.metadata_store.query() as q:
        found = q.execute(
            "SELECT r.id FROM runs r JOIN run_tags t ON t.run_id = r.id "
            "AND t.key = 'sweep.study' WHERE t.value = :name AND r.kind = 'run' "
            "ORDER BY r.start_time DESC LIMIT 1",
            {"name": ref},
        )
    if found:
        return str(found[0][0])
    try:
        return ws.tracking.resolve_run_id(ref)
    except (NotFoundError, InvalidInputError) as exc:
        raise type(exc)(
            f"no study named {ref!r} and no run id starts with it",
            hint="name a study (modelyard sweep --study NAME) or give its run id",
            study=ref,
        ) from exc
