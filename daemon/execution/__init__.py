"""Execution requests on approval (SPEC 6.5): destinations, their calendars, the sender."""
