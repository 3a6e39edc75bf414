"""Read-only facts: a command plus a pure parser. `plan` runs exactly these probes for real."""
