"""Stafett – sak."""
