"""Fine-tuning with TRL and PEFT (LoRA): supervised fine-tuning on revisions, a preference model on AI labels,
and preference optimisation (DPO) of a policy. `common` holds what the three share."""
