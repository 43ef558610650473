"""Read models of the log service and the projection that keeps them."""

from __future__ import annotations

from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncSession

from stafett_shared.eventstore import StoredCommit
from stafett_shared.projector import Projection

metadata = MetaData()


class LogProjection(Projection):
    """Applies the events this service reads to its tables."""

    name = "log"
    tables = tuple(metadata.sorted_tables)

    async def apply(
        self, session: AsyncSession, commit: StoredCommit  # noqa: ARG002
    ) -> None:
        # The read models arrive with the service's domain; until then the projection only
        # advances its position, so readiness and rebuild already work end to end.
        return None
