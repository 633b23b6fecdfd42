//! The embedded default dataset: seeded, radiograph-like synthetic images of long bones, fractured or
//! not, so `pipe run pipelines/fracture.yaml` needs no download.
//!
//! Each image is rendered as an X-ray is formed: attenuation is integrated along the beam through soft
//! tissue and through each bone, modelled as a tube (a dense cortex around a lighter marrow canal) that
//! flares into a rounded end; the film's response `1 - exp(-gain * attenuation)` then gives the grey level,
//! plus grain. Scenes vary in orientation (mostly along the film's axes, as limbs are laid), scale,
//! exposure, the number of bones (one or two; three as difficulty rises), and side markers. A fracture is
//! a dark gap across one bone's shaft well inside the film, sometimes incomplete, displaced or angulated,
//! sometimes a hairline; every break is at least about a pixel
//! wide, so an image labelled fractured shows its break (a test checks sampled scenes). Both classes share
//! look-alikes (growth plates near bone ends, a vessel channel through one cortex, crossing bones, text
//! markers, soft-tissue swelling around a shaft, and joints as difficulty rises), so the classes are learnable but not trivially separable.

use image::{GrayImage, Luma};

use crate::util::rng::Rng;

/// What to generate.
#[derive(Debug, Clone, Copy)]
pub struct SynthParams {
    /// Width and height in pixels.
    pub size: u32,
    /// 0 (obvious breaks, clean film) to 1 (many hairline breaks, grainy film, more look-alikes).
    pub difficulty: f64,
}

/// Renders one image. The same `rng` state gives the same image.
pub fn render(params: SynthParams, fractured: bool, rng: &mut Rng) -> GrayImage {
    let scene = Scene::random(params, fractured, rng);
    draw(&scene, params, rng)
}

/// Renders a fractured scene twice: as [`render`] would, and with its break mended (the same limb,
/// swelling, film and grain), to check what a model looks at.
pub fn render_mended_pair(params: SynthParams, rng: &mut Rng) -> (GrayImage, GrayImage) {
    let mut scene = Scene::random(params, true, rng);
    let mut grain = rng.clone();
    let broken = draw(&scene, params, rng);
    if let Some((_, fracture)) = scene.fracture.as_mut() {
        fracture.mend();
    }
    (broken, draw(&scene, params, &mut grain))
}

/// The film of `scene`, with grain and markers drawn from `rng`.
fn draw(scene: &Scene, params: SynthParams, rng: &mut Rng) -> GrayImage {
    let size = params.size;
    let mut image = GrayImage::new(size, size);
    let grain = 0.018 + 0.03 * params.difficulty;
    for py in 0..size {
        for px in 0..size {
            let value = scene.brightness(px, py, size) + grain * rng.normal();
            image.put_pixel(px, py, Luma([to_byte(value)]));
        }
    }
    for marker in &scene.markers {
        marker.draw(&mut image, rng);
    }
    image
}

fn to_byte(value: f64) -> u8 {
    (value.clamp(0.0, 1.0) * 255.0).round() as u8
}

/// A scene in normalised coordinates: the image spans -0.5..0.5 on both axes.
struct Scene {
    angle_cos: f64,
    angle_sin: f64,
    scale: f64,
    tissue: Tissue,
    bones: Vec<Bone>,
    fracture: Option<(usize, Fracture)>,
    /// Soft-tissue swelling around a point of a shaft, drawn alike for both classes (a sprain swells
    /// too), so it is no clue to the label.
    swelling: Option<Swelling>,
    background: f64,
    falloff: f64,
    tilt: (f64, f64),
    gain: f64,
    gamma: f64,
    markers: Vec<Marker>,
}

/// Soft tissue: a band along the limb whose thickness falls off toward its edges.
struct Tissue {
    centre: f64,
    half_width: f64,
    density: f64,
}

/// One long bone in the limb's frame (u along the limb, v across it).
struct Bone {
    centre_u: f64,
    centre_v: f64,
    slope: f64,
    half_length: f64,
    radius: f64,
    canal: f64,
    cortex_density: f64,
    marrow_density: f64,
    /// Where a growth plate crosses near one end (a look-alike of a break), as a distance from the centre.
    growth_plate: Option<f64>,
    /// A vessel channel through one cortex: position along the bone and side.
    vessel: Option<(f64, f64)>,
}

