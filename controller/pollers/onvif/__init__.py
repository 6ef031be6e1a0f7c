"""ONVIF poller."""
