//! The pipeline file (TOML): scenes, classes, tiling, features, split, methods, output.
//!
//! Unknown keys are an error that names the key; relative paths resolve against the folder
//! of the pipeline file; `validate` checks everything that can be checked without opening
//! a raster. Every vocabulary is a serde enum owned by the stage that uses it, so nothing
//! matches strings after parsing.
//!
//! - `scene` reads the `[[scenes]]` tables, [`scene_set`] the `[[scene_sets]]` (scenes found
//!   by a glob and a rule).
//! - `features` reads `[features]`.
//! - `tiling` reads `[tiling]`, `[coregistration]` and `[split]`.
//! - `method` reads `[[methods]]`, with settings by kind.
//! - `training` reads `[training]` and `[evaluation]` (training and held-out scenes).

pub(crate) mod catalogue;
pub(crate) mod features;
pub(crate) mod fusion;
pub(crate) mod method;
pub(crate) mod network;
pub(crate) mod postprocess;
pub(crate) mod scene;
pub mod scene_set;
pub(crate) mod season;
pub(crate) mod tiling;
pub(crate) mod training;
pub(crate) mod trees;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// A whole pipeline file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pipeline {
    /// Output folder (products, metrics, manifest, report).
    pub output: PathBuf,
    /// Seed for every random choice (sampling, split, forest).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Class table: id (label and product value), name, colour.
    pub classes: Vec<ClassDef>,
    /// Scenes to process (those of `scene_sets` are appended when the file is loaded).
    #[serde(default)]
    pub scenes: Vec<SceneDef>,
    /// Scenes found by a pattern (a glob for the optical files and a rule for the rest).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scene_sets: Vec<SceneSetDef>,
    /// Scenes from STAC Items (a saved search, an Item, a catalog, or a search run each time).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub catalogue: Vec<CatalogueSetDef>,
    /// Tiling.
    #[serde(default)]
    pub tiling: Tiling,
    /// Co-registration policy.
    #[serde(default)]
    pub coregistration: Coregistration,
    /// Hand-crafted features.
    #[serde(default)]
    pub features: FeatureConfig,
    /// Spatial train/test split.
    #[serde(default)]
    pub split: SplitConfig,
    /// Which scenes train the models.
    #[serde(default)]
    pub training: TrainingConfig,
    /// Held-out scenes.
    #[serde(default)]
    pub evaluation: EvaluationConfig,
    /// Methods to run on every scene.
    pub methods: Vec<MethodDef>,
    /// Spatial regularisation of every method's map that sets no `postprocess` of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postprocess: Option<PostProcess>,
    /// Optional bands of every product.
    #[serde(default, skip_serializing_if = "ProductOptions::is_default")]
    pub product: ProductOptions,
    /// The season and its temporal grid: every scene becomes a time series of dated rasters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<TimeConfig>,
    /// The learning-curve study (`geofuse study`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub study: Option<StudyConfig>,
}

/// `[product]`: optional bands of every product, after the six (and a season's two).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductOptions {
    /// A `margin` band: the highest class probability minus the second (margin sampling in
    /// `geofuse suggest --by margin`).
    #[serde(default)]
    pub margin: bool,
}

impl ProductOptions {
    /// Whether every option is off (the table is then left out of hashes).
    pub fn is_default(&self) -> bool {
        *self == ProductOptions::default()
    }
}

/// `[study]`: train the chosen methods on nested subsets of the training pixels, with several
/// seeds, and evaluate each on the held-out blocks and scenes (`geofuse study`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StudyConfig {
    /// Shares of the training pixels, increasing, the last at most 1.
    #[serde(default = "default_fractions")]
    pub fractions: Vec<f64>,
    /// Repeats with different seeds (subset draw, sampling, initialisation).
    #[serde(default = "default_repeats")]
    pub seeds: usize,
    /// Methods studied (default: every method).
    #[serde(default)]
    pub methods: Vec<String>,
}

