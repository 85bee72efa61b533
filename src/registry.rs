//! The method registry: the implementation behind each method kind of the pipeline file.
//! The one place that names every implementation, above [`crate::method`] (the interface),
//! [`crate::classic`] and [`crate::learned`] (the implementations), so none of them imports
//! another's registry.

use crate::config::{MethodDef, MethodSettings};
use crate::method::Method;

/// The registry: the implementation of a method's kind.
pub fn for_def(def: &MethodDef, device: &str) -> Box<dyn Method> {
    match &def.settings {
        MethodSettings::Handcrafted(s) => Box::new(crate::classic::StackMethod::<
            crate::classic::Forest,
        >::new(&def.name, s.clone())),
        MethodSettings::Boosted(s) => Box::new(crate::classic::StackMethod::<
            crate::classic::Boosted,
        >::new(&def.name, s.clone())),
        MethodSettings::Learned(s) => Box::new(crate::learned::NetworkMethod::new(
            &def.name,
            s.clone(),
            device,
        )),
    }
}
