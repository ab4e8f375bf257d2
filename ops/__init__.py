"""Operators: sign-in, roles, audit log, API tokens."""
