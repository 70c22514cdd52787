"""Constitutional AI (Bai et al. 2022): critique and revision, AI feedback, training, evaluation, and the
HHH comparisons."""