/// A break across a bone's shaft.
struct Fracture {
    /// Position along the bone, from its centre.
    at: f64,
    /// Tilt of the fracture line from straight across (radians).
    tilt: f64,
    width: f64,
    depth: f64,
    /// Sideways shift of the far fragment.
    shift: f64,
    /// Bend of the far fragment (radians).
    bend: f64,
    /// How far across the bone the line runs (1 = complete).
    extent: f64,
}

/// Soft-tissue swelling: around one level of the limb its outline bulges and its soft tissue thickens,
/// smoothly, so the skin line stays a skin line. In a fractured scene it is centred on the break.
struct Swelling {
    /// Position along the limb.
    at: f64,
    /// How far along the limb the swelling reaches (a Gaussian's width).
    reach: f64,
    /// The soft tissue's widening at the break, relative.
    widening: f64,
}

impl Swelling {
    /// Swelling of the limb around `at` along bone `bone`, in three scenes of four of either class.
    fn random(bone: &Bone, at: f64, d: f64, rng: &mut Rng) -> Option<Swelling> {
        let reach = bone.radius * rng.range(2.0, 3.5);
        let widening = rng.range(0.04, 0.12) * (1.0 - 0.6 * d);
        rng.chance(0.75).then_some(Swelling {
            at: bone.centre_u + at,
            reach,
            widening,
        })
    }

    /// The relative widening at `u` along the limb.
    fn widening(&self, u: f64) -> f64 {
        self.widening * (-((u - self.at) / self.reach).powi(2)).exp()
    }
}

impl Scene {
    /// A scene with at least one bone shaft well inside the film, broken there when `fractured`.
    /// Scenes without one are drawn again, for both classes alike, so framing is no clue to the label.
    fn random(params: SynthParams, fractured: bool, rng: &mut Rng) -> Scene {
        // A one-bone scene (45% of draws at any difficulty) always has shaft points near the film's
        // centre, so the loop ends after a few draws.
        let d = params.difficulty.clamp(0.0, 1.0);
        let pixel = 1.0 / f64::from(params.size);
        loop {
            let mut scene = Scene::random_framing(params.size, d, rng);
            let Some((bone, at)) = scene.visible_shaft_point(rng) else {
                continue;
            };
            scene.swelling = Swelling::random(&scene.bones[bone], at, d, rng);
            if fractured {
                let fracture = scene.random_fracture(bone, at, d, pixel, rng);
                scene.fracture = Some((bone, fracture));
            }
            return scene;
        }
    }

    /// The limb, its bones, the film and the markers of a `size`-pixel image at difficulty `d`.
    fn random_framing(size: u32, d: f64, rng: &mut Rng) -> Scene {
        // Limbs are usually laid along the film's vertical axis, sometimes across it, now and then at
        // any angle.
        let axis = match rng.unit() {
            p if p < 0.6 => std::f64::consts::FRAC_PI_2 + rng.range(-0.4, 0.4),
            p if p < 0.85 => rng.range(-0.4, 0.4),
            _ => rng.range(0.0, std::f64::consts::PI),
        };
        let angle = axis
            + if rng.chance(0.5) {
                std::f64::consts::PI
            } else {
                0.0
            };
        let scale = rng.range(0.75, 1.3);
        // One long bone (humerus, femur), two side by side (forearm, leg) or, as difficulty rises,
        // three thin ones (hand, foot; none at difficulty 0).
        let bone_count = match rng.unit() {
            p if p < 0.45 => 1,
            p if p < 1.0 - 0.3 * d => 2,
            _ => 3,
        };
        let thin = match bone_count {
            1 => 1.0,
            2 => 0.8,
            _ => 0.55,
        };
        let separation = rng.range(0.12, 0.22) * if bone_count == 3 { 0.9 } else { 1.0 };
        let spread = rng.range(-0.07, 0.07);
        let limb_u = rng.range(-0.2, 0.2);
        let limb_v = rng.range(-0.12, 0.12);
        let mut bones = Vec::new();
        for i in 0..bone_count {
            let offset = i as f64 - (bone_count - 1) as f64 / 2.0;
            let half_length = rng.range(0.25, 0.8);
            bones.push(Bone::random(
                limb_u + rng.range(-0.1, 0.1),
                limb_v + offset * separation,
                spread * offset,
                half_length,
                rng.range(0.05, 0.085) * thin * rng.range(0.85, 1.0),
                d,
                rng,
            ));
        }
        // As difficulty rises, sometimes a joint (none at difficulty 0): the next bone continues past
        // one end, across a joint space that looks like a clean transverse break.
        if rng.chance(0.5 * d) {
            let first = &bones[0];
            let side = if rng.chance(0.5) { 1.0 } else { -1.0 };
            let half_length = rng.range(0.25, 0.6);
            let gap = first.radius * rng.range(0.25, 0.6);
            let distance = side * (first.half_length + gap + half_length + first.radius * 1.2);
            let slope = rng.range(-0.25, 0.25);
            // Line the near end of the next bone up with the end of the first.
            let joint = first.axis_v(side * (first.half_length + gap)) + slope * side * half_length;
            let (radius, centre_u) = (
                first.radius * rng.range(0.8, 1.1),
                first.centre_u + distance,
            );
            bones.push(Bone::random(
                centre_u,
                joint,
                slope,
                half_length,
                radius,
                d,
                rng,
            ));
        }
        let tissue = Tissue {
            centre: limb_v + rng.range(-0.08, 0.08),
            half_width: rng.range(0.2, 0.5),
            density: rng.range(0.6, 1.1),
        };
        let (angle_cos, angle_sin) = (angle.cos(), angle.sin());
        Scene {
            angle_cos,
            angle_sin,
            scale,
            tissue,
            bones,
            fracture: None,
            swelling: None,
            background: rng.range(0.02, 0.12),
            falloff: rng.range(0.0, 0.08),
            tilt: (rng.normal(), rng.normal()),
            gain: rng.range(0.75, 1.3),
            gamma: rng.range(0.8, 1.25),
            markers: Marker::random_set(size, rng),
        }
    }

