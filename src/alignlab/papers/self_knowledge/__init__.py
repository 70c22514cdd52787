"""Self-knowledge and calibration (Kadavath et al. 2022): multiple-choice calibration, P(True), P(IK)."""
