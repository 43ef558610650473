"""Stafett – stafettlogg."""
