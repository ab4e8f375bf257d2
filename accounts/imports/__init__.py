"""The import pipeline for affected accounts and recovery status: CSV decoding and row errors (`csvio`), the
two importers (`account_import`, `recovery_import`), the job that stages, validates and merges in one
transaction (`service`), background runs for the console and the API (`jobs`), and the deletion of old
uploads and error files (`retention`)."""
