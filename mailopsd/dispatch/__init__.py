"""Sending: windows, rotation and limits, message composition, SMTP transport, the tick.

The tick (``dispatcher``), where a lead goes after a send (``progression``) and what a
tick did (``report``).
"""
