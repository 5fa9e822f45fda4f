//! The consumers of a snapshot, indexed for the lookups auth plugins make on the request path.
//!
//! Kong's consumer mapping looks a consumer up by `id`, `username` (optionally ignoring case) or
//! `custom_id`. Building the three maps at compile time makes each lookup one hash probe.

use crate::entity::Consumer;
use std::collections::HashMap;
use std::sync::Arc;

/// Which consumer field a lookup uses (Kong's `consumer_by` values).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsumerBy {
    /// The entity id.
    Id,
    /// The unique username.
    Username,
    /// The unique custom id.
    CustomId,
}

impl ConsumerBy {
    /// Parses Kong's names: `id`, `username`, `custom_id`.
    pub fn from_name(s: &str) -> Option<ConsumerBy> {
        match s {
            "id" => Some(ConsumerBy::Id),
            "username" => Some(ConsumerBy::Username),
            "custom_id" => Some(ConsumerBy::CustomId),
            _ => None,
        }
    }
}

/// Every consumer of a snapshot, by id, username, lowercased username and custom id.
#[derive(Debug, Default)]
pub struct Consumers {
    by_id: HashMap<String, Arc<Consumer>>,
    by_username: HashMap<String, Arc<Consumer>>,
    by_username_lower: HashMap<String, Arc<Consumer>>,
    by_custom_id: HashMap<String, Arc<Consumer>>,
}

impl Consumers {
    /// Indexes `list`.
    pub fn new(list: impl IntoIterator<Item = Consumer>) -> Consumers {
        let mut c = Consumers::default();
        for consumer in list {
            let consumer = Arc::new(consumer);
            if let Some(u) = &consumer.username {
                c.by_username.insert(u.clone(), consumer.clone());
                // Two usernames may differ only by case; the first one wins, as Kong's lookup
                // by lowered username would find either.
                c.by_username_lower.entry(u.to_lowercase()).or_insert_with(|| consumer.clone());
            }
            if let Some(ci) = &consumer.custom_id {
                c.by_custom_id.insert(ci.clone(), consumer.clone());
            }
            c.by_id.insert(consumer.id.clone(), consumer);
        }
        c
    }

    /// Finds a consumer by `by`. `ignore_case` applies to usernames only.
    pub fn find(&self, by: ConsumerBy, value: &str, ignore_case: bool) -> Option<&Arc<Consumer>> {
        match by {
            ConsumerBy::Id => self.by_id.get(value),
            ConsumerBy::Username if ignore_case => self.by_username_lower.get(&value.to_lowercase()),
            ConsumerBy::Username => self.by_username.get(value),
            ConsumerBy::CustomId => self.by_custom_id.get(value),
        }
    }

    /// Kong's lookup of the `anonymous` setting: an id first, then a username.
    pub fn find_anonymous(&self, value: &str) -> Option<&Arc<Consumer>> {
        self.by_id.get(value).or_else(|| self.by_username.get(value))
    }

    /// The number of consumers.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(id: &str, u: Option<&str>, ci: Option<&str>) -> Consumer {
        Consumer { id: id.into(), username: u.map(Into::into), custom_id: ci.map(Into::into) }
    }

    #[test]
    fn finds_by_each_field() {
        let cs = Consumers::new([c("1", Some("John"), Some("x1")), c("2", None, Some("x2"))]);
        assert_eq!(cs.find(ConsumerBy::Id, "2", false).map(|c| c.id.as_str()), Some("2"));
        assert_eq!(cs.find(ConsumerBy::Username, "John", false).map(|c| c.id.as_str()), Some("1"));
        assert!(cs.find(ConsumerBy::Username, "john", false).is_none());
        assert_eq!(cs.find(ConsumerBy::Username, "JOHN", true).map(|c| c.id.as_str()), Some("1"));
        assert_eq!(cs.find(ConsumerBy::CustomId, "x2", false).map(|c| c.id.as_str()), Some("2"));
        assert!(cs.find(ConsumerBy::CustomId, "x3", false).is_none());
        assert_eq!(cs.find_anonymous("John").map(|c| c.id.as_str()), Some("1"));
        assert_eq!(cs.find_anonymous("2").map(|c| c.id.as_str()), Some("2"));
        assert_eq!(cs.len(), 2);
    }
}
