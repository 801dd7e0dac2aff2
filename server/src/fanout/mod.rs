//! Live delivery: the hub that hands each committed event to the connected
//! subscribers that should get it, through a spatial index, into bounded
//! per-connection queues. It never awaits a socket.

mod frame;
mod hub;
mod index;

pub use frame::{frame_for, Audience};
pub use hub::{Closer, Hub, Registration, Subscription};
