"""Request decoding, validation against the model's signature, and answer encoding.

The hot path is a v1 or v2 request whose instances are rows of numbers and a signature with a
2-d input ``[-1, D]``: orjson decodes the body, a precompiled ``struct`` of the input's type packs
each row (refusing strings, nulls and nested lists), and the request's rows travel as raw bytes.
Checks that need arithmetic (finite values, declared ``min``/``max``) run once per batch on the
stacked numpy array; a request whose rows fail is answered 422 and left out of the batch.

For v1 requests on that hot path the same codec runs in the model worker instead (the front
queues the body undecoded, ``raw_key``): the worker decodes each body of the batch, packs the
rows, predicts and encodes each answer; a refused body comes back as its error
(:func:`error_to_json`), which the front answers as if it had raised it.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np
import orjson

from modelyard import errors
from modelyard.errors import InvalidInputError, ModelyardError, PayloadTooLarge, ValidationFailed
from modelyard.serving import _ipc
from modelyard.serving._batcher import Item
from modelyard.serving._keys import JSON_KEY, BatchKey
from modelyard.serving._model import NUMPY_TO_V2, V2_TO_NUMPY

__all__ = ["Codec", "Decoded", "error_from_json", "error_to_json", "loads"]

_ARRAY_CODES = {"FP32": "f", "FP64": "d", "INT32": "i", "INT64": "q"}
_NP_OPTS = orjson.OPT_SERIALIZE_NUMPY


def loads(body: bytes | memoryview) -> Any:
    """Parse a JSON body, or raise a 400 naming the JSON error."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInputError(
            f"the body is not valid JSON: {exc}"[:300], hint="send a JSON document"
        ) from None


def error_to_json(exc: ModelyardError) -> bytes:
    """An error as a worker sends it back for one request of a raw batch."""
    doc = {"c": type(exc).__name__, "m": exc.message, "h": exc.hint, "d": exc.details}
    return orjson.dumps(doc, option=_NP_OPTS, default=str)


def error_from_json(data: bytes) -> ModelyardError:
    """The error :func:`error_to_json` describes (its class, message, hint and details)."""
    doc = orjson.loads(data)
    cls = getattr(errors, str(doc.get("c")), None)
    if not (isinstance(cls, type) and issubclass(cls, ModelyardError)):
        cls = ModelyardError
    return cls(str(doc.get("m")), hint=doc.get("h"), **(doc.get("d") or {}))


class Decoded:
    """A decoded request: the batch key, its row count, its payload and its instances."""

    __slots__ = ("data", "instances", "key", "rows")

    def __init__(self, key: BatchKey, rows: int, data: Any, instances: Any) -> None:
        self.key = key
        self.rows = rows
        self.data = data
        self.instances = instances


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(
        type(value), type(value).__name__
    )


def _shape_text(shape: list[int] | None) -> str:
    return "[" + ", ".join("-1" if d < 0 else str(d) for d in (shape or [])) + "]"


