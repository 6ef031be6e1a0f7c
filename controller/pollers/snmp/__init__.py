"""SNMP poller."""
