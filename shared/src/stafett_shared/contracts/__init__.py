"""Event contracts: one module per context in the kernel.

The per-context modules beside this one hold the payload models, one module per context
(``case``, ``log``, ``consent``, ``directory``, ``access``); each model knows its context, its
owning service and the subject pattern it may appear on (:class:`~.base.ContractEvent`).
Importing this package imports them all, so every process's registry knows every type.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from stafett_shared.contracts import access, case, consent, directory, log
from stafett_shared.contracts.base import ContractEvent

__all__ = ["CONTEXT_BASES", "OWNERS"]

CONTEXT_BASES: tuple[type[ContractEvent], ...] = (
    case.CaseEvent,
    log.LogEvent,
    consent.ConsentEvent,
    directory.DirectoryEvent,
    access.AccessEvent,
)
"""The base class of each context's payload models."""

OWNERS: Mapping[str, str | None] = MappingProxyType(
    {base.context: base.owner for base in CONTEXT_BASES}
)
"""The service that owns each context: its events' ``source`` is ``stafett/<owner>``
(``access``: None, any service). Read from the contract modules."""