fn default_fractions() -> Vec<f64> {
    vec![0.01, 0.03, 0.1, 0.3, 1.0]
}
fn default_repeats() -> usize {
    3
}

impl StudyConfig {
    /// Checks the settings against the pipeline's methods; `Err` is the message.
    pub fn validate(&self, methods: &[MethodDef]) -> std::result::Result<(), String> {
        if self.fractions.is_empty()
            || self.fractions.iter().any(|f| !(*f > 0.0 && *f <= 1.0))
            || self.fractions.windows(2).any(|w| w[0] >= w[1])
        {
            return Err("`study.fractions` must be increasing shares in (0, 1], for example [0.01, 0.1, 1.0]".into());
        }
        if self.seeds == 0 {
            return Err("`study.seeds` must be at least 1".into());
        }
        for m in &self.methods {
            if !methods.iter().any(|d| &d.name == m) {
                return Err(format!("`study.methods` names `{m}`, which is not in `[[methods]]`; list method names from `[[methods]]`"));
            }
        }
        Ok(())
    }
}

fn default_seed() -> u64 {
    42
}

/// One class of the class table.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClassDef {
    /// Value in the label raster and in the product's class band (0..=254).
    pub id: u8,
    /// Name written to the product's category names.
    pub name: String,
    /// Colour as `#rrggbb`.
    pub color: String,
}

impl ClassDef {
    /// RGB triple of `color`.
    pub fn rgb(&self) -> Option<[u8; 3]> {
        let h = self.color.strip_prefix('#')?;
        // Six hex digits; checked byte-wise first so that a multi-byte character (found by
        // fuzzing: `#3\u{35f}02c`) is refused rather than sliced through.
        if h.len() != 6 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let p = |i: usize| u8::from_str_radix(&h[i..i + 2], 16).ok();
        Some([p(0)?, p(2)?, p(4)?])
    }
}

pub use catalogue::CatalogueSetDef;
pub use features::{FeatureConfig, GlcmConfig, SpeckleConfig, INDICES};
pub use method::{
    BoostedSettings, ForestSettings, MethodDef, MethodKind, MethodSettings, NetworkSettings,
};
pub use postprocess::{PostProcess, Smoothing, Smoothness};
pub use scene::{MaskDef, OpticalDef, ReferenceDef, SarDef, SarUnit, SceneDef};
pub use scene_set::SceneSetDef;
pub use season::{Season, SeasonScene, TimeConfig};
pub use tiling::{Coregistration, SplitBy, SplitConfig, Tiling};
pub use training::{EvaluationConfig, SceneRoles, TrainingConfig};

impl Pipeline {
    /// Gives the `[postprocess]` table to every method that sets no `postprocess` of its own.
    pub fn apply_postprocess(&mut self) {
        if let Some(pp) = &self.postprocess {
            for m in self.methods.iter_mut().filter(|m| m.postprocess.is_none()) {
                m.postprocess = Some(pp.clone());
            }
        }
    }

    /// Every product name of every method, in pipeline order (a method's raw product, then
    /// its regularised one).
    pub fn product_names(&self) -> Vec<String> {
        self.methods
            .iter()
            .flat_map(MethodDef::product_names)
            .collect()
    }

