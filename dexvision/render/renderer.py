"""The renderer: a MuJoCo state and randomization parameters in, images from every camera out.

Speed comes from drawing few meshes. pyrender's cost is per draw call (about 1 ms of
Python per mesh on 2 cores), not per pixel, so the scene holds three meshes: the
whole robot as one vertex-coloured mesh re-posed on the CPU each sample (every
link moved by its MuJoCo pose: one upload, then one draw per camera), the block
(rigid: only its node pose changes) and the floor. The lights, materials and
textures change per sample; the GL programs and buffers of the block and floor
are made once, and the textures of the last TEXTURE_CACHE appearances stay uploaded
(a policy's environments are rendered in turn, each with one appearance per episode).
"""

from __future__ import annotations

import collections
import dataclasses

import mujoco
import numpy as np

from dexvision.config import check_choice
from dexvision.render.cameras import camera_label, opengl_camera_pose, opengl_intrinsics
from dexvision.render.geometry import VISIBLE_GROUPS, GeomMesh, cube_texture_atlas, scene_meshes
from dexvision.render.gl import SHADINGS, configure_headless_gl, create_offscreen
from dexvision.render.images import floor_texture, postprocess, recolor
from dexvision.render.randomization import RandomizationConfig
from dexvision.sim.scenes import Scene

TEXTURE_CACHE = 256  # textures kept uploaded: the block's and the floor's of 128 environments


@dataclasses.dataclass
class RenderConfig:
    image_size: int = 128
    block_texture_size: int = 64  # texels per block face
    floor_texture_size: int = 128
    geom_groups: tuple[int, ...] = VISIBLE_GROUPS
    max_mesh_faces: int = 300  # decimate robot meshes above this many triangles (0: never)
    msaa_samples: int = 0  # multisample anti-aliasing; 4 halves the speed on a CPU rasterizer
    shading: str = "lean"  # "lean" (Lambert + Blinn-Phong, fast) or "pbr" (pyrender's GGX shader)
    randomization: RandomizationConfig = dataclasses.field(default_factory=RandomizationConfig)

    def __post_init__(self):
        if not 8 <= self.image_size <= 4096:
            raise ValueError(f"image_size must be within [8, 4096], got {self.image_size}")
        check_choice("shading", self.shading, SHADINGS)
        if self.msaa_samples not in (0, 2, 4, 8):
            raise ValueError(f"msaa_samples must be 0, 2, 4 or 8, got {self.msaa_samples}")
        if self.block_texture_size < 4 or self.floor_texture_size < 4:
            raise ValueError("texture sizes must be >= 4")


