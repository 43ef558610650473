from stafett_notify.projections import metadata, state_metadata
from stafett_shared.db import alembic_env, combined_metadata, position_table
from stafett_shared.idempotency import metadata as idempotency_metadata

alembic_env(
    combined_metadata(metadata, state_metadata, idempotency_metadata, position_table.metadata)
)
