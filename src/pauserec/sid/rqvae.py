"""RQ-VAE (TIGER / LC-Rec style): MLP encoder -> L residual codebooks -> MLP decoder.

Each level quantizes the current latent residual to its nearest codeword; the straight-through estimator
passes decoder gradients to the encoder; the loss is ``|x - x_hat|^2 + sum_l |sg(r_l) - q_l|^2 +
beta |r_l - sg(q_l)|^2`` (squared norms per item, averaged over the batch). Codebooks are initialised
by residual k-means (faiss) on the latents of the whole training set before the first step (the "first
batch" when ``batch_size >= n``). After every epoch, codes that no item uses are restarted at the residuals
their level quantizes worst (dead-code restart), which keeps codebook utilisation up. Seeded: same data,
config and seed give the same codes (CPU).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..config import RQVAEConfig
from ..errors import ConfigError
from .quantization import Quantization, squared_distances
from .rqkmeans import check_codebook_fits, rq_kmeans


def _mlp(dims: list[int]) -> nn.Sequential:
    """Linear layers through ``dims`` with ReLU between (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _sq(diff: torch.Tensor) -> torch.Tensor:
    """Squared L2 norm per row ``(B, k)`` averaged over the batch (not over features: with unit-norm
    384-d inputs a per-element mean makes the reconstruction term tiny and the encoder collapses)."""
    return (diff**2).sum(1).mean()


class RQVAE(nn.Module):
    """Encoder ``d -> hidden_dims -> latent``, ``levels`` codebooks ``(C, latent)``, mirrored decoder."""

    def __init__(self, in_dim: int, cfg: RQVAEConfig, levels: int, codebook_size: int):
        super().__init__()
        self.beta = cfg.beta
        self.encoder = _mlp([in_dim, *cfg.hidden_dims, cfg.latent_dim])
        self.decoder = _mlp([cfg.latent_dim, *reversed(cfg.hidden_dims), in_dim])
        self.codebooks = nn.ParameterList(
            nn.Parameter(torch.zeros(codebook_size, cfg.latent_dim)) for _ in range(levels)
        )

    @torch.no_grad()
    def init_codebooks(self, x: torch.Tensor, seed: int) -> None:
        """Residual k-means on the latents of ``x`` ``(n, d)`` initialises every codebook."""
        z = self.encoder(x).numpy()
        q = rq_kmeans(z, len(self.codebooks), self.codebooks[0].shape[0], seed=seed, niter=10)
        for cb, cents in zip(self.codebooks, q.centroids):
            cb.copy_(torch.from_numpy(cents))

    @torch.no_grad()
    def restart_dead_codes(self, x: torch.Tensor) -> int:
        """Move every codeword unused by ``x`` ``(n, d)`` onto the residuals its level quantizes worst
        (largest distance to their codeword, one item per dead code); return how many moved."""
        residual, restarted = self.encoder(x), 0
        for cb in self.codebooks:
            dist = torch.cdist(residual, cb)
            idx = dist.argmin(1)
            dead = torch.bincount(idx, minlength=cb.shape[0]) == 0
            n_dead = min(int(dead.sum()), len(residual))
            if n_dead:
                worst = dist.gather(1, idx[:, None]).squeeze(1).argsort(descending=True, stable=True)[:n_dead]
                cb[dead.nonzero().squeeze(1)[:n_dead]] = residual[worst]
                restarted += n_dead
                idx = torch.cdist(residual, cb).argmin(1)
            residual = residual - cb[idx]
        return restarted

    def quantize(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``z`` ``(B, latent)`` -> (straight-through quantized ``(B, latent)``, codes ``(B, L)``,
        quantization loss (scalar), last-level input residual ``(B, latent)``)."""
        residual, z_q, loss, codes = z, torch.zeros_like(z), z.new_zeros(()), []
        last_residual = z
        for cb in self.codebooks:
            last_residual = residual
            idx = torch.cdist(residual, cb).argmin(1)
            q = cb[idx]
            loss = loss + _sq(residual.detach() - q) + self.beta * _sq(residual - q.detach())
            q_st = residual + (q - residual).detach()
            residual = residual - q_st
            z_q = z_q + q_st
            codes.append(idx)
        return z_q, torch.stack(codes, 1), loss, last_residual

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``x`` ``(B, d)`` -> (reconstruction loss, quantization loss, codes ``(B, L)``)."""
        z_q, codes, q_loss, _ = self.quantize(self.encoder(x))
        return _sq(self.decoder(z_q) - x), q_loss, codes


def rq_vae(
    embeddings: np.ndarray, levels: int, codebook_size: int, cfg: RQVAEConfig, seed: int = 0, progress: bool = True
) -> Quantization:
    """Train an RQ-VAE on ``embeddings`` ``(n, d)`` and return its codes ``(n, levels)``.

    ``last_level_distances`` ``(n, C)`` are squared distances in latent residual space. ``info`` holds the
    reconstruction loss (per-item squared error) of the first and last epoch, the per-epoch curve and the
    number of dead-code restarts.
    """
    x_np = np.ascontiguousarray(embeddings, dtype=np.float32)
    if x_np.ndim != 2 or not np.isfinite(x_np).all():
        raise ConfigError(f"embeddings must be a finite (n, d) array, got shape {x_np.shape}")
    check_codebook_fits(len(x_np), codebook_size)
    x = torch.from_numpy(x_np)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = RQVAE(x.shape[1], cfg, levels, codebook_size)
    model.init_codebooks(x, seed)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(seed)
    recon_curve: list[float] = []
    restarts = 0
    bar = tqdm(range(cfg.epochs), desc="rq-vae", disable=not progress)
    for _ in bar:
        epoch_recon = []
        for batch in torch.randperm(len(x), generator=gen).split(cfg.batch_size):
            recon, q_loss, _ = model(x[batch])
            opt.zero_grad()
            (recon + q_loss).backward()
            opt.step()
            epoch_recon.append(recon.item())
        recon_curve.append(float(np.mean(epoch_recon)))
        restarts += model.restart_dead_codes(x)
        bar.set_postfix(recon=f"{recon_curve[-1]:.4g}", restarts=restarts)
    q = _final_quantization(model, x, recon_curve)
    q.info["dead_code_restarts"] = restarts
    return q


@torch.no_grad()
def _final_quantization(model: RQVAE, x: torch.Tensor, recon_curve: list[float]) -> Quantization:
    """Encode all of ``x`` with the trained model and package codes, codebooks and distances."""
    model.eval()
    _, codes, _, last_residual = model.quantize(model.encoder(x))
    last_cb = model.codebooks[-1].numpy()
    distances = squared_distances(last_residual.numpy(), last_cb)
    return Quantization(
        codes=codes.numpy().astype(np.int64),
        level_sizes=[cb.shape[0] for cb in model.codebooks],
        last_level_distances=distances,
        centroids=[cb.detach().numpy().copy() for cb in model.codebooks],
        info={
            "quantizer": "rqvae",
            "recon_first_epoch": recon_curve[0],
            "recon_last_epoch": recon_curve[-1],
            "recon_curve": [round(v, 6) for v in recon_curve],
        },
    )