class Codec:
    """Turns bodies into batch items and batch results into answers, for one model."""

    def __init__(self, desc: dict[str, Any], *, max_batch_size: int, hooks: Any = None) -> None:
        self.name = str(desc.get("name", "model"))
        self.version = str(desc.get("version", "1"))
        self.max_batch_size = max_batch_size
        sig = desc.get("signature") or {}
        self.signature: dict[str, Any] = sig
        inputs = sig.get("inputs") or []
        self.input: dict[str, Any] | None = inputs[0] if inputs else None
        self.outputs: list[dict[str, Any]] = sig.get("outputs") or []
        self.fields: list[dict[str, Any]] = sig.get("fields") or []
        self.pre = getattr(hooks, "preprocess", None) if desc.get("preprocess") else None
        self.post = getattr(hooks, "postprocess", None) if desc.get("postprocess") else None
        self.input_name = self.input["name"] if self.input else "input-0"
        self.output_name = self.outputs[0]["name"] if self.outputs else "output-0"
        self.classes: list[Any] | None = desc.get("classes")
        self.dtype: str | None = None
        self.feature_shape: tuple[int, ...] | None = None
        self.code: str | None = None
        self.pack_row: Any = None
        self.dim = -1
        self.bounds: tuple[Any, Any] = (None, None)
        self.columns: list[str] | None = None
        if self.input is not None and self.input["datatype"] != "BYTES":
            self.dtype = V2_TO_NUMPY[self.input["datatype"]]
            shape = self.input.get("shape")
            if shape is not None and len(shape) >= 1:
                self.feature_shape = tuple(shape[1:])
                if len(shape) == 2 and shape[1] > 0:
                    self.dim = shape[1]
                    self.code = _ARRAY_CODES.get(self.input["datatype"])
                    if self.code is not None:
                        self.pack_row = struct.Struct(f"={self.dim}{self.code}").pack
            self.bounds = (
                _bound(self.input.get("min"), -np.inf),
                _bound(self.input.get("max"), np.inf),
            )
            self.columns = self.input.get("columns")
        self.tensor_key: BatchKey | None = (
            BatchKey("t", self.dtype, self.feature_shape)
            if self.dtype is not None
            and self.feature_shape is not None
            and -1 not in self.feature_shape
            else None
        )
        # v1 bodies of a [-1, D] numeric model travel undecoded: the workers decode them
        # straight into the batch (in parallel, off the front's one event loop)
        self.raw_key: BatchKey | None = None
        plain = self.pre is None and self.post is None
        if plain and self.pack_row is not None and self.tensor_key is not None:
            self.raw_key = BatchKey(_ipc.KIND_RAW, self.dtype or "", self.feature_shape or ())

    def interchangeable(self, other: Codec) -> bool:
        """Do both decode every request alike and read each other's batch results (the same
        signature, contract and classes, no pre/postprocess hooks): then a batch built by one
        can run on the other's workers."""
        return (
            self.pre is None
            and self.post is None
            and other.pre is None
            and other.post is None
            and self.signature == other.signature
            and self.classes == other.classes
            and self.max_batch_size == other.max_batch_size
            and self.raw_key == other.raw_key
        )

    # --- describing the model
    def metadata(self) -> dict[str, Any]:
        """The v2 model metadata document."""
        if self.input is not None:
            inputs = [
                {
                    "name": self.input["name"],
                    "datatype": self.input["datatype"],
                    "shape": self.input.get("shape") or [-1],
                }
            ]
        elif self.fields:
            # one tensor per column (the form MLServer's and KServe's pandas clients send); an
            # [N, C] numeric tensor in this column order, or BYTES JSON objects, work too
            inputs = [
                {
                    "name": f["name"],
                    "datatype": _FIELD_DATATYPES.get(f["type"], "BYTES"),
                    "shape": [-1],
                }
                for f in self.fields
            ]
        else:
            inputs = []
        outputs = [
            {"name": o["name"], "datatype": o["datatype"], "shape": o.get("shape") or [-1]}
            for o in self.outputs
        ]
        if not outputs and self.classes is not None:
            outputs = [
                {"name": self.output_name, "datatype": _datatype_of(self.classes), "shape": [-1]}
            ]
        if self.classes is not None:
            outputs.append(
                {
                    "name": PROBA,
                    "datatype": "FP64",
                    "shape": [-1, len(self.classes)],
                    "parameters": {"classes": self.classes},
                }
            )
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": "modelyard",
            "inputs": inputs,
            "outputs": outputs,
        }

    def _method(self, names: Any, where: str) -> str:
        """The model method a request asks for by its requested outputs: ``""`` (predict)
        or ``"proba"``."""
        if names is None:
            return ""
        if type(names) is not list or not all(type(n) is str for n in names):
            raise InvalidInputError(f"'{where}' must be a list of output names", field=where)
        if PROBA not in names:
            return ""
        if self.classes is None:
            raise InvalidInputError(
                f"this model has no output {PROBA!r} (it has no predict_proba)",
                hint="leave out 'outputs' to get the predictions",
                field=where,
            )
        if len(names) > 1:
            raise InvalidInputError(f"ask for one output per request; got {names[:5]}", field=where)
        return PROBA

    # --- decoding
    def _check_rows(self, n: int, where: str) -> None:
        if n == 0:
            raise InvalidInputError(f"{where} is empty; send at least one instance", field=where)
        if n > self.max_batch_size:
            raise PayloadTooLarge(
                f"{where} holds {n} instances; this server takes at most {self.max_batch_size} "
                "per request",
                hint="split the request, or raise serving.max_batch_size",
                field=where,
            )

    def v1(self, doc: Any) -> Decoded:
        """Decode a ``{"instances": [...]}`` document."""
        if type(doc) is not dict:
            raise InvalidInputError(
                f'the body must be a JSON object {{"instances": [...]}}, got a JSON {_kind(doc)}',
                field="instances",
            )
        inst = doc.get("instances")
        if inst is None:
            inst = doc.get("inputs")
        if type(inst) is not list:
            raise InvalidInputError(
                f"'instances' must be a JSON array of instances, got {_kind(inst)}",
                hint='send {"instances": [[...], ...]}',
                field="instances",
            )
        self._check_rows(len(inst), "instances")
        method = self._method(doc.get("outputs"), "outputs")
        if self.pre is not None:
            inst = self._preprocess(inst)
        decoded = self._from_instances(inst, "instances")
        if method:
            decoded.key = decoded.key._replace(method=method)
        return decoded

    def _preprocess(self, inst: list[Any]) -> list[Any]:
        pre = self.pre
        assert pre is not None
        out = []
        for i, x in enumerate(inst):
            try:
                out.append(pre(x))
            except (ValueError, TypeError, KeyError, IndexError) as exc:
                raise ValidationFailed(
                    f"instances[{i}] was refused by the model's preprocess: "
                    f"{type(exc).__name__}: {exc}",
                    field=f"instances[{i}]",
                ) from exc
        return out

    def _from_instances(self, inst: list[Any], where: str) -> Decoded:
        if self.code is not None:
            return self._fast_rows(inst, where)
        if self.dtype is not None:
            return self._numpy_rows(inst, where, self.dtype, self.feature_shape)
        if self.fields:
            self._check_fields(inst, where)
            return Decoded(JSON_KEY, len(inst), inst, inst)
        # no signature: numbers and lists of numbers become a tensor, anything else stays JSON
        first = inst[0]
        if type(first) in (list, int, float):
            try:
                arr = np.asarray(inst)
            except ValueError:
                arr = None
            if arr is not None and arr.dtype.kind in "biuf" and arr.ndim >= 1:
                return Decoded(
                    BatchKey("t", arr.dtype.name, arr.shape[1:]), len(inst), arr.tobytes(), inst
                )
        return Decoded(JSON_KEY, len(inst), inst, inst)

    def _fast_rows(self, inst: list[Any], where: str) -> Decoded:
        pack = self.pack_row
        assert pack is not None
        dim = self.dim
        parts = []
        for i, row in enumerate(inst):
            if type(row) is not list or len(row) != dim:
                raise self._row_error(row, i, where)
            try:
                # a precompiled struct packs 256 floats in ~2 us (array.extend: ~11 us) and
                # refuses strings, nulls and nested lists
                parts.append(pack(*row))
            except (struct.error, OverflowError) as exc:
                raise self._value_error(row, i, where, exc) from None
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        return Decoded(self.tensor_key, len(inst), data, inst)  # type: ignore[arg-type]

    def _row_error(self, row: Any, i: int, where: str) -> InvalidInputError:
        assert self.input is not None
        shape = _shape_text(self.input.get("shape"))
        expected = f"a list of {self.dim} numbers (input {self.input['name']!r}, shape {shape})"
        got = f"a JSON {_kind(row)}" if type(row) is not list else f"{len(row)} values"
        return InvalidInputError(
            f"{where}[{i}] has {got}; expected {expected}", field=f"{where}[{i}]"
        )

    def _value_error(self, row: list[Any], i: int, where: str, exc: Exception) -> InvalidInputError:
        assert self.input is not None
        dt = self.input["datatype"]
        for j, v in enumerate(row):
            if type(v) not in (int, float, bool):
                return InvalidInputError(
                    f"{where}[{i}][{j}] is a JSON {_kind(v)}; expected a number ({dt})",
                    field=f"{where}[{i}][{j}]",
                )
            if dt.startswith("INT") and type(v) is float:
                return InvalidInputError(
                    f"{where}[{i}][{j}] = {v!r} is not an integer; expected {dt}",
                    field=f"{where}[{i}][{j}]",
                )
        code = self.code or "d"
        for j, v in enumerate(row):
            try:
                struct.pack(f"={code}", v)
            except (struct.error, OverflowError):
                return ValidationFailed(
                    f"{where}[{i}][{j}] = {v!r} is out of range for {dt}",
                    field=f"{where}[{i}][{j}]",
                )
        return ValidationFailed(f"{where}[{i}] was refused: {exc}", field=f"{where}[{i}]")

    def _numpy_rows(
        self, inst: Any, where: str, dtype: str, feature_shape: tuple[int, ...] | None
    ) -> Decoded:
        try:
            loose = np.asarray(inst)
        except ValueError as exc:
            raise InvalidInputError(
                f"{where} is ragged or mixed: {exc}; expected rows of shape "
                f"{_shape_text(list(feature_shape or ()))}",
                field=where,
            ) from None
        if loose.dtype.kind not in "biuf":
            raise InvalidInputError(
                f"{where} holds non-numeric values (numpy read {loose.dtype}); expected numbers "
                f"of type {NUMPY_TO_V2.get(dtype, dtype)}",
                field=where,
            )
        if feature_shape is not None and not _shape_ok(loose.shape[1:], feature_shape):
            raise InvalidInputError(
                f"{where} has rows of shape {_shape_text(list(loose.shape[1:]))}; expected "
                f"{_shape_text(list(feature_shape))}",
                field=where,
            )
        with np.errstate(all="ignore"):
            arr = loose.astype(dtype)
        return Decoded(BatchKey("t", dtype, arr.shape[1:]), arr.shape[0], arr.tobytes(), inst)

    def _check_fields(self, inst: list[Any], where: str) -> None:
        for i, row in enumerate(inst):
            if type(row) is not dict:
                raise InvalidInputError(
                    f"{where}[{i}] is a JSON {_kind(row)}; expected an object with fields "
                    f"{[f['name'] for f in self.fields]}",
                    field=f"{where}[{i}]",
                )
            for f in self.fields:
                name = f["name"]
                loc = f"{where}[{i}].{name}"
                if name not in row or row[name] is None:
                    if f.get("nullable") and name in row:
                        continue
                    raise InvalidInputError(f"{loc} is missing; expected a {f['type']}", field=loc)
                v = row[name]
                t = f["type"]
                if t in ("number", "integer"):
                    if type(v) not in (int, float) or (
                        t == "integer" and type(v) is float and not v.is_integer()
                    ):
                        raise InvalidInputError(
                            f"{loc} is a JSON {_kind(v)}; expected a {t}", field=loc
                        )
                    lo, hi = f.get("min"), f.get("max")
                    if (lo is not None and v < lo) or (hi is not None and v > hi):
                        raise ValidationFailed(
                            f"{loc} = {v!r} is out of range; expected {_range(lo, hi)}",
                            field=loc,
                            allowed_min=lo,
                            allowed_max=hi,
                        )
                elif t == "string" and type(v) is not str:
                    raise InvalidInputError(
                        f"{loc} is a JSON {_kind(v)}; expected a string", field=loc
                    )
                elif t == "boolean" and type(v) is not bool:
                    raise InvalidInputError(
                        f"{loc} is a JSON {_kind(v)}; expected a boolean", field=loc
                    )
                cats = f.get("categories")
                if cats and v not in cats:
                    raise ValidationFailed(
                        f"{loc} = {v!r} is not an allowed category; expected one of {cats[:20]}",
                        field=loc,
                    )

    def v2(self, doc: Any, binary: bytes | None = None) -> tuple[Decoded, str | None]:
        """Decode an Open Inference Protocol v2 infer request; return it and its ``id``.

        ``binary`` is the part of the body after the JSON header when the request uses the
        binary tensor extension (``Inference-Header-Content-Length``); the input then carries
        ``parameters.binary_data_size`` and no ``data``.
        """
        if type(doc) is not dict:
            raise InvalidInputError(
                f"the body must be a JSON object with 'inputs', got a JSON {_kind(doc)}",
                field="inputs",
            )
        req_id = doc.get("id")
        if req_id is not None and type(req_id) is not str:
            raise InvalidInputError(f"'id' must be a string, got {_kind(req_id)}", field="id")
        inputs = doc.get("inputs")
        method = self._method(_output_names(doc.get("outputs")), "outputs")
        if (
            type(inputs) is list
            and inputs
            and self.fields
            and self.input is None
            and not _json_objects(inputs, self.fields)
        ):
            decoded = self._v2_columns(inputs)
        else:
            decoded = self._v2_tensor(inputs, binary)
        if method:
            decoded.key = decoded.key._replace(method=method)
        return decoded, req_id

    def _v2_columns(self, inputs: list[Any]) -> Decoded:
        """A tabular request: one tensor per column, or one numeric ``[N, C]`` tensor whose
        columns are the contract's, in its order. Rows become JSON objects, checked field by
        field (the errors name the row and the column)."""
        names = [f["name"] for f in self.fields]
        first = inputs[0]
        shape = first.get("shape") if type(first) is dict else None
        if len(inputs) == 1 and type(shape) is list and len(shape) == 2 and shape[1] != 1:
            records = self._v2_matrix(first, names)
        else:
            records = self._v2_column_tensors(inputs, names)
        self._check_rows(len(records), "inputs")
        if self.pre is not None:
            records = self._preprocess(records)
        self._check_fields(records, "rows")
        return Decoded(JSON_KEY, len(records), records, records)

    def _v2_matrix(self, t: dict[str, Any], names: list[str]) -> list[dict[str, Any]]:
        shape = t["shape"]
        if not all(type(d) is int and d >= 0 for d in shape) or shape[1] != len(names):
            raise InvalidInputError(
                f"inputs[0].shape is {str(shape)[:100]}; a tabular tensor is [rows, "
                f"{len(names)}] with the columns {names[:10]}{'...' if len(names) > 10 else ''}",
                field="inputs[0].shape",
            )
        if t.get("datatype") not in V2_TO_NUMPY:
            raise InvalidInputError(
                f"inputs[0].datatype is {str(t.get('datatype'))[:30]!r}; a [rows, columns] tensor "
                "holds numbers (FP64, FP32, INT64, ...); send strings as one tensor per column",
                field="inputs[0].datatype",
            )
        data = t.get("data")
        try:
            arr = np.asarray(data, dtype=np.float64)
        except (ValueError, TypeError):
            raise InvalidInputError(
                "inputs[0].data must hold numbers (flat row-major, or one list per row)",
                field="inputs[0].data",
            ) from None
        need = shape[0] * shape[1]
        if arr.size != need:
            raise InvalidInputError(
                f"inputs[0].data has {arr.size} values; shape {shape} needs {need}",
                field="inputs[0].data",
            )
        rows = arr.reshape(shape).tolist()
        return [dict(zip(names, row, strict=True)) for row in rows]

    def _v2_column_tensors(self, inputs: list[Any], names: list[str]) -> list[dict[str, Any]]:
        columns: dict[str, list[Any]] = {}
        n = -1
        for i, t in enumerate(inputs):
            where = f"inputs[{i}]"
            if type(t) is not dict:
                raise InvalidInputError(f"{where} must be an object, got {_kind(t)}", field=where)
            name = t.get("name")
            if name not in names:
                raise InvalidInputError(
                    f"{where}.name {str(name)[:100]!r} is not a column of this model; expected "
                    f"one tensor per column of {names[:30]}",
                    field=f"{where}.name",
                )
            shape = t.get("shape")
            if type(shape) is not list or len(shape) not in (1, 2) or shape[1:] not in ([], [1]):
                raise InvalidInputError(
                    f"{where} ({name}) has shape {str(shape)[:50]}; a column tensor is [rows] "
                    "or [rows, 1]",
                    field=f"{where}.shape",
                )
            if t.get("datatype") not in V2_TO_NUMPY and t.get("datatype") != "BYTES":
                raise InvalidInputError(
                    f"{where}.datatype {str(t.get('datatype'))[:30]!r} is not an Open Inference "
                    "Protocol datatype",
                    field=f"{where}.datatype",
                )
            data = t.get("data")
            if type(data) is list and data and type(data[0]) is list:
                data = [row[0] if type(row) is list and len(row) == 1 else row for row in data]
            if type(data) is not list or len(data) != shape[0]:
                got = f"{len(data)} values" if type(data) is list else f"a JSON {_kind(data)}"
                raise InvalidInputError(
                    f"{where}.data ({name}) has {got}; shape {shape} needs {shape[0]}",
                    field=f"{where}.data",
                )
            if n >= 0 and len(data) != n:
                raise InvalidInputError(
                    f"{where} ({name}) has {len(data)} rows; the tensors before it have {n}",
                    field=f"{where}.shape",
                )
            n = len(data)
            columns[name] = data
        missing = [c for c in names if c not in columns]
        if missing:
            raise InvalidInputError(
                f"the request has no tensor for the columns {missing[:20]}; send one tensor "
                "per column (null values where a column allows them)",
                field="inputs",
            )
        return [{c: columns[c][i] for c in names} for i in range(n)]

    def _v2_tensor(self, inputs: Any, binary: bytes | None) -> Decoded:
        """The single-tensor forms: numeric (JSON or binary), or BYTES of JSON instances."""
        if type(inputs) is not list or len(inputs) != 1:
            got = f"{len(inputs)} inputs" if type(inputs) is list else f"a JSON {_kind(inputs)}"
            raise InvalidInputError(
                f"'inputs' must be a list of exactly one tensor, got {got}", field="inputs"
            )
        t = inputs[0]
        if type(t) is not dict:
            raise InvalidInputError(
                f"inputs[0] must be an object, got {_kind(t)}", field="inputs[0]"
            )
        shape = t.get("shape")
        if (
            type(shape) is not list
            or not shape
            or not all(type(d) is int and d >= 0 for d in shape)
        ):
            raise InvalidInputError(
                f"inputs[0].shape must be a non-empty list of non-negative integers, got {shape!r}"[
                    :300
                ],
                field="inputs[0].shape",
            )
        datatype = t.get("datatype")
        if datatype not in V2_TO_NUMPY and datatype != "BYTES":
            raise InvalidInputError(
                f"inputs[0].datatype {datatype!r} is not an Open Inference Protocol datatype"[:300],
                hint=f"use one of {sorted([*V2_TO_NUMPY, 'BYTES'])}",
                field="inputs[0].datatype",
            )
        name = t.get("name")
        if self.input is not None and name != self.input["name"]:
            raise InvalidInputError(
                f"inputs[0].name {str(name)[:100]!r} is not this model's input; "
                f"expected {self.input['name']!r}",
                field="inputs[0].name",
            )
        params = t.get("parameters")
        size = params.get("binary_data_size") if type(params) is dict else None
        if size is not None or binary is not None:
            return self._v2_binary(shape, datatype, size, binary)
        data = t.get("data")
        if type(data) is not list:
            raise InvalidInputError(
                f"inputs[0].data must be a JSON array, got {_kind(data)}", field="inputs[0].data"
            )
        rows = shape[0]
        self._check_rows(rows, "inputs[0]")
        if datatype == "BYTES" or (self.input is None and self.fields):
            if len(shape) != 1:
                raise InvalidInputError(
                    f"inputs[0] is a tensor of {datatype} instances, one per row: its shape is "
                    f"[rows], got {shape}",
                    field="inputs[0].shape",
                )
            if len(data) != rows:
                raise InvalidInputError(
                    f"inputs[0].data has {len(data)} values; shape {shape} needs {rows}",
                    field="inputs[0].data",
                )
            inst = self._preprocess(data) if self.pre is not None else data
            if self.fields:
                self._check_fields(inst, "inputs[0].data")
            return Decoded(JSON_KEY, rows, inst, inst)
        if self.dtype is not None and datatype != self.input["datatype"]:  # type: ignore[index]
            raise InvalidInputError(
                f"inputs[0].datatype is {datatype}; this model takes {self.input['datatype']}",  # type: ignore[index]
                field="inputs[0].datatype",
            )
        if (
            self.code is not None
            and len(shape) == 2
            and shape[1] == self.dim
            and (not data or type(data[0]) is not list)
        ):
            # flat row-major data of a [n, D] tensor: the fast path, one row at a time
            if len(data) != rows * self.dim:
                raise InvalidInputError(
                    f"inputs[0].data has {len(data)} values; shape {shape} needs {rows * self.dim}",
                    field="inputs[0].data",
                )
            try:
                packed = struct.pack(f"={len(data)}{self.code}", *data)
            except (struct.error, OverflowError) as exc:
                raise self._value_error(data, 0, "inputs[0].data", exc).__class__(
                    f"inputs[0].data holds a value that is not a {datatype} number: {exc}",
                    field="inputs[0].data",
                ) from None
            return Decoded(self.tensor_key, rows, packed, None)  # type: ignore[arg-type]
        dtype = self.dtype or V2_TO_NUMPY[datatype]
        try:
            loose = np.asarray(data)
        except ValueError as exc:
            raise InvalidInputError(
                f"inputs[0].data is ragged: {exc}", field="inputs[0].data"
            ) from None
        if loose.dtype.kind not in "biuf" or loose.size != math.prod(shape):
            raise InvalidInputError(
                f"inputs[0].data must hold {math.prod(shape)} numbers for shape {shape}; "
                f"got {loose.size} values of kind {loose.dtype}"[:300],
                field="inputs[0].data",
            )
        arr = loose.reshape(shape)
        decoded = self._numpy_rows(arr, "inputs[0]", dtype, self.feature_shape)
        decoded.instances = None
        return decoded

    def _v2_binary(
        self, shape: list[int], datatype: str, size: Any, binary: bytes | None
    ) -> Decoded:
        """The binary tensor extension: raw little-endian bytes, row-major."""
        self._check_rows(shape[0], "inputs[0]")
        if binary is None or type(size) is not int or size < 0:
            raise InvalidInputError(
                "a binary input needs parameters.binary_data_size and the "
                "Inference-Header-Content-Length header",
                field="inputs[0].parameters.binary_data_size",
            )
        if datatype == "BYTES":
            raise InvalidInputError(
                "binary BYTES tensors are not supported; send BYTES data as JSON",
                field="inputs[0].datatype",
            )
        if self.dtype is not None and datatype != self.input["datatype"]:  # type: ignore[index]
            raise InvalidInputError(
                f"inputs[0].datatype is {datatype}; this model takes {self.input['datatype']}",  # type: ignore[index]
                field="inputs[0].datatype",
            )
        dtype = np.dtype(V2_TO_NUMPY[datatype]).newbyteorder("<")
        need = math.prod(shape) * dtype.itemsize
        if size != need or len(binary) != size:
            raise InvalidInputError(
                f"inputs[0] has {len(binary)} binary bytes (binary_data_size {size}); shape "
                f"{shape} of {datatype} needs {need}",
                field="inputs[0].parameters.binary_data_size",
            )
        arr = np.frombuffer(binary, dtype=dtype).reshape(shape)
        if self.feature_shape is not None and not _shape_ok(arr.shape[1:], self.feature_shape):
            raise InvalidInputError(
                f"inputs[0] has rows of shape {_shape_text(list(arr.shape[1:]))}; expected "
                f"{_shape_text(list(self.feature_shape))}",
                field="inputs[0].shape",
            )
        arr = arr.astype(self.dtype or dtype.newbyteorder("="), copy=False)
        key = BatchKey("t", arr.dtype.name, arr.shape[1:])
        return Decoded(key, shape[0], arr.tobytes(), None)

    # --- batches
    def prepare(self, key: BatchKey, items: list[Item]) -> tuple[list[Item], Any]:
        """Stack a batch; drop (answering 422) requests with non-finite or out-of-range values."""
        if key.kind == _ipc.KIND_RAW:  # JSON bodies for the worker to decode
            bodies = [it.data for it in items]
            return items, ({"k": _ipc.KIND_RAW, "l": [len(b) for b in bodies]}, b"".join(bodies))
        if not key.tensor:
            data: list[Any] = []
            for it in items:
                data.extend(it.data)
            meta: dict[str, Any] = {"k": _ipc.KIND_JSON}
            if key.method:
                meta["m"] = key.method
            return items, (meta, orjson.dumps(data, option=_NP_OPTS))
        dtype, feature = key.dtype, key.shape
        payload = b"".join(it.data for it in items) if len(items) > 1 else items[0].data
        n = sum(it.rows for it in items)
        if dtype.startswith("float"):
            arr = np.frombuffer(payload, dtype=dtype).reshape((n, -1))
            lo, hi = self.bounds
            with np.errstate(invalid="ignore"):
                bad = ~np.isfinite(arr).all(axis=1)
                if lo is not None:
                    bad |= (arr < lo).any(axis=1)
                if hi is not None:
                    bad |= (arr > hi).any(axis=1)
            if bad.any():
                items = self._drop_bad(items, bad, arr)
                if not items:
                    return [], None
                payload = b"".join(it.data for it in items)
                n = sum(it.rows for it in items)
        meta = {"k": _ipc.KIND_TENSOR, "dt": dtype, "sh": [n, *feature]}
        if key.method:
            meta["m"] = key.method
        return items, (meta, payload)

    def _drop_bad(self, items: list[Item], bad: Any, arr: Any) -> list[Item]:
        keep: list[Item] = []
        off = 0
        lo, hi = self.bounds
        for it in items:
            rows = bad[off : off + it.rows]
            if rows.any():
                r = int(np.argmax(rows))
                values = arr[off + r]
                with np.errstate(invalid="ignore"):
                    wrong = ~np.isfinite(values)
                    if lo is not None:
                        wrong |= values < lo
                    if hi is not None:
                        wrong |= values > hi
                c = int(np.argmax(wrong))
                col_lo = _at(lo, c)
                col_hi = _at(hi, c)
                limits = "a finite value"
                if col_lo is not None or col_hi is not None:
                    limits = f"a finite value, {_range(col_lo, col_hi)}"
                column = f" ({self.columns[c]})" if self.columns and c < len(self.columns) else ""
                it.finish(
                    ValidationFailed(
                        f"instances[{r}][{c}]{column} = {float(values[c])!r} is out of range; "
                        f"expected {limits}",
                        field=f"instances[{r}][{c}]",
                        allowed_min=col_lo,
                        allowed_max=col_hi,
                    )
                )
            else:
                keep.append(it)
            off += it.rows
        return keep

    def decode_result(self, meta: dict[str, Any], payload: bytes) -> Any:
        """Decode a worker's answer once per batch (each request then takes its rows)."""
        kind = meta["k"]
        if kind == _ipc.KIND_TENSOR:
            return np.frombuffer(payload, dtype=meta["dt"]).reshape(meta["sh"])
        if kind == _ipc.KIND_ANSWERS:  # one finished body per request of a raw batch
            return _split(payload, meta["l"])
        return orjson.loads(payload)

    def outputs_of(self, item: Item, result: tuple[dict[str, Any], Any]) -> Any:
        """This request's outputs: a numpy slice or a list; raises for a per-request error."""
        meta, decoded = result
        kind = meta["k"]
        if kind in (_ipc.KIND_TENSOR, _ipc.KIND_JSON):
            out = decoded[item.offset : item.offset + item.rows]
        else:
            entry = decoded[item.index]
            if "e" in entry:
                raise ValidationFailed(
                    f"the model could not predict on this input: {entry['e']}",
                    hint="check the instances against the model's signature "
                    "(GET /v2/models/<name>)",
                )
            out = entry["o"]
        if self.post is not None:
            rows = out.tolist() if isinstance(out, np.ndarray) else out
            out = [self.post(r) for r in rows]
        return out

    def v1_body(self, outputs: Any) -> bytes:
        return b'{"predictions":' + orjson.dumps(outputs, option=_NP_OPTS, default=_default) + b"}"

    def v2_body(
        self, outputs: Any, req_id: str | None, *, binary: bool = False, method: str = ""
    ) -> tuple[bytes, int | None]:
        """The v2 answer; with ``binary`` numeric outputs follow the JSON header as raw bytes.

        Returns the body and, for a binary answer, the length of its JSON header.
        """
        if isinstance(outputs, np.ndarray):
            tensor = {
                "name": self.output_name,
                "datatype": NUMPY_TO_V2.get(outputs.dtype.name, "FP32"),
                "shape": list(outputs.shape),
                "data": outputs.reshape(-1),
            }
        else:
            arr = None
            try:
                arr = np.asarray(outputs)
            except ValueError:
                arr = None
            if arr is not None and arr.dtype.kind in "biuf":
                tensor = {
                    "name": self.output_name,
                    "datatype": NUMPY_TO_V2.get(arr.dtype.name, "FP64"),
                    "shape": list(arr.shape),
                    "data": arr.reshape(-1),
                }
            else:
                tensor = {
                    "name": self.output_name,
                    "datatype": "BYTES",
                    "shape": [len(outputs)],
                    "data": outputs,
                }
        if method == PROBA:
            tensor["name"] = PROBA
            tensor["parameters"] = {"classes": self.classes}
        body: dict[str, Any] = {
            "model_name": self.name,
            "model_version": self.version,
            "outputs": [tensor],
        }
        if req_id is not None:
            body["id"] = req_id
        if binary and isinstance(tensor["data"], np.ndarray):
            raw = _le_bytes(tensor.pop("data"))
            params: dict[str, Any] = tensor.get("parameters") or {}  # type: ignore[assignment]
            tensor["parameters"] = {**params, "binary_data_size": len(raw)}
            head = orjson.dumps(body, option=_NP_OPTS, default=_default)
            return head + raw, len(head)
        return orjson.dumps(body, option=_NP_OPTS, default=_default), None


