"""Random Principled BSDF materials of the procedural scenes (bpy), some driven by a noise,
voronoi, checker or wave texture. Every random draw comes from the scene's seeded generator."""

from __future__ import annotations

import colorsys
import random

import bpy

TEXTURE_KINDS = ("noise", "voronoi", "checker", "wave")
TEXTURE_NODES = {"noise": ("ShaderNodeTexNoise", "Fac"), "voronoi": ("ShaderNodeTexVoronoi", "Distance"),
                 "checker": ("ShaderNodeTexChecker", "Fac"), "wave": ("ShaderNodeTexWave", "Fac")}


class MaterialMaker:
    """Random Principled BSDF materials named "Proc Material 01", "Proc Material 02", ..."""

    def __init__(self, rng: random.Random, texture_probability: float) -> None:
        self.rng = rng
        self.texture_probability = texture_probability
        self.count = 0

    def new(self, subject_scale: bool) -> bpy.types.Material:
        """A new material; ``subject_scale`` sizes its texture for a ~2 m object, else for a floor."""
        rng = self.rng
        self.count += 1
        material = bpy.data.materials.new(f"Proc Material {self.count:02d}")
        if material.node_tree is None:  # 4.5; in 5.x materials always have nodes
            material.use_nodes = True
        bsdf = next(n for n in material.node_tree.nodes if n.type == "BSDF_PRINCIPLED")
        colour = self._colour()
        roughness = rng.uniform(0.05, 0.95)
        bsdf.inputs["Base Color"].default_value = (*colour, 1.0)
        bsdf.inputs["Roughness"].default_value = roughness
        bsdf.inputs["Metallic"].default_value = 1.0 if rng.random() < 0.25 else 0.0
        if rng.random() < self.texture_probability:
            scale = rng.uniform(1.5, 8.0) if subject_scale else rng.uniform(0.2, 1.5)
            self._add_texture(material, bsdf, rng.choice(TEXTURE_KINDS), scale, colour, roughness)
        return material

    def _colour(self) -> tuple[float, float, float]:
        return colorsys.hsv_to_rgb(self.rng.uniform(0.0, 1.0), self.rng.uniform(0.0, 0.9),
                                   self.rng.uniform(0.05, 0.9))

    def _add_texture(self, material: bpy.types.Material, bsdf: bpy.types.Node, kind: str, scale: float,
                     colour: tuple[float, float, float], roughness: float) -> None:
        """A texture in object coordinates drives the base colour (between two colours) and,
        by chance, the roughness and a bump."""
        rng = self.rng
        nodes, links = material.node_tree.nodes, material.node_tree.links
        node_type, output = TEXTURE_NODES[kind]
        texture = nodes.new(node_type)
        texture.inputs["Scale"].default_value = scale
        links.new(nodes.new("ShaderNodeTexCoord").outputs["Object"], texture.inputs["Vector"])
        value = texture.outputs[output]
        links.new(_ramp(nodes, links, value, colour, self._colour()).outputs["Color"], bsdf.inputs["Base Color"])
        if rng.random() < 0.5:
            other = rng.uniform(0.05, 0.95)
            ramp = _ramp(nodes, links, value, (roughness,) * 3, (other,) * 3)
            links.new(ramp.outputs["Color"], bsdf.inputs["Roughness"])
        if rng.random() < 0.5:
            bump = nodes.new("ShaderNodeBump")
            bump.inputs["Strength"].default_value = rng.uniform(0.1, 0.6)
            links.new(value, bump.inputs["Height"])
            links.new(bump.outputs["Normal"], bsdf.inputs["Normal"])


def _ramp(nodes: bpy.types.Nodes, links: bpy.types.NodeLinks, value: bpy.types.NodeSocket,
          low: tuple[float, float, float], high: tuple[float, float, float]) -> bpy.types.Node:
    """A colour ramp from ``low`` to ``high`` fed by ``value``."""
    ramp = nodes.new("ShaderNodeValToRGB")
    ramp.color_ramp.elements[0].color = (*low, 1.0)
    ramp.color_ramp.elements[1].color = (*high, 1.0)
    links.new(value, ramp.inputs["Fac"])
    return ramp
