"""Sending: windows, rotation and limits, message composition, SMTP transport, the tick."""
