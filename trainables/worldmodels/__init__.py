"""World models with inductive biases on controlled physics environments (docs/domain.md, section 4):
environments (:mod:`.envs`), datasets (:mod:`.data`), models (:mod:`.models`), training
(:mod:`.train`) and metrics (:mod:`.metrics`), with the model type a swept parameter."""
