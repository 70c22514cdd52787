"""The moral self-correction suite (Ganguli et al. 2023): BBQ, Winogender, law school and discrim-eval on
each model of a ladder, under the question alone (q), with the instruction (q+if) and with chain of thought
(q+if+cot); Winogender also with match stats.

The headline of each is the paper's: BBQ's ambiguous-context bias score (Fig. 1 left), Winogender's rho
(Fig. 1 middle), law school's P(yes | Black) - P(yes | white) (Fig. 1 right); discrim-eval's mean |logit gap|
to the baseline person (this project's addition). `--limit N` means what it means in each experiment run
alone: N BBQ questions, N Winogender sentences, N students, N decision questions.
"""

from alignlab.experiments import register_suite
from alignlab.experiments.base import Member, Suite

SELF_CORRECTION = register_suite(
    Suite(
        name="self-correction",
        help="the moral self-correction suite: BBQ, Winogender, law school, discrim-eval (Ganguli et al. 2023)",
        description=" ".join(__doc__.split()),
        members=(
            Member("bbq", "bias_score.ambig"),
            Member("winogender", "rho"),
            Member("law-school", "discrimination"),
            Member("discrim-eval", "mean_abs_logit_gap"),
        ),
    )
)
