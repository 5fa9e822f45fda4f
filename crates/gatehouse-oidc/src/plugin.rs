//! The plugin kind, and the phases Kong runs an instance in (the instance and its pipeline are
//! `instance.rs`).

use crate::decision;
use crate::instance::Oidc;
use gatehouse_core::entity::PluginEntity;
use gatehouse_core::plugin::{BuildEnv, BuildError, Ctx, Plugin, PluginFactory, Step};
use gatehouse_core::schema::Record;
use std::sync::Arc;

/// Kong's priority for `openid-connect`.
pub const PRIORITY: i32 = 1050;

/// The `openid-connect` plugin kind. What it needs of the node (issuer secrets, its key set)
/// comes with each build's [`BuildEnv`] (see `node.rs`).
#[derive(Default)]
pub struct OidcFactory;

impl PluginFactory for OidcFactory {
    fn name(&self) -> &'static str {
        "openid-connect"
    }

    fn priority(&self) -> i32 {
        PRIORITY
    }

    fn config_schema(&self) -> &Record {
        crate::config::schema()
    }

    fn protocols(&self) -> &'static [&'static str] {
        &["grpc", "grpcs", "http", "https", "ws", "wss"]
    }

    // Kong's schema: `consumer = typedefs.no_consumer`. The plugin finds the consumer; it cannot
    // run for one already found.
    fn scopes(&self) -> gatehouse_core::plugin::Scopes {
        gatehouse_core::plugin::Scopes::NO_CONSUMER
    }

    fn build(&self, entity: &PluginEntity, env: &BuildEnv) -> Result<Arc<dyn Plugin>, BuildError> {
        // The same derivation twice: the session and the authorization cookie each own a key.
        let key = || crate::node::session_codec(entity, env);
        Ok(Arc::new(Oidc::build(&entity.config, key(), key(), env)?))
    }
}

impl Plugin for Oidc {
    fn needs_body(&self) -> bool {
        Oidc::needs_body(self)
    }

    fn access<'a>(&'a self, ctx: &'a mut Ctx, req: &'a mut http::request::Parts) -> Step<'a> {
        Oidc::access(self, ctx, req)
    }

    fn header_filter(&self, ctx: &mut Ctx, resp: &mut http::response::Parts) {
        decision::add_to_response(ctx, resp);
    }
}
