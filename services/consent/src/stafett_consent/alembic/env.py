from stafett_consent.projections import metadata
from stafett_shared.db import alembic_env

alembic_env(metadata)
