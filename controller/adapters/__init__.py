"""Adapters for devices that speak someone else's MQTT dialect (DESIGN §4): smart plugs on Tasmota or
Shelly Gen2+ that power a room's air conditioner. One module per dialect (``tasmota``, ``shelly``), a
registry by ``watched_by`` name (``registry``), and the ingest side (``service``)."""
