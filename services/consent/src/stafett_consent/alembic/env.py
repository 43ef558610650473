from stafett_consent.decisions import audit_metadata
from stafett_consent.projections import metadata
from stafett_shared.db import alembic_env, combined_metadata, position_table
from stafett_shared.idempotency import metadata as idempotency_metadata

alembic_env(
    combined_metadata(metadata, audit_metadata, idempotency_metadata, position_table.metadata)
)
