"""classfleet controller: MQTT ingest, store, pollers, metrics, REST API and console."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("classfleet")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0"
