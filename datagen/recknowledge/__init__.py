"""The recommendation-knowledge dataset of Cao et al. 2024: retrieval, ranking and rating tasks, MIM, MLM and BPR."""
