"""The names of the config groups and run labels: the one list every layer reads.

Plain constants (no Hydra, no torch), so the store and the report can import them too. The options
of each group are not listed here: `configs/<group>/*.yaml` is that registry (`lossbench.config.options`).
"""

from __future__ import annotations

# Groups whose option is a component that `run.build_components` instantiates, in pipeline order.
COMPONENT_GROUPS = ("dataset", "model", "loss", "weighting", "sampler", "stage2")
# The groups a user combines (`lossbench list` and `lossbench run --help` show these, nothing else).
GROUPS = (*COMPONENT_GROUPS, "trainer", "store", "logger", "experiment", "sweep")
# Group choices recorded with every run (`RunRecord.labels`), as `hydra.runtime.choices` names them.
RUN_LABELS = ("experiment", "dataset", "model", "loss", "weighting", "sampler", "stage2", "trainer")
# The run labels that have a column of their own in the store's `runs` table (the rest live in `labels`).
LABEL_COLUMNS = ("experiment", "dataset", "model", "loss", "weighting", "sampler", "trainer")
# Top-level keys of a run config besides its config groups (any group on the search path is allowed
# as a key, so a new group needs no edit here); any other key (`+sede=1`) is read by nothing: refused.
TOP_LEVEL_KEYS = ("seed", "force")
# Top-level config keys that never change what a run computes: where it is stored, logged, kept.
NON_IDENTITY_KEYS = ("store", "force", "logger", "paths", "local", "hydra")
