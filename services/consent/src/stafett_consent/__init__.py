"""Stafett – samtykke og tilgang."""
