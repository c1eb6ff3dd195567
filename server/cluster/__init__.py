"""Scale-out: workers and web processes that meet through Redis (see docs/scaling.md).

``registry`` holds the shared list of source specs, ``leases`` assigns each source to
one worker, ``state`` carries what workers publish (source states, load, model),
``shared_settings`` the rules and monitoring settings; ``worker`` runs sources in a
local Engine and ``remote_engine`` is the web tier's view of the whole cluster.
"""

DEFAULT_CAPACITY = 4   # sources per worker unless --capacity says otherwise
# A dead worker's sources are claimed again within LEASE_TTL + POLL_S; the first new
# prediction follows one window (3 s) later, keeping a takeover well under 10 s.
LEASE_TTL = 3.0
POLL_S = 0.5
