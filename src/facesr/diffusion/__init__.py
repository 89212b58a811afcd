"""Noise schedules, losses and samplers.

Every sampler is a plain function ``sampler(denoiser, x, sigmas, ...)`` of one
denoiser interface (k-diffusion / EDM convention)::

    denoiser(x, sigma) -> x0_hat

where ``x = x0 + sigma * noise`` lives in "variance-exploding" coordinates and
``sigmas`` is a decreasing noise grid ending in 0. A DDPM state x_t with
alpha_bar relates to it by x = x_t / sqrt(alpha_bar), sigma^2 = (1 - alpha_bar) / alpha_bar,
so DDPM-trained networks plug in through a wrapper (``EpsDenoiser``).
"""
