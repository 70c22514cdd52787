"""Red teaming language models (Ganguli et al. 2022): the red-team pipeline, the harm judge, published
transcripts and the map of attacks."""
