"""ONVIF poller: health checks of cameras and NVRs over onvif-zeep-async (issue #6).

- ``check``: one camera's check (clock drift, login, services, profiles and streams, snapshot,
  recording) and ``OnvifChecker``, which runs many concurrently on shared WSDLs and one pool;
- ``events``: optional PullPoint subscriptions (tamper → ``camera.tamper``);
- ``service``: ``OnvifPoller``, the interval loop in its own thread, recording via ``record_polls``;
- ``simulator``: simulated cameras and NVRs (real HTTP/SOAP) for tests, the demo and the benchmark;
- ``demo``: the demo's cameras, registered in the store;
- ``cli``: ``classfleet onvif check``.
"""