    /// A point on some bone's shaft (bone, position from its centre) that lies well inside the film,
    /// where a break would be seen; `None` when random tries find none.
    fn visible_shaft_point(&self, rng: &mut Rng) -> Option<(usize, f64)> {
        (0..40).find_map(|_| {
            let b = rng.below(self.bones.len());
            let bone = &self.bones[b];
            let shaft = (bone.half_length - 0.12).max(0.05);
            let at = rng.range(-shaft, shaft);
            let (x, y) = self.to_image(bone.centre_u + at, bone.axis_v(at));
            (x.abs() < 0.36 && y.abs() < 0.36).then_some((b, at))
        })
    }

    /// A break across the shaft of bone `b` at `at`; `pixel` is the film's pixel size. Every break,
    /// hairlines included, is at least about a pixel wide and deep enough to see: a break the image
    /// does not show would be a wrong label.
    fn random_fracture(&self, b: usize, at: f64, d: f64, pixel: f64, rng: &mut Rng) -> Fracture {
        let bone = &self.bones[b];
        let pixel = pixel / self.scale;
        let hairline = rng.chance(0.1 + 0.3 * d);
        let displaced = !hairline && rng.chance(0.45);
        Fracture {
            at,
            tilt: rng.range(-0.7, 0.7),
            // Gaps narrow as difficulty rises: at 0 a break other than a hairline is 3 times as wide
            // as at 1.
            width: if hairline {
                rng.range(0.005, 0.008)
            } else {
                rng.range(0.008, 0.016) * (1.0 + 2.0 * (1.0 - d))
            }
            .max(pixel * rng.range(1.0, 1.3)),
            depth: if hairline {
                rng.range(0.6, 0.8)
            } else {
                rng.range(0.75, 1.0)
            },
            shift: if displaced {
                bone.radius * rng.range(0.2, 0.8) * if rng.chance(0.5) { 1.0 } else { -1.0 }
            } else {
                0.0
            },
            bend: if displaced && rng.chance(0.5) {
                rng.range(-0.18, 0.18)
            } else {
                0.0
            },
            extent: if hairline || rng.chance(0.3) {
                rng.range(0.45, 1.0)
            } else {
                1.0
            },
        }
    }