PROBA = "proba"  # the output holding class probabilities (predict_proba), by class
# signature field types -> the v2 datatype a column tensor is advertised with
_FIELD_DATATYPES = {"number": "FP64", "integer": "INT64", "boolean": "BOOL", "string": "BYTES"}


def _datatype_of(labels: list[Any]) -> str:
    """The v2 datatype of a classifier's labels."""
    if all(type(x) is bool for x in labels):
        return "BOOL"
    if all(type(x) is int for x in labels):
        return "INT64"
    if all(type(x) in (int, float) for x in labels):
        return "FP64"
    return "BYTES"


def _output_names(outputs: Any) -> list[Any] | None:
    """The names of a v2 request's requested ``outputs`` (None: not given)."""
    if outputs is None:
        return None
    if type(outputs) is not list:
        return [outputs]
    return [o.get("name") if type(o) is dict else o for o in outputs]


def _json_objects(inputs: list[Any], fields: list[dict[str, Any]]) -> bool:
    """Is this the one-BYTES-tensor form (JSON objects, one per row)?"""
    t = inputs[0]
    names = {f["name"] for f in fields}
    return (
        len(inputs) == 1
        and type(t) is dict
        and t.get("datatype") == "BYTES"
        and t.get("name") not in names
    )


def _split(payload: bytes, sizes: list[int]) -> list[bytes]:
    out = []
    pos = 0
    for n in sizes:
        out.append(payload[pos : pos + n])
        pos += n
    return out


def _bound(value: Any, missing: float) -> Any:
    """A bound as the codec compares it: a number, a per-column array, or None."""
    if value is None:
        return None
    if isinstance(value, list):
        return np.array([missing if v is None else float(v) for v in value], dtype=np.float64)
    return float(value)


def _at(bound: Any, column: int) -> float | None:
    """Column ``column``'s bound (None when it has none)."""
    if bound is None:
        return None
    if isinstance(bound, np.ndarray):
        v = float(bound[column])
        return None if math.isinf(v) else v
    return float(bound)


def _range(lo: Any, hi: Any) -> str:
    """``lo <= value <= hi`` with only the bounds there are."""
    if lo is not None and hi is not None:
        return f"{lo} <= value <= {hi}"
    if lo is not None:
        return f"value >= {lo}"
    return f"value <= {hi}"


def _le_bytes(arr: Any) -> bytes:
    """Row-major little-endian bytes of an array (the binary tensor extension's layout)."""
    out: bytes = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()
    return out


def _default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def _shape_ok(got: tuple[int, ...], want: tuple[int, ...]) -> bool:
    return len(got) == len(want) and all(w < 0 or g == w for g, w in zip(got, want, strict=True))
