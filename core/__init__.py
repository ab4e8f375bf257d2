"""Plumbing shared by every domain: database, time, errors, HTTP helpers."""
