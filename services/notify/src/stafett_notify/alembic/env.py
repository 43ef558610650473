from stafett_notify.projections import metadata
from stafett_shared.db import alembic_env

alembic_env(metadata)
