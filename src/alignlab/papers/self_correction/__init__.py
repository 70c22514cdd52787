"""Moral self-correction (Ganguli et al. 2023): BBQ, Winogender, law-school admissions, discrim-eval,
and the suite that runs them together."""
