"""The stafettlogg aggregate: entries, corrections, retractions and restrictions.

Pure: decide(state, command) -> events and evolve(state, event) -> state, with no I/O and no
clock (time is passed in). It imports no I/O library; a test keeps it that way.
"""

from __future__ import annotations

CONTEXT = "log"
