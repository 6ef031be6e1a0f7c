"""SNMP poller: switches, UPSes and other SNMP devices → ``controller.store.polls.record_polls``.

Layers, each testable alone: ``transport`` (pysnmp 7, the only network code), ``modules.toml`` +
``modules`` (what to read, as data), ``decode`` (values → snapshot, pure), ``meaning`` (snapshots →
rates, ports, faults), ``poller`` (cadence, concurrency, backoff), ``service`` (store ↔ poller on its
own thread or worker processes), ``trap`` (trap receiver), ``cli`` (``classfleet snmp``).
See README.md in this directory.
"""
