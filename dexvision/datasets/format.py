"""The shard format: how one sample becomes the files of a WebDataset tar, and back.

A sample with global index i is stored under the key `f"{i:09d}"` as
`cam0.jpg` ... `camK.jpg` (or `.png`) and `pose.json`. Everything is written
deterministically (fixed tar headers, fixed JSON key order, fixed JPEG settings),
so a shard's bytes, and its sha256, depend only on (config, seed, indices).
See dexvision/datasets/README.md for the full description.
"""

from __future__ import annotations

import io
import json
import re

import numpy as np
from PIL import Image

from dexvision.errors import UserError
from dexvision.sim.rotations import quat_to_matrix

FORMAT_VERSION = "dexvision-shards/1"
IMAGE_FORMATS = ("jpg", "png")
JPEG_QUALITY = 95
JPEG_SUBSAMPLING = {"444": 0, "420": 2}  # chroma subsampling name -> PIL's code
LABELS = ("full", "lean")
# What a lean pose.json keeps: the pose, the state and the cameras' K, R, t. It leaves out what
# (config, seed, index) or the kept fields recompute: the randomization and physics draws
# (SampleGenerator.generate(index) draws them again), qvel, and the BOP fields (bop_fields()).
LEAN_FIELDS = ("index", "task", "position", "quaternion", "qpos", "attempts", "cameras")
LEAN_CAMERA_FIELDS = ("K", "R", "t", "width", "height")
BOP_OBJ_ID = 1  # the block, in BOP's per-dataset object numbering
_COUNT = re.compile(r"^\s*(\d+(?:\.\d*)?(?:[eE]\d+)?)\s*([kKmMgGbB]?)\s*$")
_SUFFIX = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "b": 10**9}


def parse_count(text: str, flag: str = "--n") -> int:
    """'1000', '250k', '10M', '1e6' -> a positive integer; anything else is a UserError naming `flag`."""
    match = _COUNT.match(str(text))
    if not match:
        raise UserError(f"{flag} must be a positive count like 1000, 250k, 10M or 1e6, got '{text}'")
    value = float(match.group(1)) * _SUFFIX[match.group(2).lower()]
    if value != int(value):
        raise UserError(f"{flag} must be a whole number, got '{text}'")
    if value < 1:
        raise UserError(f"{flag} must be at least 1, got '{text}'")
    return int(value)


def sample_key(index: int) -> str:
    return f"{index:09d}"


def shard_name(shard_id: int) -> str:
    return f"shard-{shard_id:06d}.tar"


def encode_image(image: np.ndarray, fmt: str, quality: int = JPEG_QUALITY, subsampling: str = "444") -> bytes:
    buf = io.BytesIO()
    pil = Image.fromarray(image)
    if fmt == "jpg":
        pil.save(buf, format="JPEG", quality=quality, subsampling=JPEG_SUBSAMPLING[subsampling], optimize=False)
    elif fmt == "png":
        pil.save(buf, format="PNG", compress_level=6)
    else:
        raise UserError(f"unknown image format '{fmt}' (valid: {', '.join(IMAGE_FORMATS)})")
    return buf.getvalue()


def decode_image(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"))


def bop_fields(label: dict) -> list[dict]:
    """Per camera, the pose in BOP's convention: model-to-camera R (row-major, 9) and t (mm), K (9)."""
    R_obj = quat_to_matrix(np.asarray(label["quaternion"]))
    p_obj = np.asarray(label["position"])
    out = []
    for cam in label["cameras"]:
        R, t = np.asarray(cam["R"]), np.asarray(cam["t"])
        out.append({
            "obj_id": BOP_OBJ_ID,
            "cam_K": np.asarray(cam["K"]).reshape(-1).tolist(),
            "cam_R_m2c": (R @ R_obj).reshape(-1).tolist(),
            "cam_t_m2c": ((R @ p_obj + t) * 1000.0).tolist(),
        })
    return out


def pose_record(label: dict) -> dict:
    """The pose.json of a sample: its label with each camera extended by the BOP fields."""
    record = dict(label)
    record["cameras"] = [{**cam, **bop} for cam, bop in zip(label["cameras"], bop_fields(label))]
    return record


def lean_record(label: dict) -> dict:
    """The lean pose.json of a sample: LEAN_FIELDS, and each camera's LEAN_CAMERA_FIELDS."""
    record = {k: label[k] for k in LEAN_FIELDS}
    record["cameras"] = [{k: cam[k] for k in LEAN_CAMERA_FIELDS} for cam in label["cameras"]]
    return record


def encode_sample(label: dict, images: list[np.ndarray], fmt: str, quality: int = JPEG_QUALITY,
                  subsampling: str = "444", labels: str = "full") -> list[tuple[str, bytes]]:
    """(member name, bytes) pairs of one sample, in the order they go into the tar."""
    key = sample_key(label["index"])
    files = [(f"{key}.cam{i}.{fmt}", encode_image(img, fmt, quality, subsampling)) for i, img in enumerate(images)]
    record = pose_record(label) if labels == "full" else lean_record(label)
    pose = json.dumps(record, separators=(",", ":"), allow_nan=False).encode()
    files.append((f"{key}.pose.json", pose))
    return files


def check_pose(pose: dict, n_cameras: int | None = None, labels: str = "full") -> list[str]:
    """Problems with a decoded pose.json of a dataset whose labels are `labels` (empty when it is valid)."""
    problems = []
    required = ("index", "task", "position", "quaternion", "qpos", "cameras") + (("randomization",)
                                                                                 if labels == "full" else ())
    for field in required:
        if field not in pose:
            problems.append(f"missing '{field}'")
    if problems:
        return problems
    if len(pose["position"]) != 3 or not np.all(np.isfinite(pose["position"])):
        problems.append("position is not 3 finite numbers")
    q = np.asarray(pose["quaternion"], dtype=float)
    if q.shape != (4,) or abs(np.linalg.norm(q) - 1.0) > 1e-4:
        problems.append("quaternion is not a unit [w, x, y, z]")
    if n_cameras is not None and len(pose["cameras"]) != n_cameras:
        problems.append(f"{len(pose['cameras'])} cameras, expected {n_cameras}")
    for i, cam in enumerate(pose["cameras"]):
        R = np.asarray(cam.get("R", []), dtype=float)
        if R.shape != (3, 3) or not np.allclose(R @ R.T, np.eye(3), atol=1e-4):
            problems.append(f"camera {i}: R is not a rotation")
        if np.asarray(cam.get("K", []), dtype=float).shape != (3, 3) or len(cam.get("t", [])) != 3:
            problems.append(f"camera {i}: K or t has the wrong shape")
    return problems
