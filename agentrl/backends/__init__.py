"""Other trainers that run agentrl's tasks, agent loop, guards and advantage estimators.

`verl` (the `[verl]` extra): `agentrl train TASK --backend verl` writes verl's config and launches its trainer
on a Ray cluster. Modules named `verl_*` never import verl (the CLI and the reward function use them anywhere);
`agentrl.backends.verl` and `agentrl.backends.verl_algos` import verl and load only where it is installed.
"""
