"""One package a paper: its experiments and pipelines, paper-faithful prompts (each naming its source), its
report Sections and its own helpers. Papers never import each other: what two share lives in the framework
(`alignlab.experiments`) or below. Every module here is imported by discovery (`alignlab.registry`)."""
