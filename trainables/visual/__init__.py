"""Visual world models: a beta-VAE with spatial latents and convolutional predictors, learned from rendered frames."""
