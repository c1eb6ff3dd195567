"""The values the dashboard shares with the server, defined once here and rendered into the page.

``index.html`` embeds ``contract()`` as JSON (``<script id="contract">``) and
``static/js/contract.js`` reads it, so the browser never re-types a state name, a tag
count, a rule default or a source kind. The event payloads themselves are described in docs/events.md.
"""

from __future__ import annotations

from server.audio.source import SourceState
from server.config import DEFAULT_HOP_SECONDS, MAX_HOP_SECONDS, MIN_HOP_SECONDS
from server.monitor.alerts import DEFAULTS as RULE_DEFAULTS
from server.monitor.segments import UNCERTAIN
from server.sinks.payloads import TOP_TAGS
from server.source_kinds import KINDS

# States in which a source is still being read (or retried): the dashboard offers Stop.
LIVE_STATES = (SourceState.STARTING, SourceState.RUNNING, SourceState.RECONNECTING, SourceState.LOST)
# Hops the picker offers; the server accepts any hop within its bounds.
HOP_CHOICES = tuple(h for h in (0.5, 1.0, 2.0, 3.0) if MIN_HOP_SECONDS <= h <= MAX_HOP_SECONDS)


def contract() -> dict:
    """Everything ``static/js/contract.js`` exports, as JSON-ready values."""
    return {
        "source_states": {s.name: str(s) for s in SourceState},
        "live_states": [str(s) for s in LIVE_STATES],
        "top_tags": TOP_TAGS,
        "rule_defaults": RULE_DEFAULTS,
        "hop": {"default": DEFAULT_HOP_SECONDS, "choices": list(HOP_CHOICES)},
        "uncertain": UNCERTAIN,
        # The picker's tabs, in order: each kind's ``page`` entry (server/source_kinds.py).
        "source_kinds": [{"kind": k.name, **k.page} for k in KINDS.values() if k.page],
    }
