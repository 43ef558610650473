from stafett_case.projections import metadata
from stafett_shared.db import alembic_env, combined_metadata, position_table
from stafett_shared.idempotency import metadata as idempotency_metadata

alembic_env(combined_metadata(metadata, idempotency_metadata, position_table.metadata))
