"""Calibrated multi-view keypoints: the block's corners in each image, and the pose that explains them.

The keypoint head (`PoseNetConfig.head = "keypoints"`) predicts, for every camera, where
the block's 8 corners and its centre fall in that camera's image, with a scale (a
Laplace's b) for each: how far off the head expects itself to be. The pose then comes from
the cameras' known calibration (each sample's K, R, t, in its labels):

1. `triangulate`: each keypoint's world position is the point nearest, in the weighted
   least-squares sense, to the rays through it from every camera (a 3 x 3 solve);
2. `rigid_fit`: the rotation and translation taking the block's model points to those
   positions (weighted Kabsch: one SVD);
3. `refine`: a few Gauss-Newton steps on the 6-DoF pose against every camera's keypoints
   in pixels, each residual weighted by the head's confidence and by a Cauchy weight of
   its own size, so a camera that sees the block badly (or a keypoint read wrong) counts
   less.

Everything is batched torch on (B, cameras, keypoints) tensors. Coordinates the head
predicts are normalized to the image, u' = (u - (W - 1) / 2) / (W / 2) (and v' with H), so
they do not depend on the size the images were rendered or resized to.

The cube's 24 rotational symmetries: corner i is the one at the signs of bit pattern i in
the block's own frame (`block_keypoints`), and the block's faces carry different letters,
so every corner has an identity the head can see. A head that reads a face wrong moves
its corners consistently (a 90-degree error), as a direct head that misreads it would.
"""

from __future__ import annotations

import torch

from dexvision.render.cameras import pixel_centre
from dexvision.sim.scenes import BLOCK_HALF_SIZE
from dexvision.vision.rotations import exp_so3, skew

NUM_KEYPOINTS = 9  # 8 corners and the centre


def block_keypoints(half_size: float = BLOCK_HALF_SIZE) -> torch.Tensor:
    """(9, 3) points in the block's frame: corner i at (+-h, +-h, +-h) by the bits of i (x: bit 0), then the centre."""
    corners = [[(1 if i >> axis & 1 else -1) * half_size for axis in range(3)] for i in range(8)]
    return torch.tensor(corners + [[0.0, 0.0, 0.0]], dtype=torch.float64)


def to_pixels(normalized: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
    """(..., 2) normalized coordinates -> pixels, for image sizes (..., 2) as (width, height)."""
    return normalized * (size / 2.0) + pixel_centre(size)


def to_normalized(pixels: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
    return (pixels - pixel_centre(size)) / (size / 2.0)


def project(points: torch.Tensor, K: torch.Tensor, R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """World points (B, N, 3) seen by cameras K, R, t (B, C, 3, 3 / 3, 3 / 3) -> pixels (B, C, N, 2)."""
    cam = torch.einsum("bcij,bnj->bcni", R, points) + t[:, :, None, :]
    uvw = torch.einsum("bcij,bcnj->bcni", K, cam)
    return uvw[..., :2] / uvw[..., 2:3]


def keypoint_targets(position: torch.Tensor, rotation: torch.Tensor, cameras: dict[str, torch.Tensor],
                     model: torch.Tensor | None = None) -> torch.Tensor:
    """Normalized image coordinates (B, C, 9, 2) of the block's keypoints for poses (B, 3), (B, 3, 3)."""
    model = (block_keypoints() if model is None else model).to(position)
    world = position[:, None, :] + torch.einsum("bij,nj->bni", rotation.to(position), model)
    pixels = project(world, cameras["K"].to(position), cameras["R"].to(position), cameras["t"].to(position))
    return to_normalized(pixels, cameras["size"].to(position)[:, :, None, :])


def triangulate(pixels: torch.Tensor, weights: torch.Tensor, cameras: dict[str, torch.Tensor]) -> torch.Tensor:
    """World points (B, N, 3) nearest to the weighted rays through pixels (B, C, N, 2) from each camera.

    Minimizes sum_c w_c |(I - d_c d_c^T)(X - o_c)|^2 / z_c^2 over X, d_c the unit ray direction and o_c the centre
    of camera c, z_c the point's distance from it (a distance from the ray divided by z_c is an angle: cameras
    near and far count alike; times the focal length squared, it is in pixels); z_c from a first solve without
    it. Needs two cameras or more: one camera's rays do not fix a depth."""
    K, R, t = cameras["K"].to(pixels), cameras["R"].to(pixels), cameras["t"].to(pixels)
    centres = -torch.einsum("bcji,bcj->bci", R, t)  # o = -R^T t
    homogeneous = torch.cat([pixels, torch.ones_like(pixels[..., :1])], -1)
    rays = torch.einsum("bcij,bcnj->bcni", torch.linalg.inv(K), homogeneous)  # camera frame, z = 1
    dirs = torch.einsum("bcji,bcnj->bcni", R, rays / rays.norm(dim=-1, keepdim=True))  # world frame, unit
    eye = torch.eye(3, dtype=pixels.dtype, device=pixels.device)
    proj = eye - dirs[..., :, None] * dirs[..., None, :]  # (B, C, N, 3, 3)
    origin = centres[:, :, None, :, None]  # (B, C, 1, 3, 1)

    def solve(w: torch.Tensor) -> torch.Tensor:
        w = w[..., None, None]
        return torch.linalg.solve((w * proj).sum(1) + 1e-12 * eye, (w * proj @ origin).sum(1)).squeeze(-1)

    points = solve(weights)  # then again, each camera's term divided by the point's squared distance from it
    distance = (points[:, None] - centres[:, :, None]).norm(dim=-1).clamp_min(1e-6)  # (B, C, N)
    focal = (K[..., 0, 0] * K[..., 1, 1])[..., None]  # (B, C, 1): metres off the ray at depth z are f / z pixels
    return solve(weights * focal / distance.square())


def rigid_fit(model: torch.Tensor, world: torch.Tensor, weights: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """(rotation (B, 3, 3), position (B, 3)) minimizing sum_n w_n |R m_n + p - x_n|^2 (weighted Kabsch)."""
    w = weights / weights.sum(-1, keepdim=True).clamp_min(1e-12)
    model = model.to(world).expand(world.shape[0], -1, -1)
    mc = (w[..., None] * model).sum(1)
    xc = (w[..., None] * world).sum(1)
    H = torch.einsum("bn,bni,bnj->bij", w, model - mc[:, None], world - xc[:, None])
    U, _, Vh = torch.linalg.svd(H)
    d = torch.sign(torch.linalg.det(Vh.transpose(-1, -2) @ U.transpose(-1, -2)))
    D = torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), d], -1))
    rotation = Vh.transpose(-1, -2) @ D @ U.transpose(-1, -2)
    return rotation, xc - torch.einsum("bij,bj->bi", rotation, mc)


