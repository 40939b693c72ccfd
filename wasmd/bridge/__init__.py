"""Bridges that carry calls from other machines to a local daemon (DESIGN.md section 10).

A bridge is an ordinary socket client of the daemon, run as its own process: the daemon itself
stays AF_UNIX-only and offline. ``expose`` holds the wire names and the allow-list (pure
functions); ``nats`` runs the NATS bridge (``wasmd bridge nats``), which needs the ``bridge``
extra (nats-py). The CLI imports these only inside the ``bridge`` command.
"""
