"""Scenarios shipped with fpsolver (``*.toml``), loaded by name by ``load_scenario``."""
