#version 330 core
// dexvision's lean fragment shader for pyrender's mesh.vert: Lambert diffuse plus
// normalized Blinn-Phong specular from the metallic-roughness material, directional
// lights and an ambient term. On a CPU rasterizer (Mesa llvmpipe) it costs about half
// of pyrender's GGX shader per pixel, and domain randomization varies the look anyway.

struct DirectionalLight {
    vec3 color;
    float intensity;
    vec3 direction;
};

struct Material {
    vec3 emissive_factor;
    vec4 base_color_factor;
    float metallic_factor;
    float roughness_factor;
#ifdef HAS_BASE_COLOR_TEX
    sampler2D base_color_texture;
#endif
};

uniform Material material;
uniform DirectionalLight directional_lights[MAX_DIRECTIONAL_LIGHTS];
uniform int n_directional_lights;
uniform vec3 cam_pos;
uniform vec3 ambient_light;

in vec3 frag_position;
#ifdef NORMAL_LOC
in vec3 frag_normal;
#endif
#ifdef TEXCOORD_0_LOC
in vec2 uv_0;
#endif
#ifdef TEXCOORD_1_LOC
in vec2 uv_1;
#endif
#ifdef COLOR_0_LOC
in vec4 color_multiplier;
#endif

out vec4 frag_color;

const float PI = 3.141592653589793;

void main()
{
    vec4 base = material.base_color_factor;
#ifdef HAS_BASE_COLOR_TEX
    vec4 tex = texture(material.base_color_texture, uv_0);
    base *= vec4(tex.rgb * tex.rgb, tex.a);  // sRGB to linear, gamma-2 approximation
#endif
#ifdef COLOR_0_LOC
    base *= color_multiplier;
#endif
    vec3 v = normalize(cam_pos - frag_position);
#ifdef NORMAL_LOC
    vec3 n = normalize(frag_normal);
#else
    vec3 n = v;
#endif
    float roughness = clamp(material.roughness_factor, 0.04, 1.0);
    float metallic = clamp(material.metallic_factor, 0.0, 1.0);
    vec3 diffuse = base.rgb * (1.0 - metallic) / PI;
    vec3 f0 = mix(vec3(0.04), base.rgb, metallic);
    // Blinn-Phong exponent matching a GGX lobe of alpha = roughness^2.
    float alpha2 = roughness * roughness * roughness * roughness;
    float shininess = 2.0 / max(alpha2, 1e-4) - 2.0;
    float spec_norm = (shininess + 8.0) / (8.0 * PI);

    vec3 color = base.rgb * ambient_light + material.emissive_factor;
    for (int i = 0; i < n_directional_lights; i++) {
        vec3 l = -directional_lights[i].direction;
        float nl = max(dot(n, l), 0.0);
        vec3 h = normalize(l + v);
        float nh = max(dot(n, h), 0.0);
        vec3 radiance = directional_lights[i].color * directional_lights[i].intensity;
        color += radiance * nl * (diffuse + f0 * spec_norm * pow(nh, shininess));
    }
    frag_color = clamp(vec4(pow(color, vec3(1.0 / 2.2)), base.a), 0.0, 1.0);
}
