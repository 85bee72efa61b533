//! `[training]` (which scenes give training samples, how many) and `[evaluation]` (held-out
//! scenes, which never give a training sample).

use serde::{Deserialize, Serialize};

use super::SceneDef;

/// Which scenes train the pipeline's models.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingConfig {
    /// Scene names that give training samples (default: every scene with labels that is not
    /// held out).
    #[serde(default)]
    pub scenes: Option<Vec<String>>,
}

/// Held-out scenes: mapped and scored on all their labelled pixels, never trained on.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluationConfig {
    /// Scene names held out.
    #[serde(default)]
    pub scenes: Vec<String>,
}

/// The training scenes and held-out scenes of a pipeline, as indices into its scene list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SceneRoles {
    /// Scenes that give training samples.
    pub training: Vec<usize>,
    /// Held-out scenes.
    pub held_out: Vec<usize>,
}

impl SceneRoles {
    /// Resolves `[training]` and `[evaluation]` against the scene list; `Err` is the message.
    pub fn resolve(
        scenes: &[SceneDef],
        training: &TrainingConfig,
        evaluation: &EvaluationConfig,
    ) -> std::result::Result<SceneRoles, String> {
        let index = |key: &str, name: &str| {
            scenes.iter().position(|s| s.name == name).ok_or_else(|| {
                format!(
                    "`{key}` names scene `{name}`, which is not in `scenes`; use one of {}",
                    scenes
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
        };
        let held_out = evaluation
            .scenes
            .iter()
            .map(|n| index("evaluation.scenes", n))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let training = match &training.scenes {
            Some(list) => {
                let t = list
                    .iter()
                    .map(|n| index("training.scenes", n))
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                if let Some(i) = t.iter().find(|i| held_out.contains(i)) {
                    return Err(format!(
                        "scene `{}` is both in `training.scenes` and held out in `evaluation.scenes`; a held-out scene never gives training samples",
                        scenes[*i].name
                    ));
                }
                if let Some(i) = t.iter().find(|&&i| !scenes[i].has_reference()) {
                    return Err(format!(
                        "training scene `{}` has no `labels`; add labels or drop it from `training.scenes`",
                        scenes[*i].name
                    ));
                }
                t
            }
            None => (0..scenes.len())
                .filter(|i| scenes[*i].has_reference() && !held_out.contains(i))
                .collect(),
        };
        Ok(SceneRoles { training, held_out })
    }
}