    /// The film's brightness (0..1, before grain) at pixel (`px`, `py`) of an `n`-pixel image: the
    /// attenuation averaged over 2x2 samples in the pixel, through the film's response and exposure.
    fn brightness(&self, px: u32, py: u32, n: u32) -> f64 {
        let samples = 2u32;
        // Pixel coordinates (0..n) to the scene's (-0.5..0.5).
        let to_scene = |pixels: f64| pixels / f64::from(n) - 0.5;
        let sample =
            |p: u32, s: u32| to_scene(f64::from(p) + (f64::from(s) + 0.5) / f64::from(samples));
        let mut attenuation = 0.0;
        for sy in 0..samples {
            for sx in 0..samples {
                attenuation += self.attenuation(sample(px, sx), sample(py, sy));
            }
        }
        attenuation /= f64::from(samples * samples);
        let (x, y) = (to_scene(f64::from(px) + 0.5), to_scene(f64::from(py) + 0.5));
        let exposure = self.background + self.falloff * (x * self.tilt.0 + y * self.tilt.1);
        let film = 1.0 - (-self.gain * attenuation).exp();
        exposure + (1.0 - exposure) * film.powf(self.gamma)
    }

    /// Limb-frame coordinates to image coordinates.
    fn to_image(&self, u: f64, v: f64) -> (f64, f64) {
        let (u, v) = (u * self.scale, v * self.scale);
        (
            u * self.angle_cos - v * self.angle_sin,
            u * self.angle_sin + v * self.angle_cos,
        )
    }

    /// Total attenuation along the beam through image point (x, y).
    fn attenuation(&self, x: f64, y: f64) -> f64 {
        let u = (x * self.angle_cos + y * self.angle_sin) / self.scale;
        let v = (-x * self.angle_sin + y * self.angle_cos) / self.scale;
        let swelling = self.swelling.as_ref().map_or(0.0, |s| s.widening(u));
        let mut total = self.tissue.attenuation(v, swelling);
        for (i, bone) in self.bones.iter().enumerate() {
            let (du, dv) = (u - bone.centre_u, v);
            total += match &self.fracture {
                Some((b, fracture)) if *b == i => fracture.attenuation(bone, du, dv),
                _ => bone.attenuation(du, dv),
            };
        }
        total
    }
}

impl Tissue {
    /// Attenuation at `v` across the limb, with the band `widening` times wider (and so thicker) there.
    fn attenuation(&self, v: f64, widening: f64) -> f64 {
        let half_width = self.half_width * (1.0 + widening);
        let r = (v - self.centre) / half_width;
        if r.abs() >= 1.0 {
            return 0.0;
        }
        self.density * half_width * 2.0 * (1.0 - r * r).sqrt()
    }
}

impl Bone {
    /// A bone with random proportions; `d` is the scene's difficulty (more look-alikes when higher).
    fn random(
        centre_u: f64,
        centre_v: f64,
        slope: f64,
        half_length: f64,
        radius: f64,
        d: f64,
        rng: &mut Rng,
    ) -> Bone {
        Bone {
            centre_u,
            centre_v,
            slope,
            half_length,
            radius,
            canal: rng.range(0.45, 0.68),
            cortex_density: rng.range(12.0, 16.0),
            marrow_density: rng.range(2.0, 3.5),
            growth_plate: rng
                .chance(0.2 + 0.3 * d)
                .then(|| half_length - rng.range(0.06, 0.1)),
            vessel: rng.chance(0.15 + 0.35 * d).then(|| {
                (
                    rng.range(-0.2, 0.2),
                    if rng.chance(0.5) { 1.0 } else { -1.0 },
                )
            }),
        }
    }

    /// Where the bone's axis is at `du` from its centre, across the limb.
    fn axis_v(&self, du: f64) -> f64 {
        self.centre_v + self.slope * du
    }

    /// Attenuation through the bone at (du along it from its centre, v across the limb).
    fn attenuation(&self, du: f64, v: f64) -> f64 {
        let along = du.abs();
        let across = v - self.axis_v(du);
        // Toward each end the bone flares and its canal fills with spongy bone.
        let end = smoothstep(self.half_length - 0.2, self.half_length - 0.02, along);
        let radius = self.radius * (1.0 + 0.55 * end);
        let r = if along > self.half_length {
            across.hypot((along - self.half_length) * 1.2)
        } else {
            across.abs()
        };
        if r >= radius {
            return 0.0;
        }
        let outer = chord(radius, r);
        let canal_radius = self.canal * radius * (1.0 - 0.5 * end);
        let inner = chord(canal_radius, r);
        let marrow = self.marrow_density + end * 0.45 * self.cortex_density;
        let mut value = self.cortex_density * (outer - inner) + marrow * inner;
        if let Some(plate) = self.growth_plate {
            let gap = (along - plate).abs();
            value *= 1.0 - 0.35 * (-(gap / 0.006).powi(2)).exp();
        }
        if let Some((at, side)) = self.vessel {
            // A thin oblique channel through the cortex on one side only.
            let s = (du - at) * 0.8 - (across * side) * 0.6;
            if across * side > canal_radius * 0.8 {
                value *= 1.0 - 0.5 * (-(s / 0.004).powi(2)).exp();
            }
        }
        value
    }
}

