"""Two silver domains' runs commit to ops.silver_ledger side by side (the scheduler runs them at once): a
Delta conflict on the held-rows MERGE is retried on the new snapshot, not a failed task."""

from __future__ import annotations

from types import SimpleNamespace

import pytest


class _Merge:
    """DeltaTable.forPath(...).alias().merge().whenMatchedUpdate().whenNotMatchedInsertAll(): one builder."""

    def __init__(self, failures: list[Exception]):
        self.failures, self.executed = failures, 0

    def alias(self, *_, **__):
        return self

    merge = whenMatchedUpdate = whenNotMatchedInsertAll = alias

    def execute(self):
        if self.failures:
            raise self.failures.pop(0)
        self.executed += 1


def test_a_conflict_on_the_held_rows_merge_is_retried(monkeypatch):
    import delta.exceptions as conflicts
    import delta.tables

    from agrilake.core import tables
    from agrilake.stages import silver

    builder = _Merge([conflicts.ConcurrentAppendException(
        "[DELTA_CONCURRENT_APPEND.WITHOUT_HINT] a concurrent MERGE added data")])
    monkeypatch.setattr(delta.tables.DeltaTable, "forPath", lambda *a, **k: builder)
    monkeypatch.setattr(tables, "path", lambda *a, **k: "/nowhere/ops/silver_ledger")
    monkeypatch.setattr("time.sleep", lambda s: None)
    silver._merge_held(SimpleNamespace(spark=None), SimpleNamespace(alias=lambda *_: None))
    assert builder.executed == 1 and not builder.failures


def test_any_other_error_of_the_merge_is_raised(monkeypatch):
    import delta.tables

    from agrilake.core import tables
    from agrilake.stages import silver

    builder = _Merge([ValueError("not a conflict")])
    monkeypatch.setattr(delta.tables.DeltaTable, "forPath", lambda *a, **k: builder)
    monkeypatch.setattr(tables, "path", lambda *a, **k: "/nowhere/ops/silver_ledger")
    with pytest.raises(ValueError, match="not a conflict"):
        silver._merge_held(SimpleNamespace(spark=None), SimpleNamespace(alias=lambda *_: None))
