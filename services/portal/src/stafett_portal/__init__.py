"""Stafett – portal: the stafettlogg in a browser, for staff."""
