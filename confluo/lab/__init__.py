"""The lab: a simulated Confluence Data Center cluster for tests, demos and rehearsals.

It never imports confluo's upgrade logic: it judges what was done to it from first principles.
"""
