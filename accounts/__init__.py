"""Subscribers, affected accounts, per-category recovery status, the personal page."""
