"""The InstructRec dataset of Zhang et al. 2023: the appendix templates filled from a build, with label checks."""
