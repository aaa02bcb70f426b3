"""Judging answers: the item catalog they are checked against, Lu et al.'s parsing, metrics and RL rewards."""
