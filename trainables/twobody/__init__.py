"""The two-body family: Kepler orbit data and (next) the neural-ODE model that learns it."""
