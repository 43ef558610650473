"""Stafett – varsler."""
