"""Module `elbo`: the pieces of the variational autoencoder's objective (Generative models 2).

The evidence lower bound of a VAE with encoder ``q(z|x) = N(mu, diag(exp(logvar)))``,
prior ``p(z) = N(0, I)`` and decoder ``p(x|z)``:

    ``log p(x) = ELBO + KL(q(z|x) || p(z|x)) >= ELBO``
    ``ELBO = E_q[log p(x|z)] - KL(q(z|x) || p(z))``  (reconstruction - prior fitting)

Conventions (see the exercise contract):

* Gaussians are diagonal and given by their mean and *log-variance* ``logvar``
  (``variance = exp(logvar)``, ``std = exp(logvar / 2)``);
* latent and data dimensions are the **last axis**: every function sums over it and
  keeps the batch shape in front (inputs ``(..., D)`` give outputs ``(...)``);
* every function works for float32 and float64, returns the input's dtype on the
  input's device, keeps autograd working (no ``.item()``, ``.numpy()``, ``.detach()``)
  and never modifies its inputs in place;
* do not call ``torch.distributions.kl_divergence``: building blocks (``torch.exp``,
  ``F.binary_cross_entropy_with_logits``, ``F.logsigmoid``, ...) are fine.
"""

import math

import torch
import torch.nn.functional as F


def gaussian_kl_standard_normal(mu, logvar):
    """KL divergence from ``N(mu, diag(exp(logvar)))`` to ``N(0, I)``.
    Exercise ``elbo.kl_standard_normal``.

    ``KL = 1/2 * sum_d (mu_d^2 + exp(logvar_d) - 1 - logvar_d)``, the VAE's prior
    fitting term.  It is >= 0, and 0 exactly when ``mu = 0`` and ``logvar = 0``.

    Args:
        mu: means, ``(..., K)``.
        logvar: log-variances, ``(..., K)``.

    Returns:
        ``(...)``: one KL per batch element, summed over the latent axis.
    """
    ### BEGIN SOLUTION
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(dim=-1)
    ### END SOLUTION


def gaussian_kl(mu_q, logvar_q, mu_p, logvar_p):
    """KL divergence ``KL(q || p)`` between diagonal Gaussians.  Exercise ``elbo.kl``.

    With ``q = N(mu_q, diag(exp(logvar_q)))`` and ``p = N(mu_p, diag(exp(logvar_p)))``:

        ``KL = 1/2 * sum_d (exp(logvar_q - logvar_p) + (mu_q - mu_p)^2 / exp(logvar_p)
                             - 1 - (logvar_q - logvar_p))``

    It is >= 0, 0 exactly when ``q = p``, and not symmetric: ``KL(q || p) != KL(p || q)``.

    Args:
        mu_q, logvar_q: mean and log-variance of ``q``, ``(..., K)``.
        mu_p, logvar_p: mean and log-variance of ``p``, ``(..., K)``.

    Returns:
        ``(...)``: one KL per batch element, summed over the latent axis.
    """
    ### BEGIN SOLUTION
    log_ratio = logvar_q - logvar_p
    mahalanobis = (mu_q - mu_p).pow(2) * torch.exp(-logvar_p)
    return 0.5 * (log_ratio.exp() + mahalanobis - 1 - log_ratio).sum(dim=-1)
    ### END SOLUTION


def reparameterize(mu, logvar, eps):
    """The reparameterization trick.  Exercise ``elbo.reparameterize``.

    ``z = mu + exp(logvar / 2) * eps`` with ``eps ~ N(0, I)`` is a sample of
    ``N(mu, diag(exp(logvar)))`` that is a differentiable function of ``mu`` and
    ``logvar`` (the randomness is all in ``eps``, which the caller draws).

    Args:
        mu: means, ``(..., K)``.
        logvar: log-variances, ``(..., K)``.
        eps: standard-normal noise, ``(..., K)``.

    Returns:
        ``z``, ``(..., K)``, differentiable with respect to ``mu`` and ``logvar``.
    """
    ### BEGIN SOLUTION
    std = torch.exp(0.5 * logvar)
    return mu + std * eps
    ### END SOLUTION


def bernoulli_log_likelihood(x, logits):
    """Log-likelihood of binary data under a Bernoulli decoder.  Exercise ``elbo.bernoulli_ll``.

    ``log p(x | z) = sum_d [x_d log sigmoid(l_d) + (1 - x_d) log(1 - sigmoid(l_d))]``
    with ``l = logits``; note ``log(1 - sigmoid(l)) = log sigmoid(-l)``.  Computing
    ``sigmoid`` first and then ``log`` overflows (``log 0 = -inf``, ``0 * -inf = NaN``) for
    large ``|l|``; it must stay finite for logits up to +-1e4.

    Args:
        x: data in ``{0, 1}``, ``(..., D)``, the dtype of ``logits``.
        logits: decoder outputs (pre-sigmoid), ``(..., D)``.

    Returns:
        ``(...)``: one log-likelihood per batch element, summed over the data axis.
    """
    ### BEGIN SOLUTION
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(dim=-1)
    ### END SOLUTION


def gaussian_log_likelihood(x, mean, logvar):
    """Log-likelihood under a diagonal Gaussian decoder.  Exercise ``elbo.gaussian_ll``.

    ``log N(x; mean, diag(exp(logvar))) =
    -1/2 * sum_d (log(2 pi) + logvar_d + (x_d - mean_d)^2 / exp(logvar_d))``,
    the ``log 2 pi`` constant included.

    Args:
        x: data, ``(..., D)``.
        mean: decoder means, ``(..., D)``.
        logvar: decoder log-variances, ``(..., D)``.

    Returns:
        ``(...)``: one log-likelihood per batch element, summed over the data axis.
    """
    ### BEGIN SOLUTION
    return -0.5 * (math.log(2 * math.pi) + logvar + (x - mean).pow(2) * torch.exp(-logvar)).sum(dim=-1)
    ### END SOLUTION


def elbo(x, recon_logits, mu, logvar):
    """Single-sample ELBO of a VAE with a Bernoulli decoder.  Exercise ``elbo.elbo``.

    ``ELBO = log p(x | z) - KL(q(z|x) || p(z))`` with ``p(z) = N(0, I)``,
    ``q(z|x) = N(mu, diag(exp(logvar)))`` and ``recon_logits`` the decoder's output for
    one sample ``z`` of ``q``: ``bernoulli_log_likelihood(x, recon_logits) -
    gaussian_kl_standard_normal(mu, logvar)``.  Training maximises it (the loss is
    ``-elbo(...).mean()``); it never exceeds the reconstruction term.

    Args:
        x: binary data, ``(..., D)``.
        recon_logits: decoder logits, ``(..., D)``.
        mu: encoder means, ``(..., K)``.
        logvar: encoder log-variances, ``(..., K)``.

    Returns:
        ``(...)``: one ELBO per example (not averaged over the batch).
    """
    ### BEGIN SOLUTION
    return bernoulli_log_likelihood(x, recon_logits) - gaussian_kl_standard_normal(mu, logvar)
    ### END SOLUTION
