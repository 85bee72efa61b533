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
    /// Instead of `scenes`: this fraction of the scenes with reference data (at least one,
    /// and at least one left to train on), drawn by the pipeline's seed from their names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fraction: Option<f64>,
}

impl EvaluationConfig {
    /// The held-out scene indices: `scenes` by name, or `fraction` of the labelled scenes
    /// (those not listed in `[training] scenes`) drawn by `seed`.
    fn held_out(
        &self,
        scenes: &[SceneDef],
        training: &TrainingConfig,
        seed: u64,
    ) -> std::result::Result<Option<Vec<usize>>, String> {
        let Some(f) = self.fraction else {
            return Ok(None);
        };
        if !self.scenes.is_empty() {
            return Err("`evaluation` has both `scenes` and `fraction`; give one".into());
        }
        if !(f > 0.0 && f < 1.0) {
            return Err(format!(
                "`evaluation.fraction` = {f} must be strictly between 0 and 1"
            ));
        }
        let listed = |n: &str| {
            training
                .scenes
                .as_ref()
                .is_some_and(|t| t.iter().any(|x| x == n))
        };
        let mut cands: Vec<(String, usize)> = scenes
            .iter()
            .enumerate()
            .filter(|(_, s)| s.has_reference() && !listed(&s.name))
            .map(|(i, s)| {
                (
                    super::hex_sha256(format!("{seed}/{}", s.name).as_bytes()),
                    i,
                )
            })
            .collect();
        if cands.len() < 2 {
            return Err(format!("`evaluation.fraction` needs at least two scenes with reference data to hold some out and train on the rest; {} found", cands.len()));
        }
        cands.sort();
        let k = ((f * cands.len() as f64).round() as usize).clamp(1, cands.len() - 1);
        let mut v: Vec<usize> = cands[..k].iter().map(|c| c.1).collect();
        v.sort_unstable();
        Ok(Some(v))
    }
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
        seed: u64,
    ) -> std::result::Result<SceneRoles, String> {
        if let Some(held_out) = evaluation.held_out(scenes, training, seed)? {
            let by_name = EvaluationConfig {
                scenes: held_out.iter().map(|&i| scenes[i].name.clone()).collect(),
                fraction: None,
            };
            return Self::resolve(scenes, training, &by_name, seed);
        }
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
