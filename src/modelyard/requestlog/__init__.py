"""The typed request log: what a served model was asked and answered, and the feedback on it.

Parquet files on the artifact store (a local folder or S3), partitioned by model, version and
hour; features and predictions are typed columns (see :mod:`modelyard.requestlog.schema`).
The serving workers write it with :class:`RequestLogWriter`; monitoring and delivery read it
with :class:`RequestLog`. pyarrow is imported only when a table is built or read.
"""

from __future__ import annotations

from modelyard.requestlog._writer import FlushResult, LogWriteFailed, NamedWriter, RequestLogWriter
from modelyard.requestlog.reader import RequestLog

__all__ = ["FlushResult", "LogWriteFailed", "NamedWriter", "RequestLog", "RequestLogWriter"]
