"""Triangle meshes of a MuJoCo model's visible geoms, read from the compiled model itself.

Each visible geom becomes a `GeomMesh` in its own frame (mesh geoms from the model's
mesh data, primitives through trimesh), so one code path serves both scenes and
any MJCF. Geoms are sorted into roles: the block (textured, rigid), the floor
(re-textured per sample) and the robot (everything else, skinned per sample).
"""

from __future__ import annotations

import dataclasses

import mujoco
import numpy as np
import trimesh
from PIL import Image

from dexvision.sim.scenes import Scene

VISIBLE_GROUPS = (0, 1, 2)  # MuJoCo's default visible geom groups
_FLOOR_MIN_HALF_SIZE = 1.0  # m; an infinite MuJoCo plane (size 0) is drawn this large


@dataclasses.dataclass
class GeomMesh:
    geom_id: int
    role: str  # "robot", "block" or "floor"
    vertices: np.ndarray  # (N, 3) float32, geom frame
    normals: np.ndarray  # (N, 3) float32, geom frame
    faces: np.ndarray  # (F, 3) uint32
    uv: np.ndarray | None = None  # (N, 2) float32 texture coordinates
    rgba: np.ndarray = dataclasses.field(default_factory=lambda: np.ones(4, np.float32))


def _decimate(mesh: trimesh.Trimesh, max_faces: int) -> trimesh.Trimesh:
    """Quadric decimation to about `max_faces` (0: keep all). The renderer is bound by
    triangle count on a CPU rasterizer; a 128-pixel image does not show 40k triangles."""
    if max_faces <= 0 or len(mesh.faces) <= max_faces:
        return mesh
    return mesh.simplify_quadric_decimation(face_count=max_faces)


def _primitive(model: mujoco.MjModel, g: int) -> trimesh.Trimesh:
    size = model.geom_size[g]
    kind = model.geom_type[g]
    T = mujoco.mjtGeom
    if kind == T.mjGEOM_MESH:
        mid = model.geom_dataid[g]
        v0, nv = model.mesh_vertadr[mid], model.mesh_vertnum[mid]
        f0, nf = model.mesh_faceadr[mid], model.mesh_facenum[mid]
        return trimesh.Trimesh(model.mesh_vert[v0:v0 + nv], model.mesh_face[f0:f0 + nf], process=False)
    if kind == T.mjGEOM_BOX:
        return trimesh.creation.box(extents=2 * size)
    if kind == T.mjGEOM_SPHERE:
        return trimesh.creation.icosphere(subdivisions=2, radius=size[0])
    if kind == T.mjGEOM_ELLIPSOID:
        mesh = trimesh.creation.icosphere(subdivisions=2, radius=1.0)
        mesh.apply_scale(size)
        return mesh
    if kind == T.mjGEOM_CAPSULE:
        return trimesh.creation.capsule(height=2 * size[1], radius=size[0], count=[12, 12])
    if kind == T.mjGEOM_CYLINDER:
        return trimesh.creation.cylinder(radius=size[0], height=2 * size[1], sections=16)
    raise NotImplementedError(f"geom type {kind} of '{model.geom(g).name}' is not supported by the renderer")


def _smooth(mesh: trimesh.Trimesh, max_faces: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mesh.merge_vertices()
    mesh = _decimate(mesh, max_faces)
    return (mesh.vertices.astype(np.float32), mesh.vertex_normals.astype(np.float32),
            mesh.faces.astype(np.uint32))


def plane_mesh(half_x: float, half_y: float) -> GeomMesh:
    """A +z-facing quad with UVs spanning [0, 1] once (the texture holds the repeats)."""
    v = np.array([[-half_x, -half_y, 0], [half_x, -half_y, 0], [half_x, half_y, 0], [-half_x, half_y, 0]],
                 np.float32)
    return GeomMesh(-1, "floor", v, np.tile(np.float32([0, 0, 1]), (4, 1)),
                    np.array([[0, 1, 2], [0, 2, 3]], np.uint32),
                    uv=np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float32))


# OpenGL cube-map face conventions (MuJoCo draws cube textures as GL cube maps):
# face order +X, -X, +Y, -Y, +Z, -Z; for each, (major axis, sc axis & sign, tc axis & sign).
_CUBE_FACES = [
    (0, +1, (2, -1), (1, -1)),
    (0, -1, (2, +1), (1, -1)),
    (1, +1, (0, +1), (2, +1)),
    (1, -1, (0, +1), (2, -1)),
    (2, +1, (0, +1), (1, -1)),
    (2, -1, (0, -1), (1, -1)),
]


