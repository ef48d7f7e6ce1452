"""Checks behind the lemma registry (``proofs_checks.lemmas``): ``core`` (budgets, outcomes, the
property runner, adversarial search, tolerance helpers), ``spectral`` (factorization identity, von
Neumann, Mirsky, Schur, ReLU nuclear norm), ``stationarity`` (balancedness, elimination of H and of
the bias), ``reduction`` (each family's reduction to its scalar problem; class selection), ``cli``
(the ``ncverify lemmas`` subcommand)."""