    /// Makes every relative path absolute against `base` (the pipeline file's folder).
    pub fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = normalize(&base.join(&*p));
            }
        };
        fix(&mut self.output);
        for s in &mut self.scenes {
            fix(&mut s.optical.path);
            fix(&mut s.sar.path);
            s.optical.files.iter_mut().for_each(fix);
            s.sar.files.iter_mut().for_each(fix);
            if let Some(l) = &mut s.labels {
                fix(l);
            }
            if let Some(m) = &mut s.mask {
                fix(&mut m.path);
                m.files.iter_mut().for_each(fix);
            }
            if let Some(r) = &mut s.reference {
                fix(&mut r.path);
            }
        }
        for m in &mut self.methods {
            m.resolve_paths(&fix);
        }
        if let Some(e) = self.postprocess.as_mut().and_then(|p| p.exclusion.as_mut()) {
            fix(e);
        }
    }

    /// With `[time]`, finds each scene's dated rasters; without it, refuses the keys of
    /// season scenes.
    pub fn resolve_seasons(&mut self) -> std::result::Result<(), String> {
        let Some(t) = &self.time else {
            return match self.scenes.iter().find(|s| s.is_season_like()) {
                Some(s) => Err(format!("scene `{}` gives `files` lists or a `year`, which only season scenes have; add a [time] table (start, end, step_days) or give one raster per `path`", s.name)),
                None => Ok(()),
            };
        };
        t.validate()?;
        // A `[[catalogue]]` table's seasons come resolved from its Items.
        for s in self.scenes.iter_mut().filter(|s| s.season.is_none()) {
            s.season = Some(season::resolve(s, t)?);
        }
        let steps = |s: &SceneDef| s.season.as_ref().map_or(0, |x| x.season.steps().len());
        if let Some(w) = self
            .scenes
            .windows(2)
            .find(|w| steps(&w[0]) != steps(&w[1]))
        {
            return Err(format!(
                "scenes `{}` and `{}` have seasons of {} and {} steps; every scene needs as many steps (a leap day can make one more: move `time.end` a day)",
                w[0].name, w[1].name, steps(&w[0]), steps(&w[1])
            ));
        }
        Ok(())
    }

    /// Checks the configuration; errors name the key and the fix.
    pub fn validate(&self, path: &Path) -> Result<()> {
        self.validate_sections()
            .map_err(|msg| Error::config(path, msg))
    }

    fn validate_sections(&self) -> std::result::Result<(), String> {
        self.validate_classes()?;
        if self.scenes.is_empty() {
            return Err(if self.scene_sets.is_empty() && self.catalogue.is_empty() {
                "`scenes` is empty; add at least one [[scenes]] table".into()
            } else {
                "no scenes: `scenes` is empty and no file matches the `scene_sets` globs and the `catalogue` tables give no Item; check `scene_sets.optical` and `catalogue.items`".into()
            });
        }
        let mut names = std::collections::HashSet::new();
        for s in &self.scenes {
            s.validate()?;
            if !names.insert(&s.name) {
                return Err(format!("scene name `{}` appears twice", s.name));
            }
            self.features.validate_scene(s)?;
        }
        SceneRoles::resolve(
            &self.scenes,
            &self.training,
            &self.evaluation,
            self.split_seed(),
        )?;
        self.features.validate()?;
        self.tiling.validate()?;
        self.split.validate()?;
        if let Some(st) = &self.study {
            st.validate(&self.methods)?;
        }
        if self.methods.is_empty() {
            return Err("`methods` is empty; add [[methods]] name = \"handcrafted\"".into());
        }
        self.check_output_folder()?;
        let mut mnames = std::collections::HashSet::new();
        for m in &self.methods {
            if m.name.is_empty()
                || m.name.contains(['/', '\\'])
                || m.name.starts_with('.')
                || m.name.chars().any(char::is_control)
            {
                return Err(format!(
                    "method name `{}` must be a plain file name (no slashes, not starting with '.'): it names the product file",
                    m.name
                ));
            }
            if !mnames.insert(m.name.clone()) {
                return Err(format!("method name `{}` appears twice", m.name));
            }
            m.validate(self.classes.len())?;
        }
        for r in self.methods.iter().filter_map(MethodDef::regularised_name) {
            if !mnames.insert(r.clone()) {
                return Err(format!("method name `{r}` is also the regularised product of method `{}`; rename one of them", r.trim_end_matches(postprocess::REGULARISED_SUFFIX)));
            }
        }
        Ok(())
    }

    /// The output folder must not hold the inputs (a product or a cleanup could then touch
    /// them).
    pub fn check_output_folder(&self) -> std::result::Result<(), String> {
        let abs = |p: &Path| normalize(&std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()));
        let out = abs(&self.output);
        for s in &self.scenes {
            let files = [Some(&s.optical.path), Some(&s.sar.path), s.labels.as_ref()];
            if let Some(f) = files
                .into_iter()
                .flatten()
                .find(|f| abs(f).starts_with(&out))
            {
                return Err(format!(
                    "the output folder {} holds the input {} of scene `{}`; write the outputs to a folder of their own (`output` or --out)",
                    self.output.display(),
                    f.display(),
                    s.name
                ));
            }
        }
        Ok(())
    }

    fn validate_classes(&self) -> std::result::Result<(), String> {
        if self.classes.is_empty() {
            return Err(
                "`classes` is empty; list at least two classes with id, name, color".into(),
            );
        }
        if self.classes.len() < 2 {
            return Err("`classes` needs at least two classes to classify".into());
        }
        let mut ids = std::collections::HashSet::new();
        for c in &self.classes {
            if c.id == 255 {
                return Err(format!(
                    "class `{}` uses id 255, which is the product's nodata; pick 0..=254",
                    c.name
                ));
            }
            if !ids.insert(c.id) {
                return Err(format!("class id {} appears twice in `classes`", c.id));
            }
            if self.classes.iter().filter(|d| d.name == c.name).count() > 1 {
                return Err(format!(
                    "class name `{}` appears twice in `classes`; give every class its own name",
                    c.name
                ));
            }
            if c.rgb().is_none() {
                return Err(format!(
                    "class `{}` has color `{}`; write it as #rrggbb",
                    c.name, c.color
                ));
            }
        }
        Ok(())
    }

    /// Seed of the spatial split and of the held-out scene draw.
    pub fn split_seed(&self) -> u64 {
        self.split.seed.unwrap_or(self.seed)
    }

    /// Hash of everything that shapes the products (hex SHA-256 of the canonical JSON).
    /// The output folder, the tiling and the study settings are left out: the same pipeline
    /// gives the same products wherever they are written, whatever the tile size and thread
    /// count (hand-crafted products bit for bit, learned ones up to float rounding; tested).
    pub fn hash(&self) -> String {
        let mut c = self.clone();
        c.output = PathBuf::new();
        c.tiling = Tiling::default();
        c.study = None;
        hex_sha256(serde_json::to_string(&c).unwrap_or_default().as_bytes())
    }

    /// Hash of the parts that shape one method's product on one scene, and the geofuse version
    /// (a product made by another release is remade).
    pub fn product_config_hash(&self, scene: &SceneDef, method: &MethodDef) -> String {
        hex_sha256(self.product_config(scene, method).to_string().as_bytes())
    }

    /// What [`product_config_hash`](Self::product_config_hash) hashes.
    fn product_config(&self, scene: &SceneDef, method: &MethodDef) -> serde_json::Value {
        let mut v = serde_json::json!({
            "seed": self.seed, "classes": self.classes, "scene": scene, "features": self.features,
            "split": self.split, "method": method, "coregistration": self.coregistration,
            "geofuse": env!("CARGO_PKG_VERSION"),
        });
        if !self.product.is_default() {
            v["product"] = serde_json::json!(self.product);
        }
        v
    }
}

