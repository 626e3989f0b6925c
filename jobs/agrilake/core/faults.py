"""Fault injection for the exactly-once tests: a stage's process is really killed (SIGKILL) at a named point.

`AGRILAKE_CRASH_AT=<point>` names it; unset (always, outside those tests) it costs one dictionary lookup.
Points: bronze `after_bronze_merge`, `after_quarantine_raw_merge`, `after_quarantine_merge`; silver `after_silver_append`,
`after_silver_quarantine`; gold `after_gold_table` (the first of its four commits),
`before_gold_publication` (all four, not yet recorded); export (agrilake.delivery) `after_export_lock`
(the platform's and date's lock taken), `after_export_parts` (every new object uploaded and verified
beside the old delivery, nothing switched), `after_export_manifest` (the first dataset's manifest
switched, the others not), `after_export_manifests` (all switched, no delivery record yet),
`after_export_delivery_record` (record written, the old objects not yet collected),
`before_export_record` (delivered, ops.export_manifests not written).
"""

from __future__ import annotations

import os
import signal


def crash_point(name: str) -> None:
    if os.environ.get("AGRILAKE_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
