"""Helpers shared by the tests: in-process API and engine, real processes, factories."""
