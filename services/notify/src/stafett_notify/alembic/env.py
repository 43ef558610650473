from stafett_notify.projections import metadata, state_metadata
from stafett_shared.db import alembic_env, combined_metadata, position_table

alembic_env(combined_metadata(metadata, state_metadata, position_table.metadata))