impl Fracture {
    /// Mends the break: no gap, no shift, no bend (the scene's swelling stays).
    fn mend(&mut self) {
        (self.depth, self.shift, self.bend) = (0.0, 0.0, 0.0);
    }

    /// Attenuation through a broken bone: the far fragment is shifted and bent, and a dark gap runs
    /// along the fracture line.
    fn attenuation(&self, bone: &Bone, du: f64, v: f64) -> f64 {
        let across = v - bone.axis_v(self.at);
        let (cos, sin) = (self.tilt.cos(), self.tilt.sin());
        let side = (du - self.at) * cos + across * sin;
        let (mut du_b, mut v_b) = (du, v);
        if side > 0.0 {
            let (bc, bs) = (self.bend.cos(), self.bend.sin());
            let (pu, pv) = (du - self.at, across - self.shift);
            du_b = self.at + pu * bc - pv * bs;
            v_b = bone.axis_v(self.at) + pu * bs + pv * bc;
        }
        let value = bone.attenuation(du_b, v_b);
        // How far across the bone this point is, 0 at one cortex and 1 at the other.
        let position = (across / (bone.radius * 1.1) + 1.0) / 2.0;
        if position > self.extent {
            return value;
        }
        value * (1.0 - self.depth * (-(side / self.width).powi(2)).exp())
    }
}

/// Length of the chord at distance `r` from the centre of a circle of radius `radius`.
fn chord(radius: f64, r: f64) -> f64 {
    if r >= radius {
        0.0
    } else {
        2.0 * (radius * radius - r * r).sqrt()
    }
}