def refine(rotation: torch.Tensor, position: torch.Tensor, pixels: torch.Tensor, weights: torch.Tensor,
           cameras: dict[str, torch.Tensor], model: torch.Tensor, iterations: int = 5, cauchy_px: float = 2.0
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Gauss-Newton on the pose (B, 3, 3), (B, 3) against observed pixels (B, C, N, 2), residuals weighted by
    `weights` (B, C, N) and by Cauchy weights 1 / (1 + (r / cauchy_px)^2) of their size in pixels."""
    K, R, t = cameras["K"].to(pixels), cameras["R"].to(pixels), cameras["t"].to(pixels)
    model = model.to(pixels)
    for _ in range(iterations):
        offsets = torch.einsum("bij,nj->bni", rotation, model)  # R_o m, world frame
        world = position[:, None] + offsets
        cam = torch.einsum("bcij,bnj->bcni", R, world) + t[:, :, None]
        x, y, z = cam.unbind(-1)
        z = z.clamp_min(1e-6)
        fx, fy = K[:, :, 0, 0, None], K[:, :, 1, 1, None]
        cx, cy = K[:, :, 0, 2, None], K[:, :, 1, 2, None]
        predicted = torch.stack([fx * x / z + cx, fy * y / z + cy], -1)
        residual = predicted - pixels  # (B, C, N, 2)
        zeros = torch.zeros_like(z)
        d_proj = torch.stack([torch.stack([fx / z, zeros, -fx * x / z**2], -1),
                              torch.stack([zeros, fy / z, -fy * y / z**2], -1)], -2)  # (B, C, N, 2, 3)
        d_world = torch.cat([-skew(offsets)[:, None].expand(-1, R.shape[1], -1, -1, -1),
                             torch.eye(3, dtype=pixels.dtype, device=pixels.device).expand(*offsets.shape[:2], 3, 3)
                             [:, None].expand(-1, R.shape[1], -1, -1, -1)], -1)  # (B, C, N, 3, 6)
        J = d_proj @ R[:, :, None] @ d_world  # (B, C, N, 2, 6)
        r2 = residual.square().sum(-1)
        w = (weights / (1.0 + r2 / cauchy_px**2))[..., None, None]
        H = (w * J.transpose(-1, -2) @ J).sum((1, 2)) + 1e-6 * torch.eye(6, dtype=pixels.dtype, device=pixels.device)
        g = (w * J.transpose(-1, -2) @ residual[..., None]).sum((1, 2))
        step = -torch.linalg.solve(H, g).squeeze(-1)
        rotation = exp_so3(step[:, :3]) @ rotation
        position = position + step[:, 3:]
    return rotation, position


def solve_pose(normalized: torch.Tensor, scales: torch.Tensor, cameras: dict[str, torch.Tensor],
               model: torch.Tensor | None = None, iterations: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """The block's (position (B, 3), rotation (B, 3, 3)) from every camera's keypoints: normalized coordinates
    (B, C, N, 2) with scales (B, C, N) (the head's expected error, normalized units; weight 1 / scale^2).
    Computed in float64; no gradient flows through it (the head is trained on its keypoints)."""
    with torch.no_grad():
        dtype = torch.float64
        cams = {k: v.to(normalized.device, dtype) for k, v in cameras.items()}
        model = (block_keypoints() if model is None else model).to(normalized.device, dtype)
        size = cams["size"][:, :, None, :]
        pixels = to_pixels(normalized.to(dtype), size)
        # the head's scales in pixels of each image; its weights are their inverse squares
        scale_px = scales.to(dtype) * size.mean(-1) / 2.0
        weights = 1.0 / scale_px.square().clamp_min(1e-6)
        world = triangulate(pixels, weights, cams)
        rotation, position = rigid_fit(model, world, weights.sum(1))
        rotation, position = refine(rotation, position, pixels, weights / weights.mean((1, 2), keepdim=True), cams,
                                    model, iterations)
    return position.to(normalized.dtype), rotation.to(normalized.dtype)


def keypoint_nll(normalized: torch.Tensor, log_scale: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Laplace negative log-likelihood per keypoint, averaged: |error|_1 / b + 2 log b, b = exp(log_scale)."""
    error = (normalized - target).abs().sum(-1)
    return (error * torch.exp(-log_scale) + 2.0 * log_scale).mean()