def _light_pose(direction: np.ndarray) -> np.ndarray:
    """A pose whose -z axis points along `direction` (pyrender lights shine down their -z)."""
    z = -np.asarray(direction, dtype=np.float64)
    z /= np.linalg.norm(z)
    helper = np.array([1.0, 0.0, 0.0]) if abs(z[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    x = np.cross(helper, z)
    x /= np.linalg.norm(x)
    pose = np.eye(4)
    pose[:3, :3] = np.stack([x, np.cross(z, x), z], axis=1)
    return pose


def _ordered_scene_class(pyrender):
    """A pyrender Scene whose lights reach the shader in a fixed order.

    pyrender hands lights over as a set ordered by object address, so the order in
    which the shader adds up their contributions, and with it the last bit of some
    pixels, would change from run to run. Our light nodes are named light00,
    light01, ...: sorted by name, the pixels are a pure function of the parameters.
    """

    class OrderedScene(pyrender.Scene):
        """... and whose world poses are computed once per change: pyrender asks for each light's pose again
        for every mesh and camera. Poses change only through set_pose, add_node and remove_node here."""

        @property
        def light_nodes(self):
            nodes = self.point_light_nodes | self.spot_light_nodes | self.directional_light_nodes
            return sorted(nodes, key=lambda n: n.name or "")

        def get_pose(self, node):
            poses = self.__dict__.setdefault("_world_poses", {})
            pose = poses.get(node)
            if pose is None:
                pose = poses[node] = super().get_pose(node)
            return pose.copy()

        def set_pose(self, node, pose):
            self.__dict__.pop("_world_poses", None)
            super().set_pose(node, pose)

        def add_node(self, node, parent_node=None):
            self.__dict__.pop("_world_poses", None)
            super().add_node(node, parent_node)

        def remove_node(self, node):
            self.__dict__.pop("_world_poses", None)
            super().remove_node(node)

    return OrderedScene


def _pose(pos: np.ndarray, mat: np.ndarray) -> np.ndarray:
    pose = np.eye(4)
    pose[:3, :3] = mat.reshape(3, 3)
    pose[:3, 3] = pos
    return pose


class Renderer:
    """Renders one scene from its camera rig. Not thread-safe: GL work stays on the creating thread."""

    def __init__(self, scene: Scene, cfg: RenderConfig | None = None):
        configure_headless_gl()  # before pyrender (and PyOpenGL) load: they read the platform once
        import pyrender  # noqa: PLC0415 - after the GL platform is configured

        self._pr = pyrender
        self.scene = scene
        self.cfg = cfg or RenderConfig()
        self.model = scene.model
        self.data = mujoco.MjData(self.model)
        size = self.cfg.image_size
        self._size = size
        self._offscreen = create_offscreen(size, size, self.cfg.msaa_samples, self.cfg.shading)
        self.pr_scene = _ordered_scene_class(pyrender)(bg_color=np.zeros(4), ambient_light=np.zeros(3))
        meshes = scene_meshes(scene, self.cfg.geom_groups, self.cfg.max_mesh_faces)
        self._setup_robot([m for m in meshes if m.role == "robot"])
        self._setup_block(next(m for m in meshes if m.role == "block"))
        self._setup_floor(next(m for m in meshes if m.role == "floor"))
        self._camera = pyrender.IntrinsicsCamera(1.0, 1.0, 0.5, 0.5, znear=0.02, zfar=10.0)
        self._camera_node = self.pr_scene.add(self._camera, pose=np.eye(4))
        self._light_nodes: list = []
        self._robot_node = None
        self._textures: collections.OrderedDict = collections.OrderedDict()  # see _texture

    # -- scene set-up -------------------------------------------------------------------
    def _setup_robot(self, parts: list[GeomMesh]) -> None:
        self._robot_geoms = np.array([p.geom_id for p in parts], dtype=np.int64)
        self._robot_local_v = [p.vertices for p in parts]
        self._robot_local_n = [p.normals for p in parts]
        counts = [len(p.vertices) for p in parts]
        self._robot_slices = np.cumsum([0] + counts)
        offsets = self._robot_slices[:-1]
        self._robot_faces = np.concatenate([p.faces + o for p, o in zip(parts, offsets)]).astype(np.uint32)
        self._robot_base_rgb = np.stack([p.rgba[:3] for p in parts])
        n = int(self._robot_slices[-1])
        self._robot_v = np.empty((n, 3), np.float32)
        self._robot_n = np.empty((n, 3), np.float32)
        self._robot_data = np.zeros((n, 10), np.float32)
        self._robot_colour_key = None
        self._robot_material = self._pr.MetallicRoughnessMaterial(baseColorFactor=np.ones(4))

    def _setup_block(self, mesh: GeomMesh) -> None:
        pr = self._pr
        self._block_geom = mesh.geom_id
        self._block_atlas = cube_texture_atlas(
            self.model, self.model.geom_matid[mesh.geom_id], self.cfg.block_texture_size)
        self._block_material = pr.MetallicRoughnessMaterial(
            baseColorFactor=mesh.rgba if self._block_atlas is None else np.ones(4), metallicFactor=0.0)
        prim = pr.Primitive(positions=mesh.vertices, normals=mesh.normals, indices=mesh.faces,
                            texcoord_0=mesh.uv if self._block_atlas is not None else None,
                            material=self._block_material)
        self._block_node = self.pr_scene.add(pr.Mesh([prim]))

    def _setup_floor(self, mesh: GeomMesh) -> None:
        pr = self._pr
        self._floor_material = pr.MetallicRoughnessMaterial(baseColorFactor=np.ones(4), metallicFactor=0.0)
        prim = pr.Primitive(positions=mesh.vertices, normals=mesh.normals, indices=mesh.faces,
                            texcoord_0=mesh.uv, material=self._floor_material)
        mujoco.mj_kinematics(self.model, self.data)
        g = self.model.geom(self.scene.floor_geom).id
        self.pr_scene.add(pr.Mesh([prim]), pose=_pose(self.data.geom_xpos[g], self.data.geom_xmat[g]))

    # -- per-sample updates -------------------------------------------------------------
    def set_state(self, qpos: np.ndarray) -> None:
        """Pose every body from `qpos` (forward kinematics only: the state is taken as given)."""
        if len(qpos) != self.model.nq:
            raise ValueError(f"qpos has {len(qpos)} values, the {self.scene.task} model needs {self.model.nq}")
        self.data.qpos[:] = qpos
        mujoco.mj_kinematics(self.model, self.data)
        d = self.data
        g = self._block_geom
        self.pr_scene.set_pose(self._block_node, _pose(d.geom_xpos[g], d.geom_xmat[g]))

    def _update_robot(self, hand: dict) -> None:
        """Pose every link's vertices by its MuJoCo pose, colour them by `hand`; one mesh, made once, whose
        vertex buffer is replaced each sample (pyrender's layout: position, normal, RGBA per vertex)."""
        d, sl, data = self.data, self._robot_slices, self._robot_data
        for i, g in enumerate(self._robot_geoms):
            rot = d.geom_xmat[g].reshape(3, 3).astype(np.float32)
            np.matmul(self._robot_local_v[i], rot.T, out=self._robot_v[sl[i]:sl[i + 1]])
            self._robot_v[sl[i]:sl[i + 1]] += d.geom_xpos[g].astype(np.float32)
            np.matmul(self._robot_local_n[i], rot.T, out=self._robot_n[sl[i]:sl[i + 1]])
        data[:, 0:3], data[:, 3:6] = self._robot_v, self._robot_n
        key = repr((hand["color"], hand["link_jitter"], hand["link_seed"]))
        if key != self._robot_colour_key:
            link_rng = np.random.default_rng(hand["link_seed"])
            tint = np.asarray(hand["color"], np.float32) * (
                1.0 + link_rng.normal(0.0, hand["link_jitter"], (len(self._robot_geoms), 3)).astype(np.float32))
            data[:, 6:9], data[:, 9] = np.repeat(np.clip(tint, 0, 1), np.diff(sl), axis=0), 1.0
            self._robot_colour_key = key
        self._robot_material.metallicFactor = hand["metallic"]
        self._robot_material.roughnessFactor = hand["roughness"]
        if self._robot_node is None:
            pr = self._pr
            prim = pr.Primitive(positions=data[:, 0:3], normals=data[:, 3:6], color_0=data[:, 6:10],
                                indices=self._robot_faces, material=self._robot_material)
            self._robot_node = self.pr_scene.add(pr.Mesh([prim]))
        self._offscreen._renderer.upload_vertices(self._robot_node.mesh.primitives[0], data.copy())

    def _texture(self, key: tuple, make) -> object:
        """The pyrender texture for `key`, made by `make()` (an RGB array) the first time: uploaded once and
        kept while it is among the TEXTURE_CACHE most recently used."""
        texture = self._textures.get(key)
        if texture is not None:
            self._textures.move_to_end(key)
            return texture
        texture = self._textures[key] = self._pr.Texture(source=make(), source_channels="RGB")
        self._offscreen._renderer.hold_texture(texture)
        while len(self._textures) > TEXTURE_CACHE:
            self._offscreen._renderer.release_texture(self._textures.popitem(last=False)[1])
        return texture

    def _update_appearance(self, appearance: dict) -> None:
        self._update_robot(appearance["hand"])
        block = appearance["block"]
        self._block_material.roughnessFactor = block["roughness"]
        if self._block_atlas is not None:
            look = (block["hue_shift"], block["saturation"], block["brightness"])
            self._block_material.baseColorTexture = self._texture(
                ("block", *look), lambda: recolor(self._block_atlas, *look))
        floor = appearance["floor"]
        self._floor_material.roughnessFactor = floor["roughness"]
        self._floor_material.baseColorTexture = self._texture(
            ("floor", repr(sorted((k, v) for k, v in floor.items() if k != "roughness"))),
            lambda: floor_texture(floor, self.cfg.floor_texture_size))
        self.pr_scene.bg_color = np.array([*appearance["background"], 1.0])

    def _update_lighting(self, lighting: dict) -> None:
        """Re-use light nodes across samples: only their number, colour, intensity and pose change."""
        pr = self._pr
        lights = lighting["lights"]
        while len(self._light_nodes) > len(lights):
            self.pr_scene.remove_node(self._light_nodes.pop())
        for i, light in enumerate(lights):
            if i == len(self._light_nodes):
                name = f"light{len(self._light_nodes):02d}"
                self._light_nodes.append(self.pr_scene.add(pr.DirectionalLight(), name=name))
            node = self._light_nodes[i]
            node.light.color = light["color"]
            node.light.intensity = light["intensity"]
            self.pr_scene.set_pose(node, _light_pose(light["direction"]))
        self.pr_scene.ambient_light = np.full(3, lighting["ambient"])

    # -- public API ---------------------------------------------------------------------
    def camera_labels(self, params: dict) -> list[dict]:
        size = self.cfg.image_size
        return [camera_label(cam, size, size) for cam in params["cameras"]]

    def render(self, qpos: np.ndarray, params: dict, show_block: bool = True) -> list[np.ndarray]:
        """One RGB uint8 image (H, W, 3) per camera of `params`, post-processed."""
        self.set_state(qpos)
        self._update_appearance(params["appearance"])
        self._update_lighting(params["lighting"])
        self._block_node.mesh.is_visible = show_block
        self._offscreen = create_offscreen(self._size, self._size, self.cfg.msaa_samples, self.cfg.shading)
        images = []
        for label, post in zip(self.camera_labels(params), params["post"]):
            fx, fy, cx, cy = opengl_intrinsics(label["K"])
            self._camera.fx, self._camera.fy, self._camera.cx, self._camera.cy = fx, fy, cx, cy
            self.pr_scene.set_pose(self._camera_node, opengl_camera_pose(label["R"], label["t"]))
            color, _ = self._offscreen.render(self.pr_scene)
            images.append(postprocess(color, post))
        return images

    def close(self) -> None:
        """Let go of this renderer's cached textures (the process's GL context deletes them at its next
        frame); the process's other renderers keep theirs. Called when the renderer is collected, too."""
        textures = self.__dict__.get("_textures") or {}
        if textures:
            self._textures = type(textures)()  # no module look-up: this also runs at interpreter exit
        gl_renderer = getattr(getattr(self, "_offscreen", None), "_renderer", None)
        if gl_renderer is not None:
            for texture in textures.values():
                gl_renderer.release_texture(texture)

    __del__ = close

    def block_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """Block position (m) and quaternion (wxyz) of the state last passed to render/set_state."""
        return self.scene.block_pose(self.data)

