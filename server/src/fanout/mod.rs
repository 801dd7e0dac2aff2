//! Live delivery. [`Network`] is the one way from a commit to every
//! listener, here and on the other nodes; inside it, the hub hands each
//! committed event to the connected subscribers that should get it,
//! through a spatial index, into bounded per-connection queues (it never
//! awaits a socket), and `frame` renders what each audience is sent.

mod frame;
mod hub;
mod index;
mod network;

pub use frame::{frame_for, Audience};
pub use hub::{Closer, Registration, Subscription};
pub use network::{HubSettings, Network, Subscribing};
