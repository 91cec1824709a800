"""Conditions written by administrators: workflow inclusion and stored approval conditions."""
