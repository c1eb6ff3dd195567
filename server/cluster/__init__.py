"""Scale-out: workers and web processes that meet through Redis (see docs/scaling.md).

``registry`` holds the shared list of source specs, ``leases`` assigns each source to
one worker, ``state`` carries what workers publish (source states, load, model),
``shared_settings`` the rules and monitoring settings; ``worker`` runs sources in a
local Engine and ``remote_engine`` is the web tier's view of the whole cluster.
"""
