//! `[[methods]]`: a method's name, its kind and the settings of that kind.
//!
//! The table is read in two steps: `name`, `kind` and `model` first, then the remaining keys
//! into the settings struct of the kind (unknown keys are an error naming the key, so a
//! forest setting on a network is refused rather than ignored).

use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize};

use super::fusion::Fusion;
pub use super::network::NetworkSettings;
pub use super::trees::{BoostedSettings, ForestSettings};

use super::postprocess::{PostProcess, REGULARISED_SUFFIX};

/// Declares the method kinds once: each line gives a kind's variant, its pipeline name and
/// its settings type, and the macro writes [`MethodKind`] (with `ALL` and `name`),
/// [`MethodSettings`] (one variant per kind, holding its settings) and the dispatch from one
/// to the other (kind, validation, parsing). The registry in [`crate::method`] maps each kind
/// to its implementation.
macro_rules! method_kinds {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal, $settings:ty; )+) => {
        /// The kinds of method this build can run.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "kebab-case")]
        pub enum MethodKind {
            $( $(#[$doc])* $variant, )+
        }

        impl MethodKind {
            /// Every kind.
            pub const ALL: &'static [MethodKind] = &[$( MethodKind::$variant ),+];

            /// The pipeline name.
            pub fn name(self) -> &'static str {
                match self {
                    $( MethodKind::$variant => $name, )+
                }
            }
        }

        /// The settings of one method kind.
        #[derive(Debug, Clone, Serialize)]
        #[serde(tag = "kind", rename_all = "kebab-case")]
        pub enum MethodSettings {
            $( $(#[$doc])* $variant($settings), )+
        }

        impl MethodSettings {
            /// The kind these settings are of.
            pub fn kind(&self) -> MethodKind {
                match self {
                    $( MethodSettings::$variant(_) => MethodKind::$variant, )+
                }
            }

            /// Checks the settings; `Err` is the message.
            fn validate(&self) -> std::result::Result<(), String> {
                match self {
                    $( MethodSettings::$variant(s) => s.validate(), )+
                }
            }

            /// Reads the settings table of `kind`.
            fn parse(kind: MethodKind, t: toml::Table) -> std::result::Result<MethodSettings, String> {
                Ok(match kind {
                    $( MethodKind::$variant => MethodSettings::$variant(settings(t)?), )+
                })
            }
        }
    };
}

method_kinds! {
    /// Hand-crafted feature stack into a random forest.
    Handcrafted = "handcrafted", ForestSettings;
    /// Hand-crafted feature stack into histogram gradient-boosted trees.
    Boosted = "boosted", BoostedSettings;
    /// CNN encoders fused by a learned (or fixed) strategy.
    Learned = "learned", NetworkSettings;
}

impl MethodKind {
    /// Parses a pipeline name.
    pub fn from_name(s: &str) -> Option<MethodKind> {
        MethodKind::ALL.iter().copied().find(|k| k.name() == s)
    }

    /// Every pipeline name, comma-separated (for messages).
    pub fn names() -> String {
        MethodKind::ALL
            .iter()
            .map(|k| k.name())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A method to run.
#[derive(Debug, Clone, Serialize)]
pub struct MethodDef {
    /// Product name (`<out>/<scene>/<name>.tif`).
    pub name: String,
    /// Load this model instead of training one per scene.
    pub model: Option<PathBuf>,
    /// The kind and its settings.
    pub settings: MethodSettings,
    /// Spatial regularisation of its map (a second, regularised product).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postprocess: Option<PostProcess>,
}

impl MethodDef {
    /// The method kind.
    pub fn kind(&self) -> MethodKind {
        self.settings.kind()
    }

    /// Network settings, when the method is learned.
    pub fn network(&self) -> Option<&NetworkSettings> {
        match &self.settings {
            MethodSettings::Learned(n) => Some(n),
            _ => None,
        }
    }

    /// Checks the settings; `Err` is the message (the caller names the pipeline file).
    pub fn validate(&self, k: usize) -> std::result::Result<(), String> {
        if self.name.is_empty() || self.name.contains(['/', '\\', '.']) {
            return Err(format!(
                "method name `{}` must be a plain file stem",
                self.name
            ));
        }
        if let Some(pp) = &self.postprocess {
            pp.validate(k)
                .map_err(|e| format!("method `{}`: {e}", self.name))?;
        }
        self.settings
            .validate()
            .map_err(|e| format!("method `{}`: {e}", self.name))
    }

    /// The active post-process, if any.
    pub fn regularisation(&self) -> Option<&PostProcess> {
        self.postprocess.as_ref().filter(|p| p.is_active())
    }

    /// The name of its regularised product, when it has a post-process.
    pub fn regularised_name(&self) -> Option<String> {
        self.regularisation()
            .map(|_| format!("{}{REGULARISED_SUFFIX}", self.name))
    }

    /// Its product names: the raw one, then the regularised one when it has a post-process.
    pub fn product_names(&self) -> Vec<String> {
        std::iter::once(self.name.clone())
            .chain(self.regularised_name())
            .collect()
    }

    /// The method as it trains: without its post-process, which does not change the model.
    pub fn for_training(&self) -> MethodDef {
        MethodDef {
            postprocess: None,
            ..self.clone()
        }
    }

    /// Makes a relative `model` path absolute against `base`.
    pub fn resolve_paths(&mut self, fix: &dyn Fn(&mut PathBuf)) {
        if let Some(p) = &mut self.model {
            fix(p);
        }
        if let Some(e) = self.postprocess.as_mut().and_then(|p| p.exclusion.as_mut()) {
            fix(e);
        }
    }
}

/// The kind of a method table: `kind` when given, else learned when it sets `fusion`, else the
/// fusion strategy or kind its name spells.
fn kind_of(
    name: &str,
    kind: Option<MethodKind>,
    fusion: bool,
) -> std::result::Result<MethodKind, String> {
    if let Some(k) = kind {
        return Ok(k);
    }
    if fusion || Fusion::from_name(name).is_some() {
        return Ok(MethodKind::Learned);
    }
    MethodKind::from_name(name).ok_or_else(|| {
        format!(
            "method `{name}` has no `kind` and its name is neither a kind ({}) nor a fusion strategy ({}); add kind = \"...\" (or `fusion` for a network)",
            MethodKind::names(),
            Fusion::names()
        )
    })
}

/// Removes `key` from the table and parses it.
fn take<T: serde::de::DeserializeOwned>(
    t: &mut toml::Table,
    key: &str,
) -> std::result::Result<Option<T>, String> {
    t.remove(key)
        .map(|v| v.try_into::<T>().map_err(|e| format!("`{key}`: {e}")))
        .transpose()
}

fn settings<T: serde::de::DeserializeOwned>(t: toml::Table) -> std::result::Result<T, String> {
    toml::Value::Table(t)
        .try_into::<T>()
        .map_err(|e| e.to_string().trim_end().to_string())
}

/// Parses one `[[methods]]` table.
fn parse_method(mut t: toml::Table) -> std::result::Result<MethodDef, String> {
    let name: String = take(&mut t, "name")?.ok_or("a [[methods]] table lacks `name`")?;
    let ctx = |e: String| format!("method `{name}`: {e}");
    let fusion = t.contains_key("fusion");
    let kind = kind_of(&name, take(&mut t, "kind").map_err(ctx)?, fusion)?;
    let model: Option<PathBuf> = take(&mut t, "model").map_err(ctx)?;
    let postprocess: Option<PostProcess> = take(&mut t, "postprocess").map_err(ctx)?;
    // A network named after its fusion strategy need not repeat it.
    if kind == MethodKind::Learned && !t.contains_key("fusion") {
        let f = Fusion::from_name(&name).ok_or_else(|| {
            ctx(format!(
                "a learned method needs `fusion` (one of {}) unless its name is one",
                Fusion::names()
            ))
        })?;
        t.insert("fusion".into(), toml::Value::String(f.name().into()));
    }
    let settings = MethodSettings::parse(kind, t).map_err(ctx)?;
    Ok(MethodDef {
        name,
        model,
        settings,
        postprocess,
    })
}

impl<'de> Deserialize<'de> for MethodDef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let t = toml::Table::deserialize(d)?;
        parse_method(t).map_err(serde::de::Error::custom)
    }
}
