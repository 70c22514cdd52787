"""Model-written evaluations (Perez et al. 2022): the published behaviour evals, their judge, and
generating new ones with a model."""
