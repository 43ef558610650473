"""What every event contract knows besides its fields: its context, the service that owns it
and the subject it may appear on.

A contract's ``subject_pattern`` is the NATS subject of its aggregate under the default prefix,
``stafett.ev.<context>.<aggregate>``, where ``<aggregate>`` is a ``str.format`` template over
the payload's own fields (``{case_id}``, ``org-{org_id}``). A deployment with another prefix
uses :meth:`ContractEvent.subject` with its own; the aggregate part never changes.
"""

from __future__ import annotations

import string
from typing import Any, ClassVar

from stafett_shared.envelope import CONTEXTS, EventData

__all__ = [
    "ORG_ID_PATTERN",
    "POLICY_ID_PATTERN",
    "SUBJECT_PREFIX",
    "ULID_PATTERN",
    "ContractEvent",
    "Encrypted",
]

SUBJECT_PREFIX = "stafett.ev"
ULID_PATTERN = r"^[0-9A-HJKMNP-TV-Z]{26}$"
ORG_ID_PATTERN = r"^[A-Za-z0-9-]{1,32}$"
POLICY_ID_PATTERN = r"^[a-z0-9-]{1,64}$"  # ids from the region document: units, staff
Encrypted = str
"""A field encrypted by ``stafett_shared.crypto.FieldCipher`` (``enc:v1:…``): personal data
never travels in clear text on the stream."""


class ContractEvent(EventData):
    """Base of every published event payload; each context has its own subclass."""

    context: ClassVar[str]
    owner: ClassVar[str | None]
    """The service whose ``source`` (``stafett/<owner>``) may publish it; None: any service."""
    subject_pattern: ClassVar[str]

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        event_type = cls.__dict__.get("event_type")
        if event_type is None:
            return  # a context's base class, not a contract
        context = getattr(cls, "context", None)
        if context not in CONTEXTS or event_type.split(".")[2] != context:
            raise TypeError(f"{event_type} is not in the context of {cls.__name__}")
        if not hasattr(cls, "owner"):
            raise TypeError(f"{cls.__name__} names no owning service")
        prefix = f"{SUBJECT_PREFIX}.{context}."
        pattern = getattr(cls, "subject_pattern", "")
        if not pattern.startswith(prefix):
            raise TypeError(f"{cls.__name__}'s subject pattern is not under {prefix}")
        placeholders = {
            name for _, name, _, _ in string.Formatter().parse(pattern) if name is not None
        }
        if not placeholders or not placeholders <= set(cls.model_fields):
            raise TypeError(f"{cls.__name__}'s subject pattern names a field it does not have")

    @classmethod
    def aggregate_pattern(cls) -> str:
        """The aggregate part of the subject pattern: ``{case_id}``, ``org-{org_id}``."""
        return cls.subject_pattern.removeprefix(f"{SUBJECT_PREFIX}.{cls.context}.")

    def aggregate_id(self) -> str:
        """The aggregate this payload belongs to: the last token of its subject."""
        return self.aggregate_pattern().format_map(
            {name: getattr(self, name) for name in type(self).model_fields}
        )

    def subject(self, prefix: str = SUBJECT_PREFIX) -> str:
        """The subject this payload may appear on."""
        return f"{prefix}.{self.context}.{self.aggregate_id()}"