/// Removes `.` and `name/..` components lexically (no filesystem access), so messages show
/// `out/demo` rather than `pipelines/../out/demo`.
pub fn normalize(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out: Vec<Component> = Vec::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.last(), Some(Component::Normal(_))) => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    if out.is_empty() {
        PathBuf::from(".")
    } else {
        out.iter().collect()
    }
}

/// Hex SHA-256 of bytes.
pub fn hex_sha256(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r##"
output = "out"
[[classes]]
id = 1
name = "water"
color = "#0000ff"
[[classes]]
id = 2
name = "forest"
color = "#00ff00"
[[scenes]]
name = "s"
optical = { path = "opt.tif", bands = ["B02","B03","B04","B05","B06","B07","B08","B8A","B11","B12"] }
sar = { path = "sar.tif" }
[[methods]]
name = "handcrafted"
"##;

    fn parse(text: &str) -> Result<Pipeline> {
        let path = Path::new("/tmp/p/pipeline.toml");
        let mut p: Pipeline =
            toml::from_str(text).map_err(|e| Error::config(path, e.to_string()))?;
        p.resolve_paths(Path::new("/tmp/p"));
        p.validate(path)?;
        Ok(p)
    }

    #[test]
    fn minimal_pipeline_parses_and_resolves_paths() {
        let p = parse(MINIMAL).unwrap();
        assert_eq!(p.scenes[0].optical.path, PathBuf::from("/tmp/p/opt.tif"));
        assert_eq!(p.output, PathBuf::from("/tmp/p/out"));
        assert_eq!(p.tiling.tile_size, 512);
    }

    #[test]
    fn product_hash_covers_the_geofuse_version_and_the_method() {
        let p = parse(MINIMAL).unwrap();
        let (s, m) = (&p.scenes[0], &p.methods[0]);
        assert_eq!(p.product_config(s, m)["geofuse"], env!("CARGO_PKG_VERSION"));
        let mut m2 = m.clone();
        m2.name = "other".into();
        assert_ne!(p.product_config_hash(s, m), p.product_config_hash(s, &m2));
    }

    #[test]
    fn evaluation_fraction_holds_out_scenes_drawn_by_seed() {
        let scene = |n: &str| {
            format!("[[scenes]]\nname = \"{n}\"\noptical = {{ path = \"o.tif\", bands = [\"B02\",\"B03\",\"B04\",\"B05\",\"B06\",\"B07\",\"B08\",\"B8A\",\"B11\",\"B12\"] }}\nsar = {{ path = \"s.tif\" }}\nlabels = \"l.tif\"\n")
        };
        let head = &MINIMAL[..MINIMAL.find("[[scenes]]").unwrap()];
        let scenes: String = ["a", "b", "c", "d", "e", "f"]
            .iter()
            .map(|n| scene(n))
            .collect();
        let text = |seed: u64, extra: &str| {
            format!("seed = {seed}\n{head}{scenes}[[methods]]\nname = \"handcrafted\"\n[evaluation]\nfraction = 0.34\n{extra}")
        };
        let roles = |seed: u64| {
            let p = parse(&text(seed, "")).unwrap();
            SceneRoles::resolve(&p.scenes, &p.training, &p.evaluation, p.seed).unwrap()
        };
        let r = roles(1);
        assert_eq!(r.held_out.len(), 2);
        assert_eq!(r.training.len(), 4);
        assert!(r.held_out.iter().all(|i| !r.training.contains(i)));
        assert_eq!(roles(1), r);
        assert!((2..40).any(|s| roles(s).held_out != r.held_out));
        let e = parse(&text(1, "scenes = [\"a\"]\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("both `scenes` and `fraction`"), "{e}");
    }

    #[test]
    fn normalize_removes_parent_components() {
        assert_eq!(
            normalize(Path::new("pipelines/../out/demo")),
            PathBuf::from("out/demo")
        );
        assert_eq!(
            normalize(Path::new("../../shared/x")),
            PathBuf::from("../../shared/x")
        );
        assert_eq!(normalize(Path::new("./a/./b")), PathBuf::from("a/b"));
    }

    #[test]
    fn unknown_key_is_named() {
        let e = parse(&format!("{MINIMAL}\nbogus_key = 3\n")).unwrap_err();
        assert!(e.to_string().contains("bogus_key"), "{e}");
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn missing_band_for_index_is_explained() {
        let text = MINIMAL.replace("\"B11\",", "");
        let e = parse(&text).unwrap_err();
        assert!(e.to_string().contains("B11"), "{e}");
    }

    #[test]
    fn unavailable_method_kind_is_refused() {
        let text = format!("{MINIMAL}[[methods]]\nname = \"x\"\nkind = \"nope\"\n");
        let e = parse(&text).unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
    }

    #[test]
    fn bad_colour_is_refused() {
        let e = parse(&MINIMAL.replace("#0000ff", "blue")).unwrap_err();
        assert!(e.to_string().contains("#rrggbb"), "{e}");
        // Found by fuzzing (fuzz/corpus/pipeline_config/multibyte-colour.toml): six bytes
        // with a combining character inside panicked on a char boundary.
        let e = parse(&MINIMAL.replace("#0000ff", "#3\\u035f02c")).unwrap_err();
        assert!(e.to_string().contains("#rrggbb"), "{e}");
        let e = parse(&MINIMAL.replace("#0000ff", "#00ff+1")).unwrap_err();
        assert!(e.to_string().contains("#rrggbb"), "{e}");
    }

    #[test]
    fn methods_get_the_settings_of_their_kind() {
        let text = format!(
            "{MINIMAL}[[methods]]\nname = \"boosted\"\nrounds = 12\n[[methods]]\nname = \"net\"\nkind = \"learned\"\nfusion = \"learned-kernel\"\nwidth = 4\n[[methods]]\nname = \"concat\"\n"
        );
        let p = parse(&text).unwrap();
        let kinds: Vec<_> = p.methods.iter().map(|m| m.kind()).collect();
        assert_eq!(
            kinds,
            [
                MethodKind::Handcrafted,
                MethodKind::Boosted,
                MethodKind::Learned,
                MethodKind::Learned
            ]
        );
        match &p.methods[1].settings {
            MethodSettings::Boosted(b) => assert_eq!(b.rounds, 12),
            other => panic!("{other:?}"),
        }
        let n = p.methods[2].network().unwrap();
        assert_eq!(
            (n.fusion, n.width),
            (super::fusion::Fusion::LearnedKernel, 4)
        );
        assert_eq!(
            p.methods[3].network().unwrap().fusion,
            super::fusion::Fusion::Concat
        );
    }

    #[test]
    fn a_setting_of_another_kind_is_an_unknown_key() {
        let text = format!("{MINIMAL}[[methods]]\nname = \"late\"\ntrees = 10\n");
        let e = parse(&text).unwrap_err().to_string();
        assert!(e.contains("`late`") && e.contains("trees"), "{e}");
    }

    #[test]
    fn unknown_vocabulary_values_name_the_allowed_ones() {
        let text =
            format!("{MINIMAL}[[methods]]\nname = \"x\"\nkind = \"learned\"\nfusion = \"fancy\"\n");
        let e = parse(&text).unwrap_err().to_string();
        assert!(e.contains("fancy") && e.contains("learned-kernel"), "{e}");
        let text = MINIMAL.replace(
            "[[methods]]",
            "[features]\nspeckle = { filter = \"median\" }\n[[methods]]",
        );
        let e = parse(&text).unwrap_err().to_string();
        assert!(e.contains("median") && e.contains("gamma-map"), "{e}");
        let text = MINIMAL.replace(
            "[[methods]]",
            "[features]\nsar = [\"vv_db\", \"hh_db\"]\n[[methods]]",
        );
        let e = parse(&text).unwrap_err().to_string();
        assert!(e.contains("hh_db") && e.contains("vh_vv_ratio_db"), "{e}");
        let text = format!("{MINIMAL}[[methods]]\nname = \"mystery\"\n");
        let e = parse(&text).unwrap_err().to_string();
        assert!(e.contains("mystery") && e.contains("boosted"), "{e}");
    }
}
