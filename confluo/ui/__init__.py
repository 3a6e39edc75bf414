"""What the user sees, all fed by the same events: the plan, the live table, plain or JSON lines, the log file."""
