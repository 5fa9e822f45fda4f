//! Gatehouse's bundled general-purpose plugins, each a port of the Kong plugin of the same name.
//!
//! They live apart from `gatehouse-core` so the core stays free of plugin behaviour, and apart from
//! each other (one module each) so a plugin can be read, tested and removed on its own.
#![warn(missing_docs)]

pub mod correlation_id;
pub mod request_termination;

use gatehouse_core::plugin::Registry;
use serde_json::Value;
use std::sync::Arc;

pub use correlation_id::CorrelationIdFactory;
pub use request_termination::RequestTerminationFactory;

/// Registers every plugin this crate bundles, so the binary need not know their list.
pub fn register_bundled(reg: &mut Registry) {
    reg.register(Arc::new(RequestTerminationFactory::new()));
    reg.register(Arc::new(CorrelationIdFactory::new()));
}

/// Schema check for config fields naming a header, with Kong's `typedefs.header_name` rule.
///
/// Stricter than HTTP's token grammar on purpose: a name that passes is always a valid
/// [`http::HeaderName`], so `build` can turn it into one without a failure path of its own.
pub(crate) fn check_header_name(v: &Value) -> Result<(), String> {
    let s = v.as_str().unwrap_or_default();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        Ok(())
    } else {
        Err(format!("bad header name '{s}', allowed characters are A-Z, a-z, 0-9, '_', and '-'"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_core::schema::Mode;
    use serde_json::json;

    #[test]
    fn bundled_plugins_are_registered_under_kong_names() {
        let mut reg = Registry::default();
        register_bundled(&mut reg);
        let names: Vec<&str> = reg.iter().map(|f| f.name()).collect();
        assert_eq!(names, ["correlation-id", "request-termination"]);
        for f in reg.iter() {
            f.config_schema().validate(&json!({}), Mode::default()).expect("an empty config is valid");
        }
    }

    #[test]
    fn header_names_follow_kongs_character_rule() {
        assert!(check_header_name(&json!("X-Request_ID-2")).is_ok());
        assert_eq!(
            check_header_name(&json!("bad name")),
            Err("bad header name 'bad name', allowed characters are A-Z, a-z, 0-9, '_', and '-'".into())
        );
        assert!(check_header_name(&json!("")).is_err());
        assert!(check_header_name(&json!("x:y")).is_err());
    }
}

/// Builders shared by the plugins' unit tests.
#[cfg(test)]
pub(crate) mod test_support {
    use gatehouse_core::entity::PluginEntity;
    use gatehouse_core::plugin::{BuildEnv, Ctx, Plugin, PluginFactory};
    use gatehouse_core::schema::Mode;
    use serde_json::Value;
    use std::sync::Arc;

    /// Validates `config` with the factory's schema and builds an instance, as the compiler does.
    pub fn build(factory: &dyn PluginFactory, config: Value) -> Arc<dyn Plugin> {
        let config = factory.config_schema().validate(&config, Mode::default()).expect("valid config");
        let entity = PluginEntity::global("p1", factory.name(), config);
        factory.build(&entity, &BuildEnv::default()).expect("build")
    }

    /// A request context as the proxy makes it.
    pub fn ctx(service_id: Option<&str>) -> Ctx {
        Ctx::new("127.0.0.1:1".parse().expect("address"), "route-1".into(), service_id.map(Into::into), Arc::default())
    }
}
