"""Rotation math in torch for the pose head: 6D representation, quaternions (wxyz), geodesic angles, the
exponential map.

The head predicts orientation in the continuous 6D representation of Zhou et al.
(CVPR 2019): two 3-vectors turned into a rotation matrix by Gram-Schmidt. Unlike a
quaternion output it has no sign ambiguity (q and -q) and no discontinuity.
"""

from __future__ import annotations

import torch


def rot6d_to_matrix(d6: torch.Tensor) -> torch.Tensor:
    """(..., 6) -> (..., 3, 3) rotation matrices whose first two columns follow d6."""
    a1, a2 = d6[..., :3], d6[..., 3:]
    b1 = torch.nn.functional.normalize(a1, dim=-1)
    b2 = torch.nn.functional.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def matrix_to_rot6d(m: torch.Tensor) -> torch.Tensor:
    return torch.cat([m[..., :, 0], m[..., :, 1]], dim=-1)


def quat_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """(..., 4) [w, x, y, z] -> (..., 3, 3); q and -q give the same matrix."""
    q = torch.nn.functional.normalize(q, dim=-1)
    w, x, y, z = q.unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], dim=-1).reshape(*q.shape[:-1], 3, 3)


def geodesic_angle(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Angle in radians of the rotation taking matrix a to matrix b, in [0, pi]."""
    rel = a.transpose(-1, -2) @ b
    cos = (rel.diagonal(dim1=-2, dim2=-1).sum(-1) - 1.0) / 2.0
    return torch.arccos(cos.clamp(-1.0, 1.0))


def skew(v: torch.Tensor) -> torch.Tensor:
    """(..., 3) -> (..., 3, 3): the matrix of the cross product with v."""
    z = torch.zeros_like(v[..., 0])
    x, y, w = v.unbind(-1)
    return torch.stack([z, -w, y, w, z, -x, -y, x, z], -1).reshape(*v.shape, 3)


def exp_so3(theta: torch.Tensor) -> torch.Tensor:
    """(..., 3) rotation vectors -> (..., 3, 3) rotation matrices (Rodrigues' formula)."""
    angle = theta.norm(dim=-1, keepdim=True)[..., None].clamp_min(1e-12)
    k = skew(theta) / angle
    eye = torch.eye(3, dtype=theta.dtype, device=theta.device)
    return eye + torch.sin(angle) * k + (1 - torch.cos(angle)) * (k @ k)
