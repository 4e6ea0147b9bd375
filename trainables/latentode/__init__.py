"""Latent ODEs for sparse, irregular, noisy observations: a recurrent encoder run backwards over the context gives q(z0), an ODE in latent space and a decoder give the trajectory (:mod:`.model`)."""
