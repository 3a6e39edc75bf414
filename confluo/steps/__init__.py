"""The changes confluo makes, one room per kind. Every step is a frozen value fixed at plan time: it describes
itself for `plan`, tells from the host whether it is already done, applies, and is verified after."""
