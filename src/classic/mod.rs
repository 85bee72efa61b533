//! Hand-crafted baseline classifiers over the feature stack: a random forest and histogram
//! gradient-boosted trees, behind one [`StackClassifier`] interface.
//!
//! - `forest`: the random forest (training, prediction).
//! - `boosted`: histogram gradient-boosted trees with a virtual-ensemble uncertainty.
//! - `stack`: [`StackClassifier`] and [`HandcraftedModel`] (classifier + feature list +
//!   class table + quantisation ranges, saved with its hash).
//! - `sampling`: class-balanced training pixels from a scene's training blocks.
//! - `method`: [`StackMethod`], the hand-crafted method kinds behind `crate::method`.

pub(crate) mod boosted;
pub(crate) mod forest;
pub(crate) mod method;
pub(crate) mod sampling;
pub(crate) mod stack;

pub use boosted::Boosted;
pub use forest::{Forest, ForestParams};
pub use method::StackMethod;
pub use stack::{HandcraftedModel, StackClassifier, TrainingSet};
