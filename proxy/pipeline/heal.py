"""Staleness: a tenant's table changed behind tenantgate's back. One policy, two signs.

1. **Before running** — the statement names a column the cached shape lacks
   (``UnknownColumn`` from the rewriter). The column may have been added since the
   table was cached: ``revalidate`` reads the statement's tables again, unless they
   were read within the last second, and the statement is validated once more. A
   flood of requests naming a column that really is absent costs at most one catalog
   read per table per second.
2. **While running** — the backend says a table or column is missing
   (``BackendObjectMissing``): what we cached is gone. ``after_missing`` forgets the
   tenant's tables, so this and the next requests validate against the catalog as it
   is now. A read is then prepared and run once more; a write is not, because it may
   have had effects before failing (a trigger, an earlier statement of a batch) and
   its caller decides.

Every outcome is counted in ``tenantgate_metadata_heals_total{outcome}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from proxy.metrics import Metrics
from tenancy.metadata import MetadataCache, TableMetadata

if TYPE_CHECKING:
    import rewriter
    from tenancy.location import TenantLocation

__all__ = ["Heal"]


class Heal:
    def __init__(self, metadata: MetadataCache, metrics: Metrics) -> None:
        self._metadata = metadata
        self._metrics = metrics

    def record(self, outcome: str) -> None:
        self._metrics.record_heal(outcome)

    def revalidate(
        self, location: TenantLocation, shapes: Mapping[str, TableMetadata | None]
    ) -> dict[str, TableMetadata | None] | None:
        """The statement's tables read afresh (blocking), or ``None`` if none was due."""
        present = [name for name, shape in shapes.items() if shape is not None]
        if not self._metadata.refresh_if_quiet(location, present):
            return None
        fresh = {name: self._metadata.get(location, name) for name in shapes}
        self.record("still_unknown" if fresh == shapes else "revalidated")
        return fresh

    def after_missing(self, location: TenantLocation, plan: rewriter.Plan) -> bool:
        """Forget the tenant's tables; whether the statement may be run once more."""
        self._metadata.refresh(location)
        if plan.statement_class != "read":
            self.record("write_not_rerun")
            return False
        return True
