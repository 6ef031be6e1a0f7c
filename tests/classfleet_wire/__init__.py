"""Unit tests of the wire-contract package ``classfleet_wire``."""
