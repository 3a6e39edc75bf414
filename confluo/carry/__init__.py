"""Customization files carried into a new release by a three-way merge: pure logic, no I/O.

base = the old release's stock file, mine = the file in the old installation, theirs = the new release's stock
file. `decide` picks what is written (theirs, mine, a merge, an inventory's resolution) or reports a conflict;
`merge` does the merge with merge3; `validate` checks a result before it may be written.
"""
