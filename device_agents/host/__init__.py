"""The station host: what every station kind shares (link, gate, store and outbox, events,
diagnostics, updater, birth and Last Will, telemetry), with the kind's work done by a role."""
