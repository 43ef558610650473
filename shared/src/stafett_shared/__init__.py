"""Stafett shared kernel. Services import from here; modules not listed are private.

Importing this package is cheap and pure: the names below load their module on first use, so
a domain module may import ``stafett_shared.envelope`` without pulling in NATS or FastAPI.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stafett_shared.auth import DevIssuer, Principal, PrincipalDep, TokenVerifier
    from stafett_shared.canonical import canonical_json
    from stafett_shared.crypto import FieldCipher, KeyShredded, KeyStore
    from stafett_shared.envelope import CloudEvent, EventData, EventRegistry, registry
    from stafett_shared.eventstore import (
        AppendResult,
        ConcurrencyConflict,
        DuplicateAppend,
        EventStore,
        EventStoreError,
        StoredCommit,
        StoreUnavailable,
        StreamMisconfigured,
    )
    from stafett_shared.problems import Problem
    from stafett_shared.projector import Projection, ProjectionBehind, Projector
    from stafett_shared.service import Runtime, ServiceSpec, create_app, run_service
    from stafett_shared.settings import CommonSettings, ServiceSettings

_LAZY: dict[str, str] = {
    "AppendResult": "stafett_shared.eventstore",
    "CloudEvent": "stafett_shared.envelope",
    "CommonSettings": "stafett_shared.settings",
    "ConcurrencyConflict": "stafett_shared.eventstore",
    "DevIssuer": "stafett_shared.auth",
    "DuplicateAppend": "stafett_shared.eventstore",
    "EventData": "stafett_shared.envelope",
    "EventRegistry": "stafett_shared.envelope",
    "EventStore": "stafett_shared.eventstore",
    "EventStoreError": "stafett_shared.eventstore",
    "FieldCipher": "stafett_shared.crypto",
    "KeyShredded": "stafett_shared.crypto",
    "KeyStore": "stafett_shared.crypto",
    "Principal": "stafett_shared.auth",
    "PrincipalDep": "stafett_shared.auth",
    "Problem": "stafett_shared.problems",
    "Projection": "stafett_shared.projector",
    "ProjectionBehind": "stafett_shared.projector",
    "Projector": "stafett_shared.projector",
    "Runtime": "stafett_shared.service",
    "ServiceSettings": "stafett_shared.settings",
    "ServiceSpec": "stafett_shared.service",
    "StoreUnavailable": "stafett_shared.eventstore",
    "StoredCommit": "stafett_shared.eventstore",
    "StreamMisconfigured": "stafett_shared.eventstore",
    "TokenVerifier": "stafett_shared.auth",
    "canonical_json": "stafett_shared.canonical",
    "create_app": "stafett_shared.service",
    "registry": "stafett_shared.envelope",
    "run_service": "stafett_shared.service",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'stafett_shared' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "AppendResult",
    "CloudEvent",
    "CommonSettings",
    "ConcurrencyConflict",
    "DevIssuer",
    "DuplicateAppend",
    "EventData",
    "EventRegistry",
    "EventStore",
    "EventStoreError",
    "FieldCipher",
    "KeyShredded",
    "KeyStore",
    "Principal",
    "PrincipalDep",
    "Problem",
    "Projection",
    "ProjectionBehind",
    "Projector",
    "Runtime",
    "ServiceSettings",
    "ServiceSpec",
    "StoreUnavailable",
    "StoredCommit",
    "StreamMisconfigured",
    "TokenVerifier",
    "canonical_json",
    "create_app",
    "registry",
    "run_service",
]