fn smoothstep(edge0: f64, edge1: f64, x: f64) -> f64 {
    let t = ((x - edge0) / (edge1 - edge0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// A side marker ("L"/"R" in a box) or a line of text-like glyphs, burnt into the film.
struct Marker {
    x: u32,
    y: u32,
    cell: u32,
    glyphs: Vec<[u8; 7]>,
    boxed: bool,
    brightness: f64,
}

/// 5x7 glyphs, one byte per row, bit 4 the leftmost column.
const LETTER_L: [u8; 7] = [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F];
const LETTER_R: [u8; 7] = [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11];

impl Marker {
    /// Zero to two markers; both classes get them with the same odds, so they are no shortcut.
    fn random_set(size: u32, rng: &mut Rng) -> Vec<Marker> {
        let mut markers = Vec::new();
        let corner = rng.below(4);
        let brightness = rng.range(0.75, 1.0);
        if rng.chance(0.5) {
            let cell = (size / 64).max(1) * if size >= 128 && rng.chance(0.5) { 2 } else { 1 };
            let extent = 9 * cell;
            let margin = size / 24;
            let far = size.saturating_sub(extent + margin);
            let (x, y) = [(margin, margin), (far, margin), (margin, far), (far, far)][corner];
            let letter = if rng.chance(0.5) { LETTER_L } else { LETTER_R };
            markers.push(Marker {
                x,
                y,
                cell,
                glyphs: vec![letter],
                boxed: rng.chance(0.6),
                brightness,
            });
        }
        if rng.chance(0.25) {
            let count = 3 + rng.below(5);
            let glyphs = (0..count)
                .map(|_| std::array::from_fn(|_| (rng.next_u64() & 0x1F) as u8))
                .collect();
            let cell = (size / 96).max(1);
            let y = if corner < 2 {
                size.saturating_sub(10 * cell + size / 24)
            } else {
                size / 24
            };
            markers.push(Marker {
                x: size / 24 + rng.below((size / 4) as usize) as u32,
                y,
                cell,
                glyphs,
                boxed: false,
                brightness: brightness * 0.9,
            });
        }
        markers
    }

    fn draw(&self, image: &mut GrayImage, rng: &mut Rng) {
        let mut set = |x: u32, y: u32, value: f64| {
            if x < image.width() && y < image.height() {
                let v = value + 0.03 * rng.normal();
                image.put_pixel(x, y, Luma([to_byte(v)]));
            }
        };
        let c = self.cell;
        for (g, glyph) in self.glyphs.iter().enumerate() {
            let left = self.x + g as u32 * 6 * c + 2 * c;
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..5 {
                    if bits & (0x10 >> col) != 0 {
                        for dy in 0..c {
                            for dx in 0..c {
                                set(
                                    left + col * c + dx,
                                    self.y + 1 + row as u32 * c + dy,
                                    self.brightness,
                                );
                            }
                        }
                    }
                }
            }
        }
        if self.boxed {
            let (w, h) = (9 * c, 9 * c);
            for i in 0..=w {
                set(self.x + i, self.y, self.brightness);
                set(self.x + i, self.y + h, self.brightness);
            }
            for j in 0..=h {
                set(self.x, self.y + j, self.brightness);
                set(self.x + w, self.y + j, self.brightness);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mean(image: &GrayImage) -> f64 {
        image.pixels().map(|p| f64::from(p[0])).sum::<f64>() / image.len() as f64
    }

    #[test]
    fn seeded_images_repeat_and_differ() {
        let params = SynthParams {
            size: 64,
            difficulty: 0.5,
        };
        let a = render(params, true, &mut Rng::new(1));
        let b = render(params, true, &mut Rng::new(1));
        let c = render(params, true, &mut Rng::new(2));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.dimensions(), (64, 64));
    }

    #[test]
    fn images_have_contrast_like_a_radiograph() {
        let params = SynthParams {
            size: 64,
            difficulty: 0.3,
        };
        for seed in 0..10 {
            let image = render(params, seed % 2 == 0, &mut Rng::new(seed));
            let (min, max) = image
                .pixels()
                .fold((255u8, 0u8), |(lo, hi), p| (lo.min(p[0]), hi.max(p[0])));
            assert!(max - min > 100, "seed {seed}: range {min}..{max}");
            let m = mean(&image);
            assert!((20.0..200.0).contains(&m), "seed {seed}: mean {m}");
        }
    }

    #[test]
    fn both_classes_draw_the_same_scene_but_for_the_break() {
        // Everything but the break (framing, bones, swelling, film, markers) comes from the same draws
        // for either class, so no feature but the break can tell them apart. Swelling once came only
        // with a break, and models learnt it.
        let params = SynthParams {
            size: 64,
            difficulty: 0.3,
        };
        let mut swollen = 0;
        for seed in 0..200 {
            let broken = Scene::random(params, true, &mut Rng::new(seed));
            let clean = Scene::random(params, false, &mut Rng::new(seed));
            assert!(broken.fracture.is_some() && clean.fracture.is_none());
            let at = |s: &Scene| s.swelling.as_ref().map(|w| (w.at, w.reach, w.widening));
            assert_eq!(at(&broken), at(&clean), "seed {seed}");
            assert_eq!(broken.bones.len(), clean.bones.len(), "seed {seed}");
            assert_eq!(broken.gain, clean.gain, "seed {seed}");
            swollen += usize::from(clean.swelling.is_some());
        }
        assert!((120..180).contains(&swollen), "{swollen} of 200 swollen");
    }

    #[test]
    fn a_linear_probe_on_pixels_stays_at_chance() {
        // A logistic regression on 24x24 average-pooled pixels, fitted on 600 images per class and
        // scored on 200 others per class: anything global that differs by class (exposure, tissue,
        // framing) would let it beat chance. Breaks are thin and anywhere, so it must not.
        let params = SynthParams {
            size: 96,
            difficulty: 0.0,
        };
        let pooled = |fractured: bool, i: u64| -> Vec<f64> {
            let image = render(
                params,
                fractured,
                &mut Rng::derive(7, "probe", u64::from(fractured), i),
            );
            let mut cells = vec![0.0; 24 * 24];
            for (x, y, p) in image.enumerate_pixels() {
                cells[(y / 4 * 24 + x / 4) as usize] += f64::from(p[0]) / (255.0 * 16.0);
            }
            cells
        };
        let examples = |range: std::ops::Range<u64>| -> Vec<(Vec<f64>, f64)> {
            range
                .flat_map(|i| [(pooled(true, i), 1.0), (pooled(false, i + 100_000), 0.0)])
                .collect()
        };
        let (train, test) = (examples(0..600), examples(600..800));
        let dims = train[0].0.len();
        let mean: Vec<f64> = (0..dims)
            .map(|j| train.iter().map(|(x, _)| x[j]).sum::<f64>() / train.len() as f64)
            .collect();
        let score = |w: &[f64], x: &[f64]| -> f64 {
            w[dims]
                + x.iter()
                    .zip(&mean)
                    .zip(w)
                    .map(|((x, m), w)| (x - m) * w)
                    .sum::<f64>()
        };
        let mut w = vec![0.0; dims + 1];
        for _ in 0..300 {
            let mut grad = vec![0.0; dims + 1];
            for (x, y) in &train {
                let error = 1.0 / (1.0 + (-score(&w, x)).exp()) - y;
                for j in 0..dims {
                    grad[j] += error * (x[j] - mean[j]);
                }
                grad[dims] += error;
            }
            for (w, g) in w.iter_mut().zip(&grad) {
                *w -= 2.0 * g / train.len() as f64 + 1e-3 * *w;
            }
        }
        let accuracy = |set: &[(Vec<f64>, f64)]| {
            let right = set
                .iter()
                .filter(|(x, y)| (score(&w, x) > 0.0) == (*y > 0.5))
                .count();
            right as f64 / set.len() as f64
        };
        let (fit, held_out) = (accuracy(&train), accuracy(&test));
        println!(
            "pixel probe: train accuracy {fit:.3}, held-out accuracy {held_out:.3} (400 images)"
        );
        // Chance is 0.5; 400 held-out images give a standard error of 0.025.
        assert!(
            held_out < 0.575,
            "a linear probe on pixels reaches {held_out:.3}"
        );
    }

    #[test]
    fn a_fracture_darkens_the_bone_it_crosses() {
        // The same scene with and without its break differs only along the break.
        let params = SynthParams {
            size: 96,
            difficulty: 0.0,
        };
        let mut rng = Rng::new(5);
        let scene = Scene::random(params, true, &mut rng);
        let (b, fracture) = scene.fracture.as_ref().unwrap();
        let bone = &scene.bones[*b];
        let du = fracture.at;
        let v = bone.axis_v(du) - bone.radius * 0.8 + 1e-3;
        let broken = fracture.attenuation(bone, du, v);
        let whole = bone.attenuation(du, v);
        assert!(broken < whole, "{broken} !< {whole}");
    }

    #[test]
    fn a_mended_pair_is_the_rendered_image_and_the_same_film_without_its_break() {
        let params = SynthParams {
            size: 64,
            difficulty: 0.5,
        };
        for seed in 0..5 {
            let (broken, mended) = render_mended_pair(params, &mut Rng::new(seed));
            assert_eq!(
                broken,
                render(params, true, &mut Rng::new(seed)),
                "seed {seed}"
            );
            let changed = broken
                .pixels()
                .zip(mended.pixels())
                .filter(|(a, b)| a.0[0].abs_diff(b.0[0]) > 15)
                .count();
            assert!(
                (3..64 * 64 / 5).contains(&changed),
                "seed {seed}: mending changed {changed} pixels"
            );
        }
    }

    #[test]
    fn every_break_shows_on_the_film() {
        // A break the image does not show would be a wrong label. Mending each break (same scene, same
        // swelling) must change enough pixels by at least 15 grey levels, at every difficulty.
        for (size, difficulty) in [(96, 0.0), (96, 0.5), (96, 1.0), (64, 0.5)] {
            let params = SynthParams { size, difficulty };
            let film = |scene: &Scene| -> Vec<f64> {
                (0..size * size)
                    .map(|i| scene.brightness(i % size, i / size, size))
                    .collect()
            };
            let mut counts = Vec::new();
            for seed in 0..60 {
                let mut scene = Scene::random(params, true, &mut Rng::new(seed));
                let broken = film(&scene);
                scene.fracture.as_mut().unwrap().1.mend();
                let mended = film(&scene);
                let changed = broken
                    .iter()
                    .zip(&mended)
                    .filter(|(a, b)| (*a - *b).abs() > 15.0 / 255.0)
                    .count();
                counts.push((changed, seed));
            }
            let (fewest, seed) = *counts.iter().min().unwrap();
            assert!(
                fewest >= 3,
                "{size} px, difficulty {difficulty}: seed {seed}'s break changes only {fewest} pixels"
            );
        }
    }
}
