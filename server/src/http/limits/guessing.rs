//! The hold on a client address that guesses tokens, and the tokens it
//! still lets through.
//!
//! An address that presented more unknown or revoked tokens than its
//! allowance is held: the tokens it presents are refused (429) without
//! being looked up, so that guessing costs the database nothing. But many
//! shops share an address (a NAT, a proxy that does not forward the
//! client), and a hold on it must not lock them out: a token that this
//! server has seen valid from the address recently still goes through the
//! hold to be looked up. A guesser learns nothing from that (it needs a
//! valid token to be let through), and memory stays bounded: a few tokens
//! per address, a bounded number of addresses.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::domain::secret::SecretHash;

/// Tokens remembered per address: a shop's devices, and a few neighbours'.
const TOKENS_PER_ADDRESS: usize = 8;
/// Addresses remembered in all; when full (and nothing has expired), a new
/// address is not remembered until room is made. At most about 6 MB.
const ADDRESSES: usize = 20_000;
/// How long a token seen valid from an address passes that address's hold
/// (each use renews it).
const REMEMBERED: Duration = Duration::from_secs(24 * 60 * 60);

/// A token as remembered: half of its hash (128 bits), never the token.
type TokenKey = [u8; 32];

fn key_of(token: &SecretHash) -> Option<TokenKey> {
    token.as_str().as_bytes().get(..32)?.try_into().ok()
}

/// The held addresses and the tokens each still lets through.
#[derive(Default)]
pub struct GuessingHold {
    /// Addresses that used up their failed authentications, and until when.
    held: Mutex<HashMap<IpAddr, Instant>>,
    /// Tokens that authenticated from each address, and when last.
    known: Mutex<HashMap<IpAddr, Vec<(TokenKey, Instant)>>>,
}

impl GuessingHold {
    /// How long `address` is still held, unless `token` is one it has
    /// presented valid recently (or it is not held at all).
    pub fn holds(&self, address: IpAddr, token: &SecretHash) -> Option<Duration> {
        let now = Instant::now();
        let until = {
            let mut held = self.held.lock();
            match held.get(&address) {
                Some(until) if *until > now => *until,
                Some(_) => {
                    held.remove(&address);
                    return None;
                }
                None => return None,
            }
        };
        if self.knows(address, token, now) {
            return None;
        }
        Some(until.saturating_duration_since(now))
    }

    fn knows(&self, address: IpAddr, token: &SecretHash, now: Instant) -> bool {
        let Some(key) = key_of(token) else {
            return false;
        };
        self.known.lock().get(&address).is_some_and(|tokens| {
            tokens
                .iter()
                .any(|(known, at)| *known == key && now.duration_since(*at) < REMEMBERED)
        })
    }

    /// Holds `address` for `wait`.
    pub fn hold(&self, address: IpAddr, wait: Duration) {
        let now = Instant::now();
        let mut held = self.held.lock();
        held.retain(|_, until| *until > now);
        held.insert(address, now + wait);
    }

    /// `token` was found valid, presented from `address`.
    pub fn authenticated(&self, address: IpAddr, token: &SecretHash) {
        let Some(key) = key_of(token) else {
            return;
        };
        let now = Instant::now();
        let mut known = self.known.lock();
        if !known.contains_key(&address) && known.len() >= ADDRESSES {
            forget_expired(&mut known, now);
            if known.len() >= ADDRESSES {
                return;
            }
        }
        let tokens = known.entry(address).or_default();
        if let Some(seen) = tokens.iter_mut().find(|(known, _)| *known == key) {
            seen.1 = now;
            return;
        }
        if tokens.len() >= TOKENS_PER_ADDRESS {
            // The one unused longest makes room.
            if let Some(oldest) = (0..tokens.len()).min_by_key(|&i| tokens[i].1) {
                tokens.swap_remove(oldest);
            }
        }
        tokens.push((key, now));
    }

    /// `token` is unknown or revoked now: it no longer passes a hold.
    pub fn failed(&self, address: IpAddr, token: &SecretHash) {
        let Some(key) = key_of(token) else {
            return;
        };
        let mut known = self.known.lock();
        if let Some(tokens) = known.get_mut(&address) {
            tokens.retain(|(known, _)| *known != key);
            if tokens.is_empty() {
                known.remove(&address);
            }
        }
    }

    /// Drops the holds that ended and the tokens not seen for long.
    pub fn forget_idle(&self) {
        let now = Instant::now();
        self.held.lock().retain(|_, until| *until > now);
        forget_expired(&mut self.known.lock(), now);
    }

    #[cfg(test)]
    fn addresses_known(&self) -> usize {
        self.known.lock().len()
    }
}

fn forget_expired(known: &mut HashMap<IpAddr, Vec<(TokenKey, Instant)>>, now: Instant) {
    known.retain(|_, tokens| {
        tokens.retain(|(_, at)| now.duration_since(*at) < REMEMBERED);
        !tokens.is_empty()
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::secret::Secret;

    fn token(n: usize) -> SecretHash {
        Secret::presented(&format!("p4p_token{n}")).hash()
    }

    fn address(n: usize) -> IpAddr {
        IpAddr::from([10, (n >> 16) as u8, (n >> 8) as u8, n as u8])
    }

    #[test]
    fn a_held_address_still_passes_the_tokens_it_used_and_no_other() {
        let hold = GuessingHold::default();
        let shop = address(1);
        hold.authenticated(shop, &token(1));
        assert_eq!(hold.holds(shop, &token(2)), None, "not held yet");
        hold.hold(shop, Duration::from_secs(600));
        assert_eq!(hold.holds(shop, &token(1)), None, "seen valid from here");
        assert!(hold.holds(shop, &token(2)).is_some(), "a guess");
        // Known from another address does not count here.
        hold.authenticated(address(2), &token(3));
        assert!(hold.holds(shop, &token(3)).is_some());
        // Revoked since: it no longer passes.
        hold.failed(shop, &token(1));
        assert!(hold.holds(shop, &token(1)).is_some());
    }

    #[test]
    fn memory_is_bounded_per_address_and_in_all() {
        let hold = GuessingHold::default();
        let shop = address(1);
        for n in 0..100 {
            hold.authenticated(shop, &token(n));
        }
        assert_eq!(hold.known.lock()[&shop].len(), TOKENS_PER_ADDRESS);
        hold.hold(shop, Duration::from_secs(600));
        // The most recent ones are the ones kept.
        assert_eq!(hold.holds(shop, &token(99)), None);
        assert!(hold.holds(shop, &token(0)).is_some());
        for n in 0..ADDRESSES + 50 {
            hold.authenticated(address(n + 2), &token(1));
        }
        assert_eq!(hold.addresses_known(), ADDRESSES);
    }
}
