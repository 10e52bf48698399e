"""Prefect flows: thin, typed wrappers around ``xvlm`` (which never imports Prefect)."""
