"""What the platforms receive and how it reaches their buckets; the export stage (agrilake.stages.export)
reads gold and drives these.

- `policy`: which datasets each platform gets, the privacy guard, and the small-cell rules of gov
  datasets (pure Arrow, no Spark, no S3);
- `contract`: the ODCS data contract published with each delivery (and `agrilake contract`);
- `protocol`: the S3 delivery protocol, given a boto3 client: new objects beside the old delivery,
  verified, the manifest switched last, the platform's delivery record, garbage collection;
- `lock`: one export at a time per platform and date, a lease object in the platform's bucket.
"""

from __future__ import annotations


class ExportError(RuntimeError):
    """An export cannot proceed; the message says why and what to do. The platform keeps its previous
    complete delivery."""
