"""The camera rig: cameras around the palm like the cage of the original setup.

Cameras follow OpenCV (x right, y down, z forward); `R`, `t` map world to camera
(x_cam = R @ x_world + t) and `K` holds the intrinsics with pixel centres at
integer coordinates. pyrender's OpenGL camera is derived here and nowhere else.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from dexvision.config import Range, check_bounds


@dataclasses.dataclass
class CameraConfig:
    """Nominal placement (spherical around the look-at point) and its per-sample jitter."""

    count: int = 3
    distance: float = 0.30  # m from the look-at point
    elevation_deg: float = 40.0  # above the horizontal
    arc_deg: float = 220.0  # azimuth span the cameras are spread over, centred on the fingertips
    azimuths_deg: list[float] | None = None  # explicit azimuths override count/arc spreading
    fov_deg: float = 32.0  # vertical field of view
    position_jitter: float = 0.02  # m, std per axis
    look_at_jitter: float = 0.008  # m, std per axis
    roll_jitter_deg: float = 6.0  # std of the roll about the optical axis
    fov_jitter_deg: Range = (-5.0, 5.0)

    def __post_init__(self):
        if self.azimuths_deg is not None:
            self.count = len(self.azimuths_deg)
        if self.count < 1:
            raise ValueError("cameras.count must be >= 1")
        if self.distance <= 0:
            raise ValueError("cameras.distance must be > 0")
        if self.fov_deg + self.fov_jitter_deg[0] <= 1.0 or self.fov_deg + self.fov_jitter_deg[1] >= 179.0:
            raise ValueError("cameras.fov_deg with its jitter must stay within (1, 179) degrees")
        check_bounds(self, {"elevation_deg": (-90.0, 90.0), "position_jitter": (0.0, self.distance),
                            "look_at_jitter": (0.0, self.distance), "roll_jitter_deg": (0.0, 180.0)})

    def azimuths(self) -> np.ndarray:
        """Azimuths in degrees; -90 looks from the fingertips (-y) back at the palm."""
        if self.azimuths_deg is not None:
            return np.asarray(self.azimuths_deg, dtype=np.float64)
        if self.count == 1:
            return np.array([-90.0])
        return -90.0 + np.linspace(-self.arc_deg / 2, self.arc_deg / 2, self.count)


def spherical_position(look_at: np.ndarray, distance: float, azimuth_deg: float,
                       elevation_deg: float) -> np.ndarray:
    az, el = np.radians(azimuth_deg), np.radians(elevation_deg)
    offset = np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
    return np.asarray(look_at, dtype=np.float64) + distance * offset


def sample_cameras(cfg: CameraConfig, look_at: np.ndarray, rng: np.random.Generator | None) -> list[dict]:
    """Per-camera parameters: position, look-at point, roll and field of view. No rng: nominal."""
    cams = []
    for az in cfg.azimuths():
        pos = spherical_position(look_at, cfg.distance, az, cfg.elevation_deg)
        target = np.asarray(look_at, dtype=np.float64).copy()
        roll, fov = 0.0, cfg.fov_deg
        if rng is not None:
            pos = pos + rng.normal(0.0, cfg.position_jitter, 3)
            target = target + rng.normal(0.0, cfg.look_at_jitter, 3)
            roll = float(rng.normal(0.0, cfg.roll_jitter_deg))
            fov = cfg.fov_deg + float(rng.uniform(*cfg.fov_jitter_deg))
        cams.append({"position": pos.tolist(), "look_at": target.tolist(), "roll_deg": roll, "fov_deg": fov})
    return cams


def look_at_rotation(position: np.ndarray, target: np.ndarray, roll_deg: float = 0.0) -> np.ndarray:
    """World->camera rotation R (OpenCV) for a camera at `position` looking at `target`, world up +z."""
    z = np.asarray(target, dtype=np.float64) - np.asarray(position, dtype=np.float64)
    z /= np.linalg.norm(z)
    up = np.array([0.0, 0.0, 1.0])
    if abs(np.dot(z, up)) > 0.999:  # looking straight up or down: any horizontal x will do
        up = np.array([0.0, 1.0, 0.0])
    x = np.cross(z, up)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    c, s = np.cos(np.radians(roll_deg)), np.sin(np.radians(roll_deg))
    x, y = c * x + s * y, -s * x + c * y
    return np.stack([x, y, z])  # rows: camera axes in world coordinates


def pixel_centre(size):
    """The image centre in pixels along an axis of `size` pixels (OpenCV convention: pixel centres at integers,
    so the centre of a 64 px axis is 31.5). A number, an array or a tensor."""
    return (size - 1.0) / 2.0


def intrinsics(fov_deg: float, width: int, height: int) -> np.ndarray:
    """K for a vertical field of view, square pixels, principal point at the image centre."""
    f = (height / 2.0) / np.tan(np.radians(fov_deg) / 2.0)
    return np.array([[f, 0.0, pixel_centre(width)], [0.0, f, pixel_centre(height)], [0.0, 0.0, 1.0]])


def camera_label(cam: dict, width: int, height: int) -> dict:
    """K, R, t (world->camera, OpenCV, metres), width and height of one sampled camera."""
    R = look_at_rotation(np.array(cam["position"]), np.array(cam["look_at"]), cam["roll_deg"])
    t = -R @ np.asarray(cam["position"])
    return {"K": intrinsics(cam["fov_deg"], width, height), "R": R, "t": t, "width": width, "height": height}


def project(K: np.ndarray, R: np.ndarray, t: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Pixel coordinates (u, v) of world points (N, 3) (OpenCV: u right, v down)."""
    cam = np.asarray(points) @ R.T + t
    uvw = cam @ K.T
    return uvw[..., :2] / uvw[..., 2:3]


# OpenCV camera axes (x right, y down, z forward) -> OpenGL (x right, y up, z backward).
_CV_TO_GL = np.diag([1.0, -1.0, -1.0])


def opengl_camera_pose(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """4x4 camera-to-world pose in pyrender's OpenGL convention from OpenCV world->camera R, t."""
    pose = np.eye(4)
    pose[:3, :3] = R.T @ _CV_TO_GL
    pose[:3, 3] = -R.T @ t
    return pose


def opengl_intrinsics(K: np.ndarray) -> tuple[float, float, float, float]:
    """(fx, fy, cx, cy) for pyrender.IntrinsicsCamera: OpenGL puts pixel centres at i + 0.5."""
    return float(K[0, 0]), float(K[1, 1]), float(K[0, 2]) + 0.5, float(K[1, 2]) + 0.5