def textured_box(half: np.ndarray) -> GeomMesh:
    """A box with 4 vertices per face and UVs into a cube atlas (6 faces stacked top to bottom)."""
    verts, normals, uvs, faces = [], [], [], []
    for k, (axis, sign, (sa, ss), (ta, ts)) in enumerate(_CUBE_FACES):
        corners = []
        for a in (-1, 1):
            for b in (-1, 1):
                p = np.zeros(3)
                p[axis] = sign
                u_axis, v_axis = [i for i in range(3) if i != axis]
                p[u_axis], p[v_axis] = a, b
                corners.append(p)
        base = len(verts)
        for p in corners:
            s = (ss * p[sa] + 1) / 2
            t = (ts * p[ta] + 1) / 2
            verts.append(p * half)
            n = np.zeros(3)
            n[axis] = sign
            normals.append(n)
            # Atlas row fraction (k + t) / 6 from the top; pyrender's v runs bottom-up.
            uvs.append([s, 1.0 - (k + t) / 6.0])
        quad = [base, base + 1, base + 3, base + 2]
        # Wind both triangles counter-clockwise seen from outside (normal direction).
        tri = np.array([[quad[0], quad[1], quad[2]], [quad[0], quad[2], quad[3]]])
        e1 = verts[tri[0][1]] - verts[tri[0][0]]
        e2 = verts[tri[0][2]] - verts[tri[0][0]]
        if np.dot(np.cross(e1, e2), normals[base]) < 0:
            tri = tri[:, ::-1]
        faces.extend(tri.tolist())
    return GeomMesh(-1, "block", np.array(verts, np.float32), np.array(normals, np.float32),
                    np.array(faces, np.uint32), uv=np.array(uvs, np.float32))


def cube_texture_atlas(model: mujoco.MjModel, mat_id: int, face_size: int) -> np.ndarray | None:
    """The cube texture of material `mat_id` as an RGB atlas (6 * face_size, face_size, 3)."""
    if mat_id < 0:
        return None
    tex_id = model.mat_texid[mat_id][mujoco.mjtTextureRole.mjTEXROLE_RGB]
    if tex_id < 0 or model.tex_type[tex_id] != mujoco.mjtTexture.mjTEXTURE_CUBE:
        return None
    w, h, c = model.tex_width[tex_id], model.tex_height[tex_id], model.tex_nchannel[tex_id]
    adr = model.tex_adr[tex_id]
    data = model.tex_data[adr:adr + w * h * c].reshape(h, w, c)[..., :3]
    faces = [Image.fromarray(np.ascontiguousarray(data[k * w:(k + 1) * w]))
             .resize((face_size, face_size), Image.Resampling.BOX) for k in range(h // w)]
    return np.concatenate([np.asarray(f) for f in faces], axis=0)


def geom_rgba(model: mujoco.MjModel, g: int) -> np.ndarray:
    mat = model.geom_matid[g]
    return (model.mat_rgba[mat] if mat >= 0 else model.geom_rgba[g]).astype(np.float32)


def scene_meshes(scene: Scene, groups: tuple[int, ...] = VISIBLE_GROUPS,
                 max_faces: int = 0) -> list[GeomMesh]:
    """One GeomMesh per visible geom of the scene: groups in `groups`, not fully transparent.

    Meshes with more than `max_faces` triangles are decimated (0: never); each
    distinct MuJoCo mesh is processed once.

    The floor is kept even when the model draws it transparent: the renderer
    gives it a random texture.
    """
    model = scene.model
    block, floor = model.geom(scene.block_geom).id, model.geom(scene.floor_geom).id
    out = []
    cache: dict[int, tuple] = {}
    for g in range(model.ngeom):
        rgba = geom_rgba(model, g)
        if g == floor:
            hx, hy = model.geom_size[g][:2]
            mesh = plane_mesh(max(hx, _FLOOR_MIN_HALF_SIZE), max(hy, _FLOOR_MIN_HALF_SIZE))
        elif model.geom_group[g] not in groups or rgba[3] <= 0:
            continue
        elif g == block and model.geom_type[g] == mujoco.mjtGeom.mjGEOM_BOX:
            mesh = textured_box(model.geom_size[g])
        else:
            key = model.geom_dataid[g] if model.geom_type[g] == mujoco.mjtGeom.mjGEOM_MESH else -1 - g
            if key not in cache:
                cache[key] = _smooth(_primitive(model, g), max_faces)
            v, n, f = cache[key]
            mesh = GeomMesh(g, "block" if g == block else "robot", v, n, f)
        mesh.geom_id = g
        mesh.rgba = rgba
        out.append(mesh)
    return out
