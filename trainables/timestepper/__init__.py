"""A learned time-stepper for N-body integration with an energy gate (docs/domain.md, section 5):
systems and velocity Verlet (:mod:`.nbody`), features (:mod:`.features`), the step network, band
loss and baselines (:mod:`.stepper`), training (:mod:`.train`)."""
