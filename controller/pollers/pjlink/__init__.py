"""PJLink poller: health checks of projectors over PJLink class 1 and 2, TCP 4352 (issue #9).

- ``protocol``: a small asyncio PJLink client (one connection per poll, md5 authentication) and parsers;
- ``check``: one projector's check (power, input, lamps, ERST flags, identity) and ``ProjectorChecker``,
  which runs many concurrently under a bound; lamp end-of-life thresholds come from ``lamp_life.toml``;
- ``service``: ``PJLinkPoller``, the interval loop in its own thread, recording via ``record_polls``;
- ``simulator``: simulated projectors (real TCP, the spec's handshake and ERR replies) for tests and the demo;
- ``demo``: the demo's projectors, registered in the store;
- ``cli``: ``classfleet pjlink check``.
"""
