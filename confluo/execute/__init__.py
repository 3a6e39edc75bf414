"""Carries out a Plan: the only place that changes anything."""
