//! What a write committed, with what the network must hear of it.

use super::relay::Announcement;
use crate::domain::delivery::Event;

/// What a write committed, with what the network must hear of it: the
/// events it appended (in `seq` order) and the announcements it made.
///
/// The write methods of [`Storage`] whose commits members or streams must
/// hear of return one. Its value is reached only through
/// [`Committed::into_parts`], which `fanout::Network` calls as it publishes
/// the effects: a handler cannot use what a write returned without handing
/// it to the network, so a new one cannot forget the fanout.
#[must_use = "what a write committed reaches the network only through fanout::Network::write"]
#[derive(Debug, Clone, PartialEq)]
pub struct Committed<T> {
    value: T,
    effects: Effects,
}

/// What a commit must tell the network.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Effects {
    /// Events for the hub, in `seq` order.
    pub events: Vec<Event>,
    /// Changes to streams: closures and re-indexing.
    pub announcements: Vec<Announcement>,
}

impl<T> Committed<T> {
    pub(crate) fn new(value: T, effects: Effects) -> Committed<T> {
        Committed { value, effects }
    }

    /// A commit with nothing to tell.
    pub(crate) fn quiet(value: T) -> Committed<T> {
        Committed::new(value, Effects::default())
    }

    pub(crate) fn with_events(value: T, events: Vec<Event>) -> Committed<T> {
        Committed::new(
            value,
            Effects {
                events,
                announcements: Vec::new(),
            },
        )
    }

    /// The value and its effects: for the network that publishes them.
    pub fn into_parts(self) -> (T, Effects) {
        (self.value, self.effects)
    }
}
