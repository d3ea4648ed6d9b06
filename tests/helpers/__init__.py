"""Helpers shared by tests in every folder."""
