"""Backup and restore of a controller (docs/deployment.md, "Backup and restore"):
`crypto.py` the encrypted container, `archive.py` what goes in and how it comes back,
`nightly.py` the scheduled backup with retention."""
