//! One module per subcommand of `p4p`, in the order a newcomer uses them.

pub mod alerts;
pub mod audit;
pub mod edit;
pub mod erase;
pub mod flag;
pub mod listen;
pub mod login;
pub mod moderation;
pub mod pledge;
pub mod post;
pub mod retract;
pub mod show;
pub mod stores;
pub mod tokens;
