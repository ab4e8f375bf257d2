"""The recovery states of a data category (and of an account overall): a module of its own, so the import
workers (accounts.imports.rows) can check a state without loading the database layer."""
import enum


class RecoveryState(enum.StrEnum):
    UNKNOWN = "unknown"
    AT_RISK = "at_risk"
    RECOVERING = "recovering"
    RECOVERED = "recovered"
    PARTIALLY_RECOVERED = "partially_recovered"
    LOST = "lost"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ").capitalize()
