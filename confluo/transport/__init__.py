"""Port 1, a shell on a host: `base` (protocol, results, errors), `remote` (confluo's commands and sudo),
`ssh` and `local` (the implementations)."""
